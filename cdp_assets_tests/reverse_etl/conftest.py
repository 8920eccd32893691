"""Reverse-ETL runner tests: a DuckDB warehouse file with tiny models and a consent_status table, and the
Customer.io and Salesforce stand-ins served on 127.0.0.1 (the real client libraries talk to them)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from cdp_assets.sandbox.customerio import CustomerIOSandbox
from cdp_assets.sandbox.http import SandboxServer
from cdp_assets.sandbox.salesforce import SalesforceSandbox
from cdp_assets.sandbox.world import World, build_world
from cdp_assets.sources.customerio import CustomerIOConfig
from cdp_assets.sources.salesforce import SalesforceConfig


@pytest.fixture
def warehouse(tmp_path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    conn = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
    for schema in ("sync", "audiences", "consent"):
        conn.execute(f"CREATE SCHEMA {schema}")
    # The columns of the dbt model consent.consent_status.
    conn.execute(
        """CREATE TABLE consent.consent_status (
               profile_id VARCHAR, channel VARCHAR, status VARCHAR, eligible BOOLEAN, needs_opt_in BOOLEAN,
               source VARCHAR, updated_at TIMESTAMP, reason VARCHAR, decided_by VARCHAR)"""
    )
    # The columns of the dbt model consent.consent_contact_points (consent per email address).
    conn.execute(
        """CREATE TABLE consent.consent_contact_points (
               email VARCHAR, profile_id VARCHAR, channel VARCHAR, status VARCHAR, eligible BOOLEAN,
               needs_opt_in BOOLEAN, source VARCHAR, updated_at TIMESTAMP, reason VARCHAR, decided_by VARCHAR)"""
    )
    yield conn
    conn.close()


@pytest.fixture(scope="module")
def world() -> World:
    return build_world(seed=7, people=20, companies=20)


@pytest.fixture
def cio_app(world: World) -> CustomerIOSandbox:
    return CustomerIOSandbox(world)


@pytest.fixture
def cio_config(cio_app: CustomerIOSandbox) -> Iterator[CustomerIOConfig]:
    with SandboxServer(cio_app) as server:
        yield CustomerIOConfig.for_sandbox(server.url, max_attempts=3)


@pytest.fixture
def sf_app(world: World) -> SalesforceSandbox:
    return SalesforceSandbox(world)


@pytest.fixture
def sf_config(sf_app: SalesforceSandbox) -> Iterator[SalesforceConfig]:
    with SandboxServer(sf_app) as server:
        yield SalesforceConfig.for_sandbox(server.url, auth="session", max_attempts=3, backoff_seconds=0.01)
