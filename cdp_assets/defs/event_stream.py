"""The event load as one multi-asset: every `event_stream` table it writes, with checks after each load.

The loader (`event_stream/loader.py`) decides what to read (every landing file version its ledger has
not seen) and accounts for every line; this module only runs it, logs its progress, and reports per
table: rows loaded this run, the table's total, the load's figures, and the check results.

It is one op writing many tables in one pass over the files, so it cannot be subset
(`can_subset=False`): selecting one of its tables materializes them all.

No `from __future__ import annotations` here: Dagster reads the asset function's parameter annotations
(config and resources) as real classes when it builds the definition.
"""

from collections.abc import Iterator
from datetime import date, datetime

import dagster as dg
from pydantic import Field

from cdp_assets.defs.resources import WAREHOUSE_POOL, LandingResource, WarehouseResource
from cdp_assets.event_stream import checks, spec
from cdp_assets.event_stream.loader import LoadOptions, LoadSummary, Progress, forget_range, load_events
from cdp_assets.event_stream.tracking_plan import TRACKED_EVENTS, TRACKED_TABLES
from cdp_assets.event_stream.transformations import resolve
from cdp_assets.warehouse import Connection

GROUP = "event_stream"
STANDARD_EVENT_TABLES: tuple[str, ...] = spec.STANDARD_EVENT_TABLES  # identifies, tracks, pages, ...
STANDARD_TABLES: tuple[str, ...] = (*STANDARD_EVENT_TABLES, spec.USERS_TABLE, spec.DISCARDS_TABLE)
ALL_TABLES: tuple[str, ...] = (*STANDARD_TABLES, *TRACKED_TABLES)

_DESCRIPTIONS = {
    "tracks": "One row per track call: standard and context columns (properties go to the event's table).",
    "pages": "One row per page call, page properties as columns.",
    "identifies": "One row per identify call, traits as columns.",
    "users": "One row per user id: the latest non-null value of each identify column.",
    "screens": "One row per screen call (mobile).",
    "groups": "One row per group call, group traits as columns.",
    "aliases": "One row per alias call (previous id to user id).",
    "rudder_discards": "Values that did not fit their column's type, with the reason (the cell loads as null).",
}


def table_key(table: str) -> dg.AssetKey:
    return dg.AssetKey([spec.SCHEMA, table])


def _specs() -> list[dg.AssetSpec]:
    specs = [
        dg.AssetSpec(key=table_key(t), group_name=GROUP, description=_DESCRIPTIONS[t], tags={"cdp/table": "standard"})
        for t in STANDARD_TABLES
    ]
    specs += [
        dg.AssetSpec(
            key=table_key(e.table),
            group_name=GROUP,
            description=f"Track event `{e.name}` ({e.source}): {e.description} "
            "One row per event, its properties as columns.",
            tags={"cdp/table": "tracked_event"},
        )
        for e in TRACKED_EVENTS
    ]
    return specs


# Severity and blocking, per check, and why:
# - message_id_unique: ERROR and blocking. A repeated id means the exactly-once contract broke; models
#   built on it would double-count conversions and sync them to the tools, so dbt waits for a fix.
# - discards_ratio: ERROR, not blocking. Lines being lost is the one failure a CDP must not sit on (every
#   audience and identity model silently shrinks), so it shows red; but the rows that did load are
#   correct, so holding dbt back would only make everything staler. The lost lines are kept in
#   event_load.load_errors / rudder_discards for a fix and a reload of their dates.
# - tracks_fresh: WARN. A quiet night or a paused source also makes it stale; it is a prompt to look at
#   the SDKs and the landing bucket, not proof that this load did anything wrong.
UNIQUE_SEVERITY = dg.AssetCheckSeverity.ERROR
DISCARDS_SEVERITY = dg.AssetCheckSeverity.ERROR
FRESHNESS_SEVERITY = dg.AssetCheckSeverity.WARN


