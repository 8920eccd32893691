"""Data-quality queries on the event-stream tables, run after every load.

Plain SQL over a warehouse connection, no orchestration: `defs/event_stream.py` turns each outcome
into a Dagster asset check, and a test or a shell can call the same functions on any warehouse file.
Every function returns a `CheckOutcome` whose metadata is numbers where it can be (the UI plots them).

Table names come from the loader's spec or from `naming` and pass through `quote`; values are bound.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from cdp_assets.event_stream import ledger, spec
from cdp_assets.event_stream.naming import quote
from cdp_assets.warehouse import Connection

MetadataValue = int | float | str | None
# How many offending ids a failed uniqueness check shows: enough to start looking, small enough to log.
SAMPLE_SIZE = 5
# Clock skew a received time may show over `now` before it counts as in the future (see tracks_fresh).
FUTURE_TOLERANCE = timedelta(minutes=5)


@dataclass(frozen=True)
class CheckOutcome:
    passed: bool
    description: str
    metadata: dict[str, MetadataValue] = field(default_factory=dict)


def table_exists(conn: Connection, table: str, schema: str = spec.SCHEMA) -> bool:
    row = conn.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = ? AND table_name = ?",
        [schema, table],
    ).fetchone()
    return bool(row and row[0])


def tables_in_schema(conn: Connection, schema: str = spec.SCHEMA) -> list[str]:
    rows = conn.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = ? ORDER BY table_name",
        [schema],
    ).fetchall()
    return [name for (name,) in rows]


def row_counts(conn: Connection, tables: list[str], schema: str = spec.SCHEMA) -> dict[str, int]:
    """Exact row count of each table (0 for a table that does not exist yet), in one statement."""
    existing = set(tables_in_schema(conn, schema))
    present = [t for t in tables if t in existing]
    counts = dict.fromkeys(tables, 0)
    if present:
        union = " UNION ALL ".join(f"SELECT ? AS t, count(*) AS n FROM {quote(schema)}.{quote(t)}" for t in present)
        counts.update({t: int(n) for t, n in conn.execute(union, present).fetchall()})
    return counts


def message_id_unique(conn: Connection, table: str, schema: str = spec.SCHEMA) -> CheckOutcome:
    """Every row of an event table has its own message id: count(*) = count(DISTINCT id).

    A null id fails it too (count(DISTINCT) skips nulls): a row without an id cannot be deduplicated,
    so the loader's exactly-once promise would not hold for it.
    """
    if not table_exists(conn, table, schema):
        return CheckOutcome(True, f"{schema}.{table} does not exist yet", {"rows": 0, "duplicate_rows": 0})
    name = f"{quote(schema)}.{quote(table)}"
    rows, distinct, null_ids = conn.execute(
        f"SELECT count(*), count(DISTINCT id), count(*) - count(id) FROM {name}"
    ).fetchone()
    extra = int(rows) - int(distinct)
    metadata: dict[str, MetadataValue] = {
        "rows": int(rows),
        "distinct_ids": int(distinct),
        "duplicate_rows": extra,
        "null_ids": int(null_ids),
    }
    if extra == 0:
        return CheckOutcome(True, f"{rows} rows, all ids distinct", metadata)
    sample = conn.execute(
        f"SELECT id FROM {name} WHERE id IS NOT NULL GROUP BY id HAVING count(*) > 1 ORDER BY id LIMIT ?",
        [SAMPLE_SIZE],
    ).fetchall()
    metadata["sample_duplicate_ids"] = ", ".join(str(i) for (i,) in sample) or None
    return CheckOutcome(False, f"{extra} of {rows} rows repeat an id already in {table}", metadata)


def discards_ratio(conn: Connection, threshold: float) -> CheckOutcome:
    """(lines discarded + values discarded) / lines read, for the latest load that read any line.

    A load that found no new file read nothing and says nothing about quality, so it does not reset
    the figure: the check keeps judging the last load that had data until a new one replaces it.
    """
    if not table_exists(conn, "loads", ledger.SCHEMA):
        return CheckOutcome(True, "no load has run yet", {"ratio": 0.0, "threshold": threshold})
    row = conn.execute(
        f"""SELECT load_id, lines, discarded, value_discards FROM {ledger.SCHEMA}.loads
            WHERE lines > 0 ORDER BY started_at DESC, load_id DESC LIMIT 1"""
    ).fetchone()
    if row is None:
        return CheckOutcome(True, "no load has read any line yet", {"ratio": 0.0, "threshold": threshold})
    load_id, lines, discarded, value_discards = row
    ratio = (int(discarded) + int(value_discards or 0)) / int(lines)
    metadata: dict[str, MetadataValue] = {
        "ratio": round(ratio, 6),
        "threshold": threshold,
        "lines": int(lines),
        "line_discards": int(discarded),
        "value_discards": int(value_discards or 0),
        "load_id": load_id,
    }
    verdict = "within" if ratio <= threshold else "above"
    return CheckOutcome(
        ratio <= threshold,
        f"load {load_id}: {ratio:.2%} of lines discarded, {verdict} the {threshold:.2%} threshold",
        metadata,
    )


def tracks_fresh(
    conn: Connection, max_age_hours: float, now: datetime | None = None, schema: str = spec.SCHEMA
) -> CheckOutcome:
    """The newest track was received at most `max_age_hours` before `now` (the SDKs send all day).

    Tracks received after `now` (beyond a few minutes of clock skew) do not count: one bad clock would
    otherwise keep the check green however stale the table; they are counted in the metadata instead.
    """
    now = now or datetime.now(UTC)
    table = spec.TYPE_TABLES["track"]
    latest, future = None, 0
    if table_exists(conn, table, schema):
        latest, future = conn.execute(
            f"""SELECT max(received_at) FILTER (WHERE received_at <= $limit),
                       count(*) FILTER (WHERE received_at > $limit)
                FROM {quote(schema)}.{quote(table)}""",
            {"limit": now + FUTURE_TOLERANCE},
        ).fetchone()
    future_note = f"; {future} received in the future ignored" if future else ""
    if latest is None:
        return CheckOutcome(
            False, f"{schema}.{table} has no rows{future_note}", {"max_age_hours": max_age_hours, "future_rows": future}
        )
    if latest.tzinfo is None:
        latest = latest.replace(tzinfo=UTC)  # the warehouse stores UTC (DuckDB engine sets TimeZone)
    age_hours = (now - latest).total_seconds() / 3600
    metadata: dict[str, MetadataValue] = {
        "age_hours": round(age_hours, 3),
        "max_age_hours": max_age_hours,
        "latest_received_at": latest.astimezone(UTC).isoformat(),
        "future_rows": int(future),
    }
    if age_hours <= max_age_hours:
        return CheckOutcome(True, f"latest track received {age_hours:.1f} h ago{future_note}", metadata)
    return CheckOutcome(
        False, f"latest track received {age_hours:.1f} h ago, more than {max_age_hours:g} h{future_note}", metadata
    )
