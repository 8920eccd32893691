"""The reverse-ETL ledger in schema `reverse_etl`, next to the diff engine's `snapshots`.

- `sync_runs`: one row per run, the figures of its `SyncResult`, its options, start and finish;
- `sync_row_results`: one row per row a run sent or held back: `accepted`, `rejected` (with the
  destination's error), `skipped_consent` (with the consent status that refused it), `invalid` (null
  or duplicate key, or a value no destination can take, such as inf or NaN), `not_sent` (the run
  stopped before reaching it, or it failed on our side before any request carried it);
- `sync_previews`: what a dry run would send, row by row: the op, the exact destination payload, the
  values the destination holds now (from the snapshot), and why a row would be held back.

Everything is written with bound parameters; the payloads are JSON text.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from cdp_assets.reverse_etl.diff import SCHEMA
from cdp_assets.reverse_etl.diff import ensure as ensure_snapshots
from cdp_assets.warehouse import Connection

INSERT_CHUNK = 100_000
ROW_STATUSES = ("accepted", "rejected", "skipped_consent", "invalid", "not_sent")

DDL = f"""
CREATE TABLE IF NOT EXISTS {SCHEMA}.sync_runs (
    run_id VARCHAR NOT NULL,
    sync VARCHAR NOT NULL,
    status VARCHAR NOT NULL,
    dry_run BOOLEAN NOT NULL,
    full_resync BOOLEAN NOT NULL,
    approve_large_change BOOLEAN NOT NULL,
    planned_adds BIGINT, planned_changes BIGINT, planned_removes BIGINT, invalid BIGINT,
    sent BIGINT, accepted BIGINT, rejected BIGINT, skipped_consent BIGINT,
    api_calls BIGINT, retries BIGINT, seconds DOUBLE,
    message VARCHAR,
    started_at TIMESTAMPTZ NOT NULL,
    finished_at TIMESTAMPTZ NOT NULL
);
CREATE TABLE IF NOT EXISTS {SCHEMA}.sync_row_results (
    run_id VARCHAR NOT NULL,
    sync VARCHAR NOT NULL,
    pk VARCHAR,
    op VARCHAR NOT NULL,
    status VARCHAR NOT NULL,
    error VARCHAR,
    recorded_at TIMESTAMPTZ NOT NULL
);
CREATE TABLE IF NOT EXISTS {SCHEMA}.sync_previews (
    run_id VARCHAR NOT NULL,
    sync VARCHAR NOT NULL,
    pk VARCHAR,
    op VARCHAR NOT NULL,
    payload JSON,
    previous_payload JSON,
    would_skip_reason VARCHAR,
    previewed_at TIMESTAMPTZ NOT NULL
)
"""


def ensure(conn: Connection) -> None:
    ensure_snapshots(conn)
    for statement in DDL.split(";"):
        if statement.strip():
            conn.execute(statement)


def insert_rows(conn: Connection, table: str, rows: list[tuple[Any, ...]]) -> None:
    """Append rows to `table` (all its columns, in order) in one statement.

    DuckDB's `executemany` prepares and runs the insert once per row (minutes for 100k rows), so the
    values go in as one list parameter per column, zipped back into rows by `unnest`.
    """
    if not rows:
        return
    columns = [list(column) for column in zip(*rows, strict=True)]
    for start in range(0, len(rows), INSERT_CHUNK):
        chunk = [column[start : start + INSERT_CHUNK] for column in columns]
        select = ", ".join("unnest(?)" for _ in chunk)
        conn.execute(f"INSERT INTO {table} SELECT {select}", chunk)


def _json(value: Any) -> str | None:
    return None if value is None else json.dumps(value, sort_keys=True, default=str)


def record_rows(
    conn: Connection, run_id: str, sync: str, rows: Iterable[tuple[str | None, str, str, str | None]], at: datetime
) -> None:
    """(pk, op, status, error) per row."""
    batch = [(run_id, sync, pk, op, status, error, at) for pk, op, status, error in rows]
    if batch:
        insert_rows(conn, f"{SCHEMA}.sync_row_results", batch)


def record_previews(
    conn: Connection,
    run_id: str,
    sync: str,
    rows: Iterable[tuple[str | None, str, Any, Any, str | None]],
    at: datetime,
) -> None:
    """(pk, op, payload, previous_payload, would_skip_reason) per row."""
    batch = [(run_id, sync, pk, op, _json(p), _json(prev), reason, at) for pk, op, p, prev, reason in rows]
    if batch:
        insert_rows(conn, f"{SCHEMA}.sync_previews", batch)


def record_run(conn: Connection, values: Mapping[str, Any]) -> None:
    columns = list(values)
    placeholders = ", ".join("?" for _ in columns)
    conn.execute(
        f"INSERT INTO {SCHEMA}.sync_runs ({', '.join(columns)}) VALUES ({placeholders})",
        [values[c] for c in columns],
    )


def preview_sample(conn: Connection, run_id: str, sync: str, limit: int = 25) -> list[tuple[Any, ...]]:
    """The first rows of a dry run's preview, (pk, op, payload, would_skip_reason), refusals first: what
    the launcher should look at before a real run (the whole preview stays in `sync_previews`)."""
    return conn.execute(
        f"""SELECT pk, op, CAST(payload AS VARCHAR), would_skip_reason FROM {SCHEMA}.sync_previews
            WHERE run_id = ? AND sync = ? ORDER BY would_skip_reason IS NULL, op, pk LIMIT ?""",
        [run_id, sync, limit],
    ).fetchall()
