"""Helpers for the Dagster wiring tests: fresh events, and readers for a run's events."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import dagster as dg

from cdp_assets_tests.conftest import event

VENV_BIN = Path(__file__).resolve().parents[2] / ".venv" / "bin"


def received(minutes_ago: float) -> str:
    """An SDK-format timestamp this long before the real now."""
    at = datetime.now(UTC) - timedelta(minutes=minutes_ago)
    return at.strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}Z"


def recent_event(type_: str = "track", minutes_ago: float = 5, **fields: object) -> dict:
    """A valid event received `minutes_ago` minutes ago (so `tracks_fresh` judges it fresh)."""
    stamp = received(minutes_ago)
    return event(type_, **{"receivedAt": stamp, "sentAt": stamp, "originalTimestamp": stamp, **fields})


def materializations(result: dg.ExecuteInProcessResult) -> dict[str, dict[str, Any]]:
    """Asset key (as `a/b`) to its metadata values, for one run."""
    found: dict[str, dict[str, Any]] = {}
    for mat in result.get_asset_materialization_events():
        m = mat.materialization
        found[m.asset_key.to_user_string()] = {k: v.value for k, v in m.metadata.items()}
    return found


def check_evaluations(result: dg.ExecuteInProcessResult) -> dict[str, Any]:
    """`asset/key:check_name` to its evaluation, for one run."""
    return {e.asset_check_key.to_user_string(): e for e in result.get_asset_check_evaluations()}


def event_stream_keys(defs: dg.Definitions) -> list[dg.AssetKey]:
    return sorted(k for k in defs.resolve_asset_graph().get_all_asset_keys() if k.path[0] == "event_stream")


def run_load(
    defs: dg.Definitions, instance: dg.DagsterInstance, job: str = "event_stream_job", **kwargs: Any
) -> dg.ExecuteInProcessResult:
    """Run a job's event-load step only (no dbt): the whole multi-asset, which cannot be subset."""
    return defs.resolve_job_def(job).execute_in_process(
        instance=instance, asset_selection=event_stream_keys(defs), raise_on_error=False, **kwargs
    )
