"""The reverse-ETL ledger in schema `reverse_etl`, next to the diff engine's `snapshots`.

- `sync_runs`: one row per run, the figures of its `SyncResult`, its options, start and finish;
- `sync_row_results`: one row per row a run sent or held back: `accepted`, `rejected` (with the
  destination's error), `skipped_consent` (with the consent status that refused it), `invalid` (null
  or duplicate key), `not_sent` (the run stopped on a quota before reaching it);
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


def execute_many(conn: Connection, sql: str, rows: list[tuple[Any, ...]]) -> None:
    """`executemany` where the driver has it (DuckDB, Snowflake), else one execute per row."""
    many = getattr(conn, "executemany", None)
    if many is not None:
        many(sql, rows)
    else:
        for row in rows:
            conn.execute(sql, row)


def _json(value: Any) -> str | None:
    return None if value is None else json.dumps(value, sort_keys=True, default=str)


def record_rows(
    conn: Connection, run_id: str, sync: str, rows: Iterable[tuple[str | None, str, str, str | None]], at: datetime
) -> None:
    """(pk, op, status, error) per row."""
    batch = [(run_id, sync, pk, op, status, error, at) for pk, op, status, error in rows]
    if batch:
        execute_many(conn, f"INSERT INTO {SCHEMA}.sync_row_results VALUES (?, ?, ?, ?, ?, ?, ?)", batch)


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
        execute_many(conn, f"INSERT INTO {SCHEMA}.sync_previews VALUES (?, ?, ?, ?, ?, ?, ?, ?)", batch)


def record_run(conn: Connection, values: Mapping[str, Any]) -> None:
    columns = list(values)
    placeholders = ", ".join("?" for _ in columns)
    conn.execute(
        f"INSERT INTO {SCHEMA}.sync_runs ({', '.join(columns)}) VALUES ({placeholders})",
        [values[c] for c in columns],
    )
