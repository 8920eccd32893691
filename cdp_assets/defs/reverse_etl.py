"""Reverse ETL as assets: one asset `["reverse_etl", <sync>]` per sync spec in the dbt manifest.

Analytics engineers declare a sync with `meta.sync` on a model under `models/sync/`, or an audience with
`meta.audience` under `models/audiences/`; this factory turns every one of them into an asset downstream
of its model, in group `reverse_etl`, with no Python per sync. The work itself (plan, guards, send,
commit, ledger) is `cdp_assets.reverse_etl.runner`; this module only wires it to Dagster:

- run config from the launchpad: `dry_run`, `full_resync`, `approve_large_change`;
- metadata per run: planned adds/changes/removes, sent, accepted, rejected, skipped by consent, API
  calls, retries, seconds (the same figures are in `reverse_etl.sync_runs`);
- asset checks: the consent guard (a marketing sync that had to refuse someone fails it), rows the
  destination rejected, rows the model gave no valid key;
- a run the large-change guard stopped, or a quota that ran out, fails the step with the diff summary,
  so marketing ops see why and relaunch it (with `approve_large_change: true` for the former);
- schedules: `daily` syncs run after every successful daily dbt build, a cron expression gets its own
  schedule, `on_demand` syncs run when someone launches them.

Destinations are the sandbox stand-ins locally (the running `cdp sandbox`, else one started for the
run) and the real APIs in prod, through the same `SaasResource` the extracts use.

No `from __future__ import annotations`: Dagster reads the asset functions' annotations as classes.
"""

import contextlib
import json
from pathlib import Path
from typing import Any

import dagster as dg
from pydantic import Field

from cdp_assets.defs.dbt import project
from cdp_assets.defs.resources import WAREHOUSE_POOL, WarehouseResource
from cdp_assets.defs.saas import SaasResource, saas_daily_job
from cdp_assets.reverse_etl.destinations import open_destination
from cdp_assets.reverse_etl.results import preview_sample
from cdp_assets.reverse_etl.runner import RunOptions, SyncResult, run_sync
from cdp_assets.reverse_etl.spec import SyncSpec, specs_from_manifest

GROUP = "reverse_etl"
CONSENT_CHECK = "consent_guard"
REJECTED_CHECK = "destination_rejections"
INVALID_CHECK = "valid_primary_keys"
# Statuses after which nothing more can be said about the destination: the step fails.
STOPPED = {"blocked_large_change": "stopped by the large-change guard", "quota_stopped": "stopped: API quota"}


class SyncRunConfig(dg.Config):
    """What marketing ops set in the launchpad."""

    dry_run: bool = Field(
        default=False,
        description="Compute the plan and write the row-level preview to reverse_etl.sync_previews; "
        "call no API and commit nothing.",
    )
    full_resync: bool = Field(
        default=False,
        description="Send every row again, changed or not (audience members are re-sent, never removed and re-added).",
    )
    approve_large_change: bool = Field(
        default=False,
        description="Proceed although the run changes or removes more of the destination's rows than "
        "the sync's max_change_share (default 20%).",
    )


def load_specs(manifest_path: Path) -> list[SyncSpec]:
    return specs_from_manifest(json.loads(manifest_path.read_text()))


def _check_specs(spec: SyncSpec, key: dg.AssetKey) -> list[dg.AssetCheckSpec]:
    checks = [
        dg.AssetCheckSpec(
            REJECTED_CHECK,
            asset=key,
            description="The destination accepted every row sent (rejected rows keep their error in "
            "reverse_etl.sync_row_results and are retried next run).",
        ),
        dg.AssetCheckSpec(
            INVALID_CHECK,
            asset=key,
            description=f"Every row of {spec.model_name} has a unique, non-null {spec.primary_key}.",
        ),
    ]
    if spec.purpose == "marketing":
        checks.insert(
            0,
            dg.AssetCheckSpec(
                CONSENT_CHECK,
                asset=key,
                description=f"No one in {spec.model_name} lacks consent on {spec.consent_channel}: a person "
                "who is opted out, suppressed, erased or unknown is refused and recorded as skipped.",
            ),
        )
    return checks


def _check_results(spec: SyncSpec, result: SyncResult) -> list[dg.AssetCheckResult]:
    results = [
        dg.AssetCheckResult(
            check_name=REJECTED_CHECK,
            passed=result.rejected == 0,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={"rejected": result.rejected, "accepted": result.accepted},
        ),
        dg.AssetCheckResult(
            check_name=INVALID_CHECK,
            passed=result.invalid == 0,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={"invalid": result.invalid},
        ),
    ]
    if spec.purpose == "marketing":
        results.insert(
            0,
            dg.AssetCheckResult(
                check_name=CONSENT_CHECK,
                passed=result.skipped_consent == 0,
                severity=dg.AssetCheckSeverity.ERROR,
                metadata={"skipped_consent": result.skipped_consent},
                description=None
                if result.skipped_consent == 0
                else f"{result.skipped_consent} row(s) without consent refused; see reverse_etl.sync_row_results "
                f"(run_id {result.run_id!r}, status 'skipped_consent')",
            ),
        )
    return results


