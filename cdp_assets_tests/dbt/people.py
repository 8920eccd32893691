"""Hand-made people for the dbt model tests: server-side (Python SDK) calls, written as a RudderStack dump
and loaded by the real loader, and the rows the built models hold."""

from __future__ import annotations

import gzip
import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb

from cdp_assets.event_stream.landing import LocalLandingStore, dump_key
from cdp_assets.event_stream.loader import load_events
from cdp_assets.warehouse.duckdb_engine import DuckDBWarehouse

T0 = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)


def at(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


def unix(hours: float) -> int:
    return int(at(hours).timestamp())


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def server_call(type_: str, hours: float, user_id: str | None, anonymous_id: str | None, **fields: Any) -> dict:
    """A server-side (Python SDK) call: the payload's own `timestamp` is the event time."""
    moment = iso(at(hours))
    line: dict[str, Any] = {
        "type": type_,
        "messageId": str(uuid.uuid4()),
        "channel": "server",
        "timestamp": moment,
        "sentAt": moment,
        "originalTimestamp": moment,
        "receivedAt": moment,
        "context": {"library": {"name": "analytics-python", "version": "2.1.9"}},
        **fields,
    }
    if user_id:
        line["userId"] = user_id
    if anonymous_id:
        line["anonymousId"] = anonymous_id
    return line


def identify(user_id: str | None, hours: float, anonymous_id: str | None = None, **traits: Any) -> dict:
    line = server_call("identify", hours, user_id, anonymous_id)
    line["context"]["traits"] = traits
    return line


def track(
    user_id: str | None,
    name: str,
    hours: float,
    anonymous_id: str | None = None,
    traits: dict | None = None,
    **properties: Any,
) -> dict:
    line = server_call("track", hours, user_id, anonymous_id, event=name, properties=properties)
    if traits is not None:
        line["context"]["traits"] = traits
    return line


def load_lines(warehouse: Path, landing_dir: Path, lines: list[dict], source_id: str) -> None:
    """Write `lines` as one dump file and load it with the real loader; every line must load."""
    store = LocalLandingStore(landing_dir)
    text = "\n".join(json.dumps(line) for line in lines) + "\n"
    store.put(dump_key(source_id, at(6), str(uuid.uuid4())), gzip.compress(text.encode(), mtime=0))
    summary = load_events(store, DuckDBWarehouse(warehouse))
    assert summary.loaded == len(lines) and summary.balanced, summary


def query_rows(warehouse: Path, sql: str, params: list[Any] | None = None) -> list[dict[str, Any]]:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        cursor = con.execute(sql, params or [])
        names = [column[0] for column in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
