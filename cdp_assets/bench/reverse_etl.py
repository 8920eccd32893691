"""`cdp bench reverse-etl`: the diff engine against a naive Python comparison of the same two tables.

A model of N rows is synced once (its snapshot committed, not timed), a share of its rows is changed
(plus a few added and removed), then the plan is timed, and in the same run the naive way: read the
whole model and the whole snapshot into Python and compare them row by row. Both must find the same
changes.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import duckdb

from cdp_assets.reverse_etl.diff import SCHEMA, commit, plan_sync

COLUMNS = ["email", "first_name", "plan", "mrr", "account_type", "unsubscribed", "last_seen_at"]


def _build_model(conn: duckdb.DuckDBPyConnection, rows: int) -> None:
    conn.execute(
        """CREATE OR REPLACE TABLE main.bench_people AS
           SELECT 'usr_' || lpad(i::VARCHAR, 8, '0') AS user_id,
                  'person' || i || '@example.com' AS email,
                  'Name' || (i % 997) AS first_name,
                  ['free', 'pro', 'enterprise'][1 + i % 3] AS plan,
                  (i % 500) * 10.0 AS mrr,
                  ['Prospect', 'Customer'][1 + i % 2] AS account_type,
                  i % 13 = 0 AS unsubscribed,
                  TIMESTAMPTZ '2026-01-01 00:00:00+00' + to_seconds(i) AS last_seen_at
           FROM range(?) r(i)""",
        [rows],
    )


def _change(conn: duckdb.DuckDBPyConnection, rows: int, share: float) -> int:
    """Change `share` of the rows (every k-th), and add and remove a few: the run's real differences."""
    step = max(1, round(1 / share)) if share > 0 else rows + 1
    conn.execute(
        "UPDATE main.bench_people SET mrr = mrr + 1, plan = 'pro' WHERE CAST(substr(user_id, 5) AS BIGINT) % ? = 0",
        [step],
    )
    changed = conn.execute(
        "SELECT count(*) FROM main.bench_people WHERE CAST(substr(user_id, 5) AS BIGINT) % ? = 0", [step]
    ).fetchone()[0]
    conn.execute("DELETE FROM main.bench_people WHERE user_id IN ('usr_00000001', 'usr_00000002')")
    conn.execute(
        "INSERT INTO main.bench_people SELECT 'new_' || i, 'new' || i || '@example.com', 'New', 'free', 0, "
        "'Prospect', false, TIMESTAMPTZ '2026-02-01 00:00:00+00' FROM range(3) r(i)"
    )
    return changed


def _naive(conn: duckdb.DuckDBPyConnection, sync: str) -> tuple[float, dict[str, int]]:
    """The comparison without the engine's help: both full tables into Python dicts, compared by key."""
    started = time.perf_counter()
    model = {
        row[0]: row[1:]
        for row in conn.execute(f"SELECT user_id, {', '.join(sorted(COLUMNS))} FROM main.bench_people").fetchall()
    }
    snapshot = {
        pk: payload
        for pk, payload in conn.execute(f"SELECT pk, payload FROM {SCHEMA}.snapshots WHERE sync = ?", [sync]).fetchall()
    }
    counts = {"add": 0, "change": 0, "remove": 0, "unchanged": 0}
    for pk, values in model.items():
        previous = snapshot.get(pk)
        if previous is None:
            counts["add"] += 1
            continue
        before = json.loads(previous)
        now = dict(zip(sorted(COLUMNS), values, strict=True))
        same = all(_same(before[c], now[c]) for c in now)
        counts["unchanged" if same else "change"] += 1
    counts["remove"] = sum(1 for pk in snapshot if pk not in model)
    return time.perf_counter() - started, counts


def _same(stored: object, current: object) -> bool:
    if hasattr(current, "isoformat"):
        return stored == current.isoformat().replace("T", " ") or str(stored)[:19] == str(current)[:19]
    if isinstance(current, float) or isinstance(stored, float):
        return float(stored) == float(current)
    return stored == current


def run(rows: int, changed: float, workdir: Path | None = None) -> dict:
    sync = "bench_people"
    with tempfile.TemporaryDirectory(prefix="cdp-bench-retl-", dir=workdir) as tmp:
        conn = duckdb.connect(str(Path(tmp) / "bench.duckdb"))
        conn.execute("SET TimeZone = 'UTC'")
        conn.execute("SET enable_progress_bar = false")
        _build_model(conn, rows)
        plan_sync(conn, sync, "main.bench_people", "user_id", COLUMNS)
        commit(conn, sync, "initial", "SELECT pk FROM _sync_plan")
        expected_changes = _change(conn, rows, changed)

        started = time.perf_counter()
        plan = plan_sync(conn, sync, "main.bench_people", "user_id", COLUMNS)
        diff_seconds = time.perf_counter() - started
        naive_seconds, naive_counts = _naive(conn, sync)
        conn.close()
    engine_counts = {op: plan.counts[op] for op in ("add", "change", "remove", "unchanged")}
    return {
        "rows": rows,
        "changed_share": changed,
        "expected_changes": expected_changes,
        "diff_seconds": round(diff_seconds, 3),
        "diff_rows_per_s": round(rows / diff_seconds),
        "naive_seconds": round(naive_seconds, 3),
        "naive_rows_per_s": round(rows / naive_seconds),
        "speedup": round(naive_seconds / diff_seconds, 1),
        "engine_counts": engine_counts,
        "naive_counts": naive_counts,
        "same_result": engine_counts == naive_counts,
    }


def format_report(r: dict) -> str:
    return "\n".join(
        [
            f"cdp bench reverse-etl: {r['rows']:,} rows, {r['changed_share']:.2%} changed "
            f"({r['expected_changes']:,} rows, plus 3 added and 2 removed)",
            f"  diff engine   {r['diff_seconds']:>8.3f} s  {r['diff_rows_per_s']:>12,} rows/s  {r['engine_counts']}",
            f"  naive Python  {r['naive_seconds']:>8.3f} s  {r['naive_rows_per_s']:>12,} rows/s  {r['naive_counts']}",
            f"  speed-up {r['speedup']}x, same result: {r['same_result']}",
        ]
    )