def sync_asset(spec: SyncSpec) -> dg.AssetsDefinition:
    key = dg.AssetKey([GROUP, spec.name])

    @dg.asset(
        key=key,
        group_name=GROUP,
        deps=[dg.AssetKey([spec.model_name])],
        description=spec.description or f"{spec.mode} of {spec.model_name} into {spec.destination} {spec.object}",
        kinds={spec.destination},
        pool=WAREHOUSE_POOL,
        check_specs=_check_specs(spec, key),
        metadata={
            "destination": spec.destination,
            "object": spec.object,
            "mode": spec.mode,
            "purpose": spec.purpose,
            "model": spec.model,
            "schedule": spec.schedule,
            "max_change_share": spec.max_change_share,
        },
        tags={"cdp/sync_schedule": _schedule_tag(spec.schedule)},
    )
    def _sync(
        context: dg.AssetExecutionContext,
        config: SyncRunConfig,
        warehouse: WarehouseResource,
        saas: SaasResource,
    ) -> dg.MaterializeResult:
        options = RunOptions(
            dry_run=config.dry_run, full_resync=config.full_resync, approve_large_change=config.approve_large_change
        )
        with contextlib.ExitStack() as stack:
            destination = None
            sandbox = None
            if not options.dry_run:
                # Only a run that may call the API needs one (a dry run never does).
                api_config, sandbox = stack.enter_context(saas.config(spec.destination))
                destination = open_destination(
                    spec,
                    customerio=api_config if spec.destination == "customerio" else None,
                    salesforce=api_config if spec.destination == "salesforce" else None,
                )
                stack.callback(destination.close)
            with warehouse.get_warehouse().connect() as conn:
                result = run_sync(conn, spec, destination, options, context.run.run_id)
                sample = preview_sample(conn, result.run_id, spec.name) if options.dry_run else []
        metadata: dict[str, Any] = {**result.as_metadata(), "dry_run": options.dry_run}
        if options.dry_run:
            metadata["preview"] = dg.MetadataValue.md(_preview_table(sample, result.run_id, spec.name))
        if sandbox is not None:
            metadata["sandbox"] = sandbox
        context.log.info(f"{spec.name}: {result.status}: {result.message}")
        if result.status in STOPPED:
            raise dg.Failure(description=f"{spec.name} {STOPPED[result.status]}: {result.message}", metadata=metadata)
        return dg.MaterializeResult(metadata=metadata, check_results=_check_results(spec, result))

    return _sync


def _cell(value: Any) -> str:
    return str(value if value is not None else "").replace("|", "\\|")[:160]


def _preview_table(rows: list[tuple[Any, ...]], run_id: str, sync: str) -> str:
    """A dry run's first rows as a Markdown table for the UI; the query for all of them underneath."""
    lines = ["| key | operation | payload | refused because |", "|---|---|---|---|"]
    lines += [f"| {_cell(pk)} | {op} | {_cell(payload)} | {_cell(reason)} |" for pk, op, payload, reason in rows]
    query = f"SELECT * FROM reverse_etl.sync_previews WHERE run_id = '{run_id}' AND sync = '{sync}'"
    return "\n".join([*lines, "", f"All rows: `{query}`"])


def _schedule_tag(schedule: str) -> str:
    return schedule if schedule in ("daily", "on_demand") else "cron"


SPECS = load_specs(Path(project.manifest_path))
SYNC_ASSETS = [sync_asset(spec) for spec in SPECS]

reverse_etl_daily_job = dg.define_asset_job(
    name="reverse_etl_daily_job",
    selection=dg.AssetSelection.assets(*(dg.AssetKey([GROUP, s.name]) for s in SPECS if s.schedule == "daily")),
    description="Every sync scheduled `daily`: run after the daily dbt build succeeds.",
)


@dg.run_status_sensor(
    name="reverse_etl_after_daily_build",
    run_status=dg.DagsterRunStatus.SUCCESS,
    monitored_jobs=[saas_daily_job],
    request_job=reverse_etl_daily_job,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Runs the daily syncs once the daily extracts and dbt build have succeeded.",
)
def reverse_etl_after_daily_build(context: dg.RunStatusSensorContext) -> dg.RunRequest:
    # One request per successful daily build (the run key), so a re-evaluated tick cannot send twice.
    return dg.RunRequest(run_key=f"after-{context.dagster_run.run_id}", tags={"cdp/trigger": "after_daily_build"})


def _cron_schedules() -> list[dg.ScheduleDefinition]:
    schedules = []
    for spec in SPECS:
        if spec.schedule in ("daily", "on_demand"):
            continue
        job = dg.define_asset_job(
            name=f"reverse_etl_{spec.name}_job",
            selection=dg.AssetSelection.assets(dg.AssetKey([GROUP, spec.name])),
            description=f"The {spec.name} sync on its own schedule ({spec.schedule}).",
        )
        schedules.append(
            dg.ScheduleDefinition(
                name=f"reverse_etl_{spec.name}_schedule",
                job=job,
                cron_schedule=spec.schedule,
                execution_timezone="UTC",
                default_status=dg.DefaultScheduleStatus.RUNNING,
            )
        )
    return schedules


defs = dg.Definitions(
    assets=SYNC_ASSETS,
    jobs=[reverse_etl_daily_job],
    schedules=_cron_schedules(),
    sensors=[reverse_etl_after_daily_build],
)
