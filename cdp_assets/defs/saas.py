"""The daily SaaS extracts: one dagster-dlt multi-asset per source, keyed `["<source>", "<table>"]`.

The keys equal the dbt sources' `meta.dagster.asset_key`, so the staging models hang off these assets
with no glue. Locally every extract reads from a stand-in (the one `cdp sandbox` runs, or its own for
the length of the run); in prod from the real API with credentials from the environment. Each run
reports rows per table (dlt's figures), API calls, retries, seconds waiting, and whether the data came
from the sandbox.

No `from __future__ import annotations`: Dagster reads the asset functions' annotations as classes.
"""

import contextlib
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import dagster as dg
import dlt
from dagster_dlt import DagsterDltResource, DagsterDltTranslator, dlt_assets
from dagster_dlt.translator import DltResourceTranslatorData
from dlt.extract.source import DltSource

from cdp_assets.defs.resources import WAREHOUSE_POOL
from cdp_assets.sandbox.run import SANDBOX_NAMES, listening_url, start
from cdp_assets.settings import get_settings
from cdp_assets.sources.customerio import CustomerIOConfig, customerio_source
from cdp_assets.sources.facebook_ads import FacebookAdsConfig, facebook_ads_source
from cdp_assets.sources.google_ads import GoogleAdsConfig, google_ads_source
from cdp_assets.sources.policy import CallStats
from cdp_assets.sources.salesforce import SalesforceConfig, salesforce_source
from cdp_assets.sources.stripe import StripeConfig, stripe_source


@dataclass(frozen=True)
class SaasSource:
    name: str
    build: Callable[[Any, CallStats | None], DltSource]  # (config, stats) -> a fresh source
    sandbox_config: Callable[[str], Any]  # the stand-in's URL -> config
    prod_config: Callable[[], Any]  # credentials from the environment, or a clear error


def _port(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


SOURCES: dict[str, SaasSource] = {
    s.name: s
    for s in (
        SaasSource("salesforce", salesforce_source, SalesforceConfig.for_sandbox, SalesforceConfig.from_env),
        SaasSource("stripe", stripe_source, StripeConfig.for_sandbox, StripeConfig.from_env),
        SaasSource(
            "google_ads",
            google_ads_source,
            lambda url: GoogleAdsConfig.for_sandbox(_port(url)),
            GoogleAdsConfig.from_env,
        ),
        SaasSource("facebook_ads", facebook_ads_source, FacebookAdsConfig.for_sandbox, FacebookAdsConfig.from_env),
        SaasSource("customerio", customerio_source, CustomerIOConfig.for_sandbox, CustomerIOConfig.from_env),
    )
}
assert tuple(SOURCES) == SANDBOX_NAMES


class SaasResource(dg.ConfigurableResource):
    """Where each source's API is: the sandbox locally (a running `cdp sandbox`, else one started for
    the run), the real API in prod. Credentials never pass through Dagster config: `from_env()` reads
    them when a run needs them, typed as secrets in the source configs."""

    seed: int = 7

    @contextlib.contextmanager
    def config(self, name: str) -> Iterator[tuple[Any, bool]]:
        """(the source's config, whether it points at the sandbox) for the length of the block."""
        source = SOURCES[name]
        settings = get_settings()
        if settings.env == "prod":
            yield source.prod_config(), False
            return
        url = listening_url(settings.data_dir / "sandbox.json", name)
        if url is not None:
            yield source.sandbox_config(url), True
            return
        running = start(name, seed=self.seed)
        try:
            yield source.sandbox_config(running.url), True
        finally:
            running.stop()


def pipeline(name: str) -> dlt.Pipeline:
    """The dlt pipeline of a source, on the current settings: DuckDB locally, Snowflake in prod."""
    settings = get_settings()
    if settings.warehouse_engine == "duckdb":
        destination = dlt.destinations.duckdb(str(settings.duckdb_path))
    else:
        # Credentials from DESTINATION__SNOWFLAKE__CREDENTIALS__* (dlt's own convention), never config.
        destination = dlt.destinations.snowflake()
    return dlt.pipeline(
        pipeline_name=f"cdp_{name}",
        destination=destination,
        dataset_name=f"raw_{name}",
        pipelines_dir=str(settings.data_dir / "dlt" / "pipelines"),
    )


class CdpDltTranslator(DagsterDltTranslator):
    """Keys `["<source>", "<table>"]` (the dbt sources' keys), one group per source, no phantom deps."""

    def get_asset_spec(self, data: DltResourceTranslatorData) -> dg.AssetSpec:
        source = data.resource.source_name
        return (
            super()
            .get_asset_spec(data)
            .replace_attributes(key=dg.AssetKey([source, data.resource.name]), deps=[], group_name=source)
        )


def _with_run_metadata(event: Any, extra: Mapping[str, Any]) -> Any:
    if isinstance(event, dg.MaterializeResult):
        return dg.MaterializeResult(
            asset_key=event.asset_key,
            metadata={**(event.metadata or {}), **extra},
            check_results=event.check_results,
            data_version=event.data_version,
            tags=event.tags,
        )
    return event


def _extract_assets(source: SaasSource) -> dg.AssetsDefinition:
    # The source object here only describes the resources (no call is made); each run builds its own
    # (dagster-notes P1: a source reused across runs in one process breaks dlt's schema).
    spec_source = source.build(source.sandbox_config("http://127.0.0.1:9"), None)

    @dlt_assets(
        dlt_source=spec_source,
        dlt_pipeline=pipeline(source.name),
        name=f"{source.name}_extract",
        dagster_dlt_translator=CdpDltTranslator(),
        pool=WAREHOUSE_POOL,
    )
    def _assets(context: dg.AssetExecutionContext, dlt: DagsterDltResource, saas: SaasResource) -> Iterator[Any]:
        stats = CallStats()
        started = time.perf_counter()
        with saas.config(source.name) as (config, sandbox):
            events = list(
                dlt.run(context=context, dlt_source=source.build(config, stats), dlt_pipeline=pipeline(source.name))
            )
        extra = {**stats.as_metadata(), "extract_seconds": round(time.perf_counter() - started, 3), "sandbox": sandbox}
        context.log.info(f"{source.name}: {stats.calls} API calls, {stats.retries} retries, sandbox={sandbox}")
        for event in events:
            yield _with_run_metadata(event, extra)

    return _assets


EXTRACTS = [_extract_assets(source) for source in SOURCES.values()]

saas_daily_job = dg.define_asset_job(
    name="saas_daily_job",
    selection=dg.AssetSelection.groups(*SOURCES)
    | (dg.AssetSelection.groups(*SOURCES).downstream() & dg.AssetSelection.kind("dbt")),
    description="Extract every SaaS source (incrementally), then build the dbt models they feed.",
)

saas_daily_schedule = dg.ScheduleDefinition(
    name="saas_daily_schedule",
    job=saas_daily_job,
    cron_schedule="0 5 * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
)

defs = dg.Definitions(
    assets=EXTRACTS,
    jobs=[saas_daily_job],
    schedules=[saas_daily_schedule],
    resources={"dlt": DagsterDltResource(), "saas": SaasResource()},
)
