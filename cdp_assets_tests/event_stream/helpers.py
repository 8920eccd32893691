"""Helpers for the event-load tests: run a load, read the warehouse back, compare two warehouses."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import duckdb

from cdp_assets.event_stream.landing import LandingStore
from cdp_assets.event_stream.loader import LoadOptions, LoadSummary, load_events
from cdp_assets.warehouse.duckdb_engine import DuckDBWarehouse

ES = "event_stream"
LEDGER = "event_load"


def load(landing: LandingStore, warehouse_path: Path, **options: Any) -> LoadSummary:
    """One load; every load in these tests must account for every line it read."""
    summary = load_events(landing, DuckDBWarehouse(warehouse_path), LoadOptions(**options))
    assert summary.balanced, summary
    assert summary.lines == summary.loaded + summary.filtered + summary.duplicates + summary.discarded
    assert_ledger_balanced(warehouse_path)
    return summary


def assert_ledger_balanced(warehouse_path: Path) -> None:
    """Per file, the ledger's counts add up, and its detail tables hold one row per counted line."""
    with duckdb.connect(str(warehouse_path), read_only=True) as conn:
        bad = conn.execute(
            f"SELECT file_key FROM {LEDGER}.files WHERE lines <> loaded + filtered + duplicates + discarded"
        ).fetchall()
        assert not bad, bad
        for table, column in (("load_errors", "discarded"), ("filtered", "filtered"), ("duplicates", "duplicates")):
            detail = conn.execute(f"SELECT count(*) FROM {LEDGER}.{table}").fetchone()[0]
            total = conn.execute(f"SELECT coalesce(sum({column}), 0) FROM {LEDGER}.files").fetchone()[0]
            assert detail == total, (table, detail, total)


def query(warehouse_path: Path, sql: str, params: Any = None) -> list[tuple]:
    with duckdb.connect(str(warehouse_path), read_only=True) as conn:
        conn.execute("SET TimeZone = 'UTC'")
        return conn.execute(sql, params).fetchall()


def dicts(warehouse_path: Path, sql: str, params: Any = None) -> list[dict]:
    with duckdb.connect(str(warehouse_path), read_only=True) as conn:
        conn.execute("SET TimeZone = 'UTC'")
        cursor = conn.execute(sql, params)
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def table_rows(warehouse_path: Path, table: str, order: str = "id") -> list[dict]:
    return dicts(warehouse_path, f'SELECT * FROM {ES}."{table}" ORDER BY {order}')


def row(warehouse_path: Path, table: str, message_id: str) -> dict:
    rows = dicts(warehouse_path, f'SELECT * FROM {ES}."{table}" WHERE id = ?', [message_id])
    assert len(rows) == 1, rows
    return rows[0]


def columns(warehouse_path: Path, table: str, schema: str = ES) -> dict[str, str]:
    return dict(
        query(
            warehouse_path,
            "SELECT column_name, data_type FROM duckdb_columns() WHERE schema_name = ? AND table_name = ? "
            "ORDER BY column_index",
            [schema, table],
        )
    )


def tables(warehouse_path: Path, schema: str = ES) -> set[str]:
    return {
        r[0] for r in query(warehouse_path, "SELECT table_name FROM duckdb_tables() WHERE schema_name = ?", [schema])
    }


def discards(warehouse_path: Path) -> list[dict]:
    return dicts(
        warehouse_path,
        f"SELECT table_name, row_id, column_name, column_value, reason FROM {ES}.rudder_discards "
        "ORDER BY table_name, row_id, column_name",
    )


def load_errors(warehouse_path: Path) -> list[dict]:
    return dicts(
        warehouse_path,
        f"SELECT file_key, line_no, reason, raw_text FROM {LEDGER}.load_errors ORDER BY file_key, line_no",
    )


def _sortable(value: Any) -> tuple:
    return (value is None, repr(value))


def snapshot(warehouse_path: Path) -> dict[str, Any]:
    """Everything a load wrote, independent of when and by which load id: every event table (without
    `uuid_ts`) with its column types and rows, and the ledger's per-line outcomes."""
    out: dict[str, Any] = {}
    with duckdb.connect(str(warehouse_path), read_only=True) as conn:
        conn.execute("SET TimeZone = 'UTC'")
        cols: dict[str, dict[str, str]] = {}
        for table, column, dtype in conn.execute(
            "SELECT table_name, column_name, data_type FROM duckdb_columns() WHERE schema_name = ? "
            "ORDER BY table_name, column_index",
            [ES],
        ).fetchall():
            if column != "uuid_ts":
                cols.setdefault(table, {})[column] = dtype
        for table, table_cols in cols.items():
            select = ", ".join(f'"{c}"' for c in table_cols)
            rows = conn.execute(f'SELECT {select} FROM {ES}."{table}"').fetchall()
            out[table] = (table_cols, sorted(rows, key=lambda r: [_sortable(v) for v in r]))
        ledger = {
            "files": "SELECT file_key, etag, status, reason, lines, blank_lines, loaded, filtered, duplicates, "
            "discarded FROM event_load.files",
            "messages": "SELECT message_id, outcome, table_name, file_key FROM event_load.messages",
            "load_errors": "SELECT file_key, line_no, reason, raw_text FROM event_load.load_errors",
            "filtered": "SELECT file_key, line_no, message_id, rule FROM event_load.filtered",
            "duplicates": "SELECT file_key, line_no, message_id FROM event_load.duplicates",
        }
        for name, sql in ledger.items():
            rows = conn.execute(sql).fetchall()
            out[f"ledger.{name}"] = sorted(rows, key=lambda r: [_sortable(v) for v in r])
    return out


def gzip_lines(lines: list[dict | str | bytes], newline: bytes = b"\n") -> bytes:
    """Gzip bytes of these lines: dicts as compact JSON, strings as UTF-8, bytes as they are."""
    parts = []
    for line in lines:
        if isinstance(line, dict):
            parts.append(json.dumps(line, separators=(",", ":")).encode())
        elif isinstance(line, str):
            parts.append(line.encode())
        else:
            parts.append(line)
    return gzip.compress(newline.join(parts) + newline, mtime=0)


def compact(value: dict) -> str:
    return json.dumps(value, separators=(",", ":"))
