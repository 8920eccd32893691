"""Dedup on messageId (within a file, across files, across loads) and the accounting of every line."""

from __future__ import annotations

import hashlib
import json
import os
from datetime import UTC, datetime

import duckdb

from cdp_assets_tests.conftest import event, write_dump
from cdp_assets_tests.event_stream.helpers import ES, LEDGER, dicts, gzip_lines, load, query, snapshot

T0 = datetime(2026, 11, 1, 10, 30, tzinfo=UTC)


def _at(hour: int) -> datetime:
    return T0.replace(hour=hour)


def _ids(wh, table: str = "tracks") -> list[str]:
    return [r[0] for r in query(wh, f"SELECT id FROM {ES}.{table} ORDER BY id")]


def test_duplicates_within_a_file_across_files_and_across_loads(landing, warehouse_path) -> None:
    first = write_dump(
        landing,
        [
            event(messageId="m-1", properties={"v": "first"}),
            event(messageId="m-1", properties={"v": "second"}),  # same file
            event(messageId=" m-2 "),  # trimmed, like the gateway does
            event(messageId="m-2"),
            event(messageId="m-3", anonymousId=None),  # discarded: does not claim m-3
            event(messageId="m-3"),
        ],
        uploaded_at=_at(10),
    )
    second = write_dump(landing, [event(messageId="m-1"), event(messageId="m-4")], uploaded_at=_at(11))
    summary = load(landing, warehouse_path)
    assert (summary.files, summary.lines, summary.loaded, summary.duplicates, summary.discarded) == (2, 8, 4, 3, 1)
    assert _ids(warehouse_path) == ["m-1", "m-2", "m-3", "m-4"]
    # The first occurrence is the one kept.
    assert query(warehouse_path, f"SELECT v FROM {ES}.order_completed WHERE id = 'm-1'") == [("first",)]
    dups = query(warehouse_path, f"SELECT file_key, line_no, message_id FROM {LEDGER}.duplicates ORDER BY 1, 2")
    assert sorted(dups) == sorted([(first, 2, "m-1"), (first, 4, "m-2"), (second, 1, "m-1")])

    # A later load: a message loaded before is a duplicate, a new one loads.
    third = write_dump(landing, [event(messageId="m-4"), event(messageId="m-5")], uploaded_at=_at(12))
    later = load(landing, warehouse_path)
    assert (later.files, later.lines, later.loaded, later.duplicates) == (1, 2, 1, 1)
    assert _ids(warehouse_path) == ["m-1", "m-2", "m-3", "m-4", "m-5"]
    assert query(warehouse_path, f"SELECT line_no FROM {LEDGER}.duplicates WHERE file_key = ?", [third]) == [(1,)]
    assert query(warehouse_path, f"SELECT count(*), count(DISTINCT message_id) FROM {LEDGER}.messages") == [(5, 5)]


def test_events_without_a_message_id_are_all_kept(landing, warehouse_path) -> None:
    write_dump(landing, [event(messageId=None), event(messageId=None), event(messageId="  ")])
    summary = load(landing, warehouse_path)
    assert (summary.loaded, summary.duplicates) == (3, 0)
    ids = _ids(warehouse_path)
    assert len(set(ids)) == 3 and all(i.startswith("cdp-") for i in ids)


def _md5_prefix(message_id: str) -> int:
    return int(hashlib.md5(message_id.encode()).hexdigest()[:16], 16)


def test_an_id_is_a_duplicate_only_when_its_text_matches_not_just_its_hash(landing, warehouse_path) -> None:
    write_dump(landing, [event(messageId="m-1")], uploaded_at=_at(10))
    load(landing, warehouse_path)
    # Every recorded id carries the first 8 bytes of its MD5, the key deduplication looks ids up by.
    assert query(warehouse_path, f"SELECT message_id, id_hash FROM {LEDGER}.messages") == [("m-1", _md5_prefix("m-1"))]
    # Another id recorded under m-2's hash (as a hash collision would): m-2 must still load.
    with duckdb.connect(str(warehouse_path)) as conn:
        conn.execute(
            f"INSERT INTO {LEDGER}.messages VALUES ('not-m-2', 'loaded', 'tracks', 'elsewhere', 'earlier', ?)",
            [_md5_prefix("m-2")],
        )
    write_dump(landing, [event(messageId="m-2"), event(messageId="m-1")], uploaded_at=_at(11))
    later = load(landing, warehouse_path)
    assert (later.loaded, later.duplicates) == (1, 1)
    assert _ids(warehouse_path) == ["m-1", "m-2"]


def test_a_ledger_from_before_id_hashes_gets_them_and_still_deduplicates(landing, warehouse_path) -> None:
    # The ledger's messages table as loads before `id_hash` wrote it, with one message recorded.
    warehouse_path.parent.mkdir(parents=True, exist_ok=True)
    with duckdb.connect(str(warehouse_path)) as conn:
        conn.execute(f"CREATE SCHEMA {LEDGER}")
        conn.execute(
            f"CREATE TABLE {LEDGER}.messages (message_id VARCHAR NOT NULL, outcome VARCHAR NOT NULL, "
            "table_name VARCHAR, file_key VARCHAR NOT NULL, load_id VARCHAR NOT NULL)"
        )
        conn.execute(f"INSERT INTO {LEDGER}.messages VALUES ('m-old', 'loaded', 'tracks', 'old-file', 'old-load')")
    write_dump(landing, [event(messageId="m-old"), event(messageId="m-new")], uploaded_at=_at(10))
    summary = load(landing, warehouse_path)
    assert (summary.loaded, summary.duplicates) == (1, 1)
    assert _ids(warehouse_path) == ["m-new"]
    hashes = query(warehouse_path, f"SELECT message_id, id_hash FROM {LEDGER}.messages ORDER BY 1")
    assert hashes == [("m-new", _md5_prefix("m-new")), ("m-old", _md5_prefix("m-old"))]
    nullable = query(
        warehouse_path,
        "SELECT is_nullable FROM information_schema.columns WHERE table_schema = ? AND table_name = 'messages' "
        "AND column_name = 'id_hash'",
        [LEDGER],
    )
    assert nullable == [("NO",)]