def _check_specs() -> list[dg.AssetCheckSpec]:
    specs = [
        dg.AssetCheckSpec(
            "message_id_unique",
            asset=table_key(t),
            blocking=True,
            description="Every row has its own message id: count(*) = count(DISTINCT id).",
        )
        for t in STANDARD_EVENT_TABLES
    ]
    specs.append(
        dg.AssetCheckSpec(
            "discards_ratio",
            asset=table_key(spec.DISCARDS_TABLE),
            description="(Discarded lines + discarded values) / lines of the last load that read any line, "
            "at most CDP_DISCARD_RATIO_THRESHOLD.",
        )
    )
    specs.append(
        dg.AssetCheckSpec(
            "tracks_fresh",
            asset=table_key(spec.TYPE_TABLES["track"]),
            description="The newest track was received within CDP_TRACKS_FRESHNESS_HOURS of now.",
        )
    )
    return specs


class EventLoadConfig(dg.Config):
    """Left empty, a run loads what is pending. With both dates, it first forgets the files uploaded in
    that range (their rows and ledger entries) so the load reads them again: a reload/backfill."""

    start_date: str | None = Field(default=None, description="First upload date to reload, YYYY-MM-DD.")
    end_date: str | None = Field(default=None, description="Last upload date to reload (inclusive), YYYY-MM-DD.")


def reload_range(start_date: str | None, end_date: str | None) -> tuple[date, date] | None:
    """The validated reload range, or None for a plain load; a clear error for anything else."""
    if start_date is None and end_date is None:
        return None
    if start_date is None or end_date is None:
        raise dg.Failure("a reload needs both start_date and end_date (YYYY-MM-DD)")
    try:
        start, end = (datetime.strptime(d.strip(), "%Y-%m-%d").date() for d in (start_date, end_date))
    except ValueError as exc:
        raise dg.Failure(f"reload dates must be YYYY-MM-DD, got {start_date!r} and {end_date!r}") from exc
    if start > end:
        raise dg.Failure(f"reload start_date {start} is after end_date {end}")
    return start, end


def _progress(log: dg.DagsterLogManager) -> Progress:
    def notify(event: str, data: dict) -> None:
        if event == "listed":
            log.info(f"{data['pending_files']} landing file(s) to load")
        elif event == "chunk_committed":
            log.info(f"chunk {data['chunk']} committed: {data['files']} file(s), {data['lines']} line(s) so far")
        elif event == "finished":
            log.info(
                f"load {data['load_id']} finished in {data['seconds']} s: {data['lines']} lines = "
                f"{data['loaded']} loaded + {data['filtered']} filtered + {data['duplicates']} duplicates + "
                f"{data['discarded']} discarded"
            )

    return notify


def _load_metadata(summary: LoadSummary) -> dict[str, object]:
    """The load's figures, the same on every table of the run (numbers, so the UI plots them)."""
    return {
        "load_id": summary.load_id,
        "load_files": summary.files,
        "load_lines": summary.lines,
        "load_loaded": summary.loaded,
        "load_filtered": summary.filtered,
        "load_duplicates": summary.duplicates,
        "load_discarded": summary.discarded,
        "load_value_discards": summary.value_discards,
        "load_fast_path_misses": sum(summary.fast_path_misses.values()),
        "load_skipped_files": len(summary.skipped_files),
        "load_seconds": dg.FloatMetadataValue(float(summary.seconds)),
        **{f"load_seconds_{phase}": dg.FloatMetadataValue(float(s)) for phase, s in summary.phase_seconds.items()},
    }


def _check_result(
    table: str, name: str, outcome: checks.CheckOutcome, severity: dg.AssetCheckSeverity
) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        asset_key=table_key(table),
        check_name=name,
        passed=outcome.passed,
        severity=severity,
        description=outcome.description,
        metadata={k: v for k, v in outcome.metadata.items() if v is not None},
    )


def evaluate_checks(
    conn: Connection, discard_ratio_threshold: float, tracks_freshness_hours: float
) -> dict[str, list[dg.AssetCheckResult]]:
    """Every check of the multi-asset, by the table it is on."""
    results: dict[str, list[dg.AssetCheckResult]] = {t: [] for t in STANDARD_TABLES}
    for table in STANDARD_EVENT_TABLES:
        outcome = checks.message_id_unique(conn, table)
        results[table].append(_check_result(table, "message_id_unique", outcome, UNIQUE_SEVERITY))
    outcome = checks.discards_ratio(conn, discard_ratio_threshold)
    results[spec.DISCARDS_TABLE].append(
        _check_result(spec.DISCARDS_TABLE, "discards_ratio", outcome, DISCARDS_SEVERITY)
    )
    tracks = spec.TYPE_TABLES["track"]
    outcome = checks.tracks_fresh(conn, tracks_freshness_hours)
    results[tracks].append(_check_result(tracks, "tracks_fresh", outcome, FRESHNESS_SEVERITY))
    return results


