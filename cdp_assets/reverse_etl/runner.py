"""One run of one sync: plan, guards, preview or send, commit what was accepted, record everything.

Order (issue 5):
1. plan in the warehouse against the committed snapshot (`diff.plan_sync` over the columns the spec
   sends; audiences: the member's identifier and email);
2. rows with a null or duplicate key, or a value the destination cannot take (a suppression row with
   an unknown action, a number that is inf or NaN), are invalid: recorded, never sent;
3. the consent guard refuses adds and changes of marketing syncs whose profile is not eligible;
4. the large-change guard stops the run before any call unless approved;
5. a dry run writes the row-level preview (exactly the messages a real run would send) and stops;
6. the destination sends adds, changes and (mirror only) removes in batches;
7. only the rows it accepted are committed to the snapshot (non-mirror syncs also forget rows that
   left the model); rejected and refused rows keep their old state and come back next run;
8. `sync_runs` and `sync_row_results` get the run and every row's fate, in the same transaction as
   the commit.

A quota that runs out ends the run as `quota_stopped` with what was accepted so far committed. An API
that keeps failing commits what was accepted, records the run as `error` and raises
`DestinationUnavailable`, so the orchestrator shows a failed run.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from cdp_assets.event_stream.naming import quote, safe_name
from cdp_assets.reverse_etl import results
from cdp_assets.reverse_etl.destinations import Destination, OutgoingRow, SendReport, mapped_values, render
from cdp_assets.reverse_etl.diff import commit, model_columns, plan_sync
from cdp_assets.reverse_etl.guards import ChangeCheck, consent_refusals
from cdp_assets.reverse_etl.spec import SyncSpec
from cdp_assets.warehouse import Connection, transaction


class DestinationUnavailable(RuntimeError):
    """The destination kept failing (retries exhausted, credentials refused); what it accepted is committed."""


class SyncModelError(ValueError):
    """The sync's model cannot be read, or lacks a column its spec uses: nothing was planned or sent."""


@dataclass(frozen=True)
class RunOptions:
    dry_run: bool = False
    full_resync: bool = False
    approve_large_change: bool = False


@dataclass
class SyncResult:
    sync: str
    run_id: str
    status: str  # success | partial | dry_run | blocked_large_change | quota_stopped | no_change
    planned_adds: int = 0
    planned_changes: int = 0
    planned_removes: int = 0
    invalid: int = 0
    sent: int = 0
    accepted: int = 0
    rejected: int = 0
    skipped_consent: int = 0
    api_calls: int = 0
    retries: int = 0
    seconds: float = 0.0
    message: str = ""

    def as_metadata(self) -> dict[str, int | float | str]:
        return {k: v for k, v in asdict(self).items()}


@dataclass
class _Row:
    pk: str | None
    op: str
    payload: dict[str, Any] | None
    previous: dict[str, Any] | None
    reason: str | None = None  # why it is not sent (invalid, consent, or a non-mirror remove)
    status: str | None = None  # invalid | skipped_consent | forget (not sent, leaves the snapshot)
    message: list[dict[str, Any]] | None = None


