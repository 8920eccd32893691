"""Resources shared by the event-stream, dbt and automation definitions.

Each resource is a thin, configurable handle on a domain object (`Warehouse`, `LandingStore`). Its
fields are overrides; left empty, they fall back to `settings.py`, read when the resource is used (not
when the definitions load), so a test or a run launched with another environment gets its own paths.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import dagster as dg
from pydantic import Field

from cdp_assets.event_stream.landing import LandingStore, landing_store
from cdp_assets.settings import Settings, get_settings
from cdp_assets.warehouse import Warehouse, open_warehouse

# Every op that writes the warehouse runs in this pool. DuckDB allows one writer per file (P13) and
# the event load's ledger must never be read and written by two loads at once (in any engine), so the
# instance config (defs/dagster.yaml) gives every pool one slot and enforces it per run: a run that
# needs the pool waits in the queue while another run that holds it is in progress.
WAREHOUSE_POOL = "warehouse_writer"


class WarehouseResource(dg.ConfigurableResource):
    """The warehouse: a DuckDB file locally, Snowflake in prod (`CDP_WAREHOUSE` / `CDP_ENV`)."""

    duckdb_path: str | None = Field(
        default=None, description="DuckDB file to use instead of the settings' (CDP_DUCKDB_PATH)."
    )

    def settings(self) -> Settings:
        settings = get_settings()
        if self.duckdb_path:
            settings = dataclasses.replace(settings, duckdb_path=Path(self.duckdb_path).resolve())
        return settings

    def get_warehouse(self) -> Warehouse:
        return open_warehouse(self.settings())


class LandingResource(dg.ConfigurableResource):
    """Where the event stream drops its dump files: a local folder or `s3://bucket/prefix`."""

    url: str | None = Field(default=None, description="Landing location (default: CDP_LANDING_URL).")
    aws_endpoint_url: str | None = Field(
        default=None, description="S3-compatible endpoint (default: AWS_ENDPOINT_URL; none for AWS itself)."
    )

    def get_store(self) -> LandingStore:
        settings = get_settings()
        return landing_store(self.url or settings.landing_url, self.aws_endpoint_url or settings.aws_endpoint_url)


defs = dg.Definitions(resources={"warehouse": WarehouseResource(), "landing": LandingResource()})