@dg.multi_asset(
    name="event_stream_load",
    specs=_specs(),
    check_specs=_check_specs(),
    can_subset=False,
    pool=WAREHOUSE_POOL,
    description="Load every new landing file into the event_stream tables (RudderStack's warehouse schema), "
    "exactly once; optionally reload a range of upload dates first.",
)
def event_stream_load(
    context: dg.AssetExecutionContext,
    config: EventLoadConfig,
    warehouse: WarehouseResource,
    landing: LandingResource,
) -> Iterator[dg.MaterializeResult]:
    settings = warehouse.settings()
    wh = warehouse.get_warehouse()
    store = landing.get_store()
    options = LoadOptions(
        chunk_files=settings.load_chunk_files,
        chunk_lines=settings.load_chunk_lines,
        chunk_bytes=settings.load_chunk_mb * 1024 * 1024,
        transformations=tuple(resolve(settings.warehouse_transformations)),
    )
    extra: dict[str, object] = {}
    window = reload_range(config.start_date, config.end_date)
    if window is not None:
        # Two transactions: if the load below fails, the forgotten files are simply pending, and the
        # next run of any load job reads them again. Running the reload twice gives the same tables.
        forgotten = forget_range(wh, *window, landing_keys=[f.key for f in store.list_files()])
        context.log.info(
            f"reload {window[0]}..{window[1]}: forgot {forgotten.files} file(s) and {forgotten.rows}; "
            "those files load again"
        )
        if forgotten.kept_missing:
            context.log.warning(
                f"{len(forgotten.kept_missing)} file(s) of the range are no longer in {store.url}, so what "
                f"they loaded is kept, not reloaded: {', '.join(forgotten.kept_missing[:20])}"
            )
        extra = {
            "reload_start_date": str(window[0]),
            "reload_end_date": str(window[1]),
            "reload_files_forgotten": forgotten.files,
            "reload_rows_forgotten": sum(forgotten.rows.values()),
            "reload_files_kept_missing": len(forgotten.kept_missing),
        }
    context.log.info(f"loading {store.url} into {wh.describe()}")
    summary = load_events(store, wh, options, progress=_progress(context.log))
    for skipped in summary.skipped_files:
        context.log.warning(f"skipped {skipped['file']} (the next load tries it again): {skipped['reason']}")
    # The loader has closed its connection; this one reads totals and runs the checks, then closes
    # before any downstream step (dbt) opens the file.
    with wh.connect() as conn:
        present = checks.tables_in_schema(conn)
        untracked = sorted(set(present) - set(ALL_TABLES))
        totals = checks.row_counts(conn, [*ALL_TABLES, *untracked])
        results = evaluate_checks(conn, settings.discard_ratio_threshold, settings.tracks_freshness_hours)
    load = {**_load_metadata(summary), **extra}
    for table in ALL_TABLES:
        metadata: dict[str, object] = {
            "rows_loaded": summary.tables.get(table, 0),
            "dagster/row_count": totals[table],
            "dagster/table_name": f"{spec.SCHEMA}.{table}",
            **load,
        }
        if summary.new_columns.get(table):
            metadata["new_columns"] = dg.MetadataValue.json(summary.new_columns[table])
        if table == spec.TYPE_TABLES["track"]:
            # Untracked events still load into their own tables; list them here so they are seen.
            metadata["untracked_event_tables"] = dg.MetadataValue.json({t: totals[t] for t in untracked})
            metadata["untracked_rows_loaded"] = sum(summary.tables.get(t, 0) for t in untracked)
        if table == spec.DISCARDS_TABLE:
            metadata["discard_reasons"] = dg.MetadataValue.json(summary.discard_reasons)
            metadata["corrupt_files"] = len(summary.corrupt_files)
        yield dg.MaterializeResult(asset_key=table_key(table), metadata=metadata, check_results=results.get(table, []))


defs = dg.Definitions(assets=[event_stream_load])