def test_a_rerun_loads_nothing(landing, warehouse_path) -> None:
    write_dump(landing, [event(messageId="r-1"), "not json", event(messageId="r-1")], uploaded_at=_at(10))
    write_dump(landing, [event("identify", messageId="r-2", userId="u-1")], uploaded_at=_at(11))
    first = load(landing, warehouse_path)
    assert (first.files, first.lines, first.loaded, first.duplicates, first.discarded) == (2, 4, 2, 1, 1)
    before = snapshot(warehouse_path)

    again = load(landing, warehouse_path)
    zero = (again.files, again.lines, again.loaded, again.filtered, again.duplicates, again.discarded)
    assert zero == (0, 0, 0, 0, 0, 0)
    assert (again.blank_lines, again.value_discards, again.chunks) == (0, 0, 0)
    assert again.tables == {} and again.new_columns == {} and again.corrupt_files == []
    assert snapshot(warehouse_path) == before

    loads = dicts(warehouse_path, f"SELECT * FROM {LEDGER}.loads ORDER BY started_at")
    assert [(r["files"], r["lines"], r["loaded"]) for r in loads] == [(2, 4, 2), (0, 0, 0)]
    recorded = json.loads(loads[0]["summary"])
    assert recorded["load_id"] == first.load_id and recorded["duplicates"] == 1


def test_a_file_uploaded_again_under_a_new_etag_is_read_again_as_duplicates(landing, warehouse_path) -> None:
    key = write_dump(landing, [event(messageId="e-1"), event(messageId="e-2"), "[]"])
    load(landing, warehouse_path)
    path = landing.root / key
    data = path.read_bytes()
    landing.put(key, data)  # the same bytes again: a new version of the object
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    summary = load(landing, warehouse_path)
    assert (summary.files, summary.lines, summary.loaded, summary.duplicates, summary.discarded) == (1, 3, 0, 2, 1)
    assert _ids(warehouse_path) == ["e-1", "e-2"]
    versions = query(warehouse_path, f"SELECT file_key, count(DISTINCT etag) FROM {LEDGER}.files GROUP BY 1")
    assert versions == [(key, 2)]
    # Its bad line is recorded again, for the version it was read from.
    assert query(warehouse_path, f"SELECT count(*) FROM {LEDGER}.load_errors") == [(2,)]


def test_the_ledger_accounts_for_every_line_of_every_file(landing, warehouse_path) -> None:
    from cdp_assets.event_stream.loader import LoadOptions  # noqa: F401  (options are passed by name)
    from cdp_assets.event_stream.transformations import TRANSFORMATIONS

    write_dump(
        landing,
        [
            event(messageId="a-1"),
            event(messageId="a-1"),
            "",
            event(messageId="a-2", integrations={"All": False}),
            event(messageId="a-3", context={"traits": {"email": "x@rudderstack.com"}}),
            "{",
        ],
        uploaded_at=_at(10),
    )
    write_dump(landing, [event(messageId="a-4"), event(messageId="a-2")], uploaded_at=_at(11))
    summary = load(landing, warehouse_path, transformations=(TRANSFORMATIONS["drop_internal_emails"],))
    assert (summary.lines, summary.loaded, summary.filtered, summary.duplicates, summary.discarded) == (7, 2, 2, 2, 1)
    assert summary.blank_lines == 1
    files = dicts(
        warehouse_path,
        f"SELECT lines, blank_lines, loaded, filtered, duplicates, discarded FROM {LEDGER}.files ORDER BY loaded_at, "
        "file_key",
    )
    assert sum(f["lines"] for f in files) == summary.lines
    assert sum(f["loaded"] + f["filtered"] + f["duplicates"] + f["discarded"] for f in files) == summary.lines
    outcomes = dict(query(warehouse_path, f"SELECT outcome, count(*) FROM {LEDGER}.messages GROUP BY 1"))
    assert outcomes == {"loaded": 2, "filtered": 2}


def test_lines_without_ids_in_a_file_uploaded_again_load_only_what_is_new(landing, warehouse_path) -> None:
    # Their ids come from their content and copy number: moved lines are recognised, copies kept.
    a = event(messageId=None, properties={"v": "A"})
    b = event(messageId=None, properties={"v": "B"})
    key = write_dump(landing, [a, a])
    first = load(landing, warehouse_path)
    assert (first.loaded, first.duplicates) == (2, 0)
    landing.put(key, gzip_lines([b, a, a]))
    again = load(landing, warehouse_path)
    assert (again.files, again.lines, again.loaded, again.duplicates) == (1, 3, 1, 2)
    assert sorted(r[0] for r in query(warehouse_path, f"SELECT v FROM {ES}.order_completed")) == ["A", "A", "B"]