def _loads(value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    return json.loads(value) if isinstance(value, str) else dict(value)


def _plan_rows(conn: Connection, table: str) -> list[_Row]:
    fetched = conn.execute(
        f"""SELECT pk, op, payload, previous_payload, reason FROM {quote(table)}
            WHERE op <> 'unchanged' ORDER BY op, pk"""
    ).fetchall()
    return [_Row(pk, op, _loads(p), _loads(prev), reason) for pk, op, p, prev, reason in fetched]


def _classify_rows(conn: Connection, spec: SyncSpec, table: str) -> list[_Row]:
    rows = _plan_rows(conn, table)
    refusals = consent_refusals(conn, spec, table)
    for row in rows:
        if row.op == "invalid":
            row.status = "invalid"
            continue
        assert row.pk is not None
        if row.op == "remove" and not spec.sends_removes:
            row.status, row.reason = "forget", f"left the model; a {spec.mode} sync does not remove it"
            continue
        if row.pk in refusals:
            row.status, row.reason = "skipped_consent", refusals[row.pk]
            # Rendered anyway: the preview shows what was held back.
        try:
            row.message = render(spec, row.op, row.pk, row.payload, row.previous)
        except ValueError as exc:
            row.status, row.reason = "invalid", str(exc)
    return rows


def _previous_for_preview(spec: SyncSpec, previous: dict[str, Any] | None) -> Any:
    if previous is None or spec.kind == "audience":
        return previous
    return mapped_values(spec, previous, keep_nulls=True)


def _sent_values(spec: SyncSpec, payload: dict[str, Any] | None) -> dict[str, Any]:
    """The part of a payload that reaches the destination: a null is not sent unless send_nulls (an
    audience never sends one), so it cannot change anything there; nor is a column no longer mapped.
    The same rule as the plan's hash (`diff.sent_text`)."""
    if spec.kind == "sync" and spec.send_nulls:
        # A key the previous payload lacks (a newly mapped column) differs from a null: sending the
        # null would blank a value the destination may hold.
        return dict(payload or {})
    columns = set(spec.diff_columns)
    return {c: v for c, v in (payload or {}).items() if v is not None and c in columns}


def _really_changed(spec: SyncSpec, row: _Row) -> bool:
    """Whether sending the row changes what the destination holds: on a full resync every row is a
    change, most of them with the very message sent before."""
    return row.previous is None or _sent_values(spec, row.payload) != _sent_values(spec, row.previous)


def run_sync(
    conn: Connection, spec: SyncSpec, destination: Destination | None, options: RunOptions, run_id: str
) -> SyncResult:
    if destination is None and not options.dry_run:
        raise ValueError(f"sync {spec.name!r}: only a dry run may go without a destination")
    started = datetime.now(UTC)
    clock = time.perf_counter()
    results.ensure(conn)
    _check_model_columns(conn, spec)
    table = f"_plan_{safe_name(spec.name)}"
    # Hash what is sent: a null goes out only with send_nulls (an audience never sends one), so only
    # then is a null column different from one that is not mapped.
    send_nulls = spec.kind == "sync" and spec.send_nulls
    plan = plan_sync(
        conn, spec.name, spec.model, spec.primary_key, spec.diff_columns, options.full_resync, table, send_nulls
    )
    rows = _classify_rows(conn, spec, table)
    to_send = [r for r in rows if r.status is None]
    skipped = [r for r in rows if r.status == "skipped_consent"]
    invalid = [r for r in rows if r.status == "invalid"]
    forgotten = [r for r in rows if r.status == "forget"]

    result = SyncResult(
        sync=spec.name,
        run_id=run_id,
        status="",
        planned_adds=plan.adds,
        planned_changes=plan.changes,
        planned_removes=plan.removes if spec.sends_removes else 0,
        invalid=len(invalid),
        skipped_consent=len(skipped),
    )
    touched = sum(1 for r in to_send if r.op == "remove" or (r.op == "change" and _really_changed(spec, r)))
    check = ChangeCheck(touched, plan.destination_rows, spec.max_change_share)
    summary = (
        f"{plan.adds} to add, {plan.changes} to change, {result.planned_removes} to remove, "
        f"{plan.counts.get('unchanged', 0)} unchanged, {len(invalid)} invalid, {len(skipped)} refused by consent; "
        f"the destination holds {plan.destination_rows} rows"
        + (f"; {len(forgotten)} left the model (not removed by a {spec.mode} sync)" if forgotten else "")
    )

    if options.dry_run:
        now = datetime.now(UTC)
        preview = [
            (r.pk, r.op, r.message, _previous_for_preview(spec, r.previous), r.reason if r.status else None)
            for r in rows
        ]
        with transaction(conn):
            results.record_previews(conn, run_id, spec.name, preview, now)
            result.status = "dry_run"
            guard = f"; a real run would be blocked: it {check.describe()}" if check.too_large else ""
            result.message = f"dry run: {summary}; {len(to_send)} rows would be sent{guard}"
            _finish(conn, result, options, started, clock)
        return result

    if check.too_large and not options.approve_large_change:
        with transaction(conn):
            _record_held_back(conn, run_id, spec.name, skipped + invalid)
            result.status = "blocked_large_change"
            result.message = (
                f"blocked: the run {check.describe()}. {summary}. Review the rows with a dry run "
                "(reverse_etl.sync_previews), then launch again with approve_large_change: true."
            )
            _finish(conn, result, options, started, clock)
        return result

    assert destination is not None
    report = destination.send([OutgoingRow(r.pk, r.op, r.message or []) for r in to_send]) if to_send else SendReport()
    outcomes = report.outcomes
    accepted = [r for r in to_send if r.pk in outcomes and outcomes[r.pk].accepted]
    rejected = [r for r in to_send if r.pk in outcomes and not outcomes[r.pk].accepted and outcomes[r.pk].sent]
    # Failed on our side before any request carried them: not sent, retried next run like a rejection.
    failed_locally = [r for r in to_send if r.pk in outcomes and not outcomes[r.pk].sent]
    not_sent = [r for r in to_send if r.pk not in outcomes]
    result.sent = len(accepted) + len(rejected)
    result.accepted, result.rejected = len(accepted), len(rejected)
    result.api_calls, result.retries = destination.stats.calls, destination.stats.retries

    with transaction(conn):
        _commit(conn, spec, run_id, table, [r.pk for r in accepted + forgotten if r.pk is not None])
        now = datetime.now(UTC)
        results.record_rows(
            conn,
            run_id,
            spec.name,
            [(r.pk, r.op, "accepted", None) for r in accepted]
            + [(r.pk, r.op, "rejected", outcomes[r.pk or ""].error) for r in rejected]
            + [(r.pk, r.op, "not_sent", outcomes[r.pk or ""].error) for r in failed_locally]
            + [(r.pk, r.op, "not_sent", report.stopped or report.failed) for r in not_sent],
            now,
        )
        _record_held_back(conn, run_id, spec.name, skipped + invalid)
        if report.failed:
            result.status = "error"
        elif report.stopped:
            result.status = "quota_stopped"
        elif not to_send:
            result.status = "no_change"
        else:
            result.status = "partial" if rejected or failed_locally else "success"
        sent_summary = f"sent {result.sent}: {result.accepted} accepted, {result.rejected} rejected" + (
            f"; {len(failed_locally)} failed before any request (not sent, they go next run)" if failed_locally else ""
        )
        stop = report.stopped or report.failed
        result.message = (
            f"{summary}; {sent_summary}"
            + (f"; stopped with {len(not_sent)} rows not sent (they go next run): {stop}" if stop else "")
            + "".join(f"; {note}" for note in report.notes)
        )
        _finish(conn, result, options, started, clock)
    if report.failed:
        raise DestinationUnavailable(f"sync {spec.name!r}: {report.failed} ({result.accepted} rows committed)")
    return result


def _used_columns(spec: SyncSpec) -> dict[str, str]:
    """Every model column the run reads -> the spec key that names it (for the error message)."""
    section = "audience" if spec.kind == "audience" else "sync"
    used = {spec.primary_key: f"meta.{section}.primary_key"}
    if spec.kind == "audience":
        used[spec.identifier or ""] = "meta.audience.identifier"
        if spec.email_column:
            used.setdefault(spec.email_column, "the standard audience columns (macro audience_select)")
    for column, _ in spec.fields:
        used.setdefault(column, "meta.sync.fields")
    if spec.action_column:
        used.setdefault(spec.action_column, "meta.sync.action_column")
    if spec.profile_column:
        used.setdefault(spec.profile_column, f"meta.{section}.profile_column")
    return used


def _check_model_columns(conn: Connection, spec: SyncSpec) -> None:
    """Fail before planning, naming the sync, the model and what is missing, when the model lost a
    column the spec uses (the warehouse would otherwise raise a bare binder error mid-plan)."""
    try:
        present = {column.lower() for column in model_columns(conn, spec.model)}
    except Exception as exc:  # which error depends on the warehouse; its message says what is wrong
        raise SyncModelError(
            f"sync {spec.name!r}: cannot read its model {spec.model_name} ({spec.model}): {exc}. "
            "Build the model (dbt) before running the sync."
        ) from exc
    missing = {column: key for column, key in _used_columns(spec).items() if column.lower() not in present}
    if missing:
        listed = ", ".join(f"{column} (from {key})" for column, key in sorted(missing.items()))
        raise SyncModelError(
            f"sync {spec.name!r}: its model {spec.model_name} ({spec.model}) has no column {listed}; "
            f"the model has {', '.join(sorted(present)) or 'no columns'}. Nothing was planned or sent: "
            "put the column back in the model or change the spec, then build the model again."
        )


def _commit(conn: Connection, spec: SyncSpec, run_id: str, table: str, pks: list[str]) -> None:
    accepted_table = quote(f"{table}_accepted")
    conn.execute(f"CREATE OR REPLACE TEMP TABLE {accepted_table} (pk VARCHAR)")
    if pks:
        results.insert_rows(conn, accepted_table, [(pk,) for pk in pks])
    commit(conn, spec.name, run_id, f"SELECT pk FROM {accepted_table}", table)


def _record_held_back(conn: Connection, run_id: str, sync: str, rows: list[_Row]) -> None:
    results.record_rows(
        conn, run_id, sync, [(r.pk, r.op, r.status or "invalid", r.reason) for r in rows], datetime.now(UTC)
    )


def _finish(conn: Connection, result: SyncResult, options: RunOptions, started: datetime, clock: float) -> None:
    result.seconds = round(time.perf_counter() - clock, 3)
    values = {
        **{k: v for k, v in asdict(result).items()},
        "dry_run": options.dry_run,
        "full_resync": options.full_resync,
        "approve_large_change": options.approve_large_change,
        "started_at": started,
        "finished_at": datetime.now(UTC),
    }
    results.record_run(conn, values)
