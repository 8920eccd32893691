"""The landing layout (RudderStack's dump keys, both date formats), the local store, and staging: every
file's lines reach the loader whole and with their true line numbers."""

from __future__ import annotations

import gzip
import threading
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import duckdb
import pytest

from cdp_assets.event_stream.landing import (
    LandingError,
    LandingFile,
    LocalLandingStore,
    dump_key,
    is_dump_key,
    landing_store,
    parse_key_date,
)
from cdp_assets.event_stream.ledger import pending
from cdp_assets.event_stream.loader import LoadOptions, load_events
from cdp_assets.event_stream.staging import StagedFile, create_stage
from cdp_assets.warehouse.duckdb_engine import DuckDBWarehouse
from cdp_assets_tests.conftest import SOURCE_ID, event, write_dump
from cdp_assets_tests.event_stream.helpers import ES, LEDGER, compact, gzip_lines, load, load_errors, query

UPLOADED = datetime(2021, 7, 26, 10, 0, tzinfo=UTC)


def test_dump_keys_follow_rudderstacks_layout() -> None:
    uuid = "6f1c2d3e-0000-4000-8000-000000000001"
    assert (
        dump_key(SOURCE_ID, UPLOADED, uuid)
        == f"rudder-logs/{SOURCE_ID}/2021-07-26/1627293600.{SOURCE_ID}.{uuid}.json.gz"
    )
    legacy = dump_key(SOURCE_ID, UPLOADED, uuid, legacy_date=True)
    assert legacy == f"rudder-logs/{SOURCE_ID}/07-26-2021/1627293600.{SOURCE_ID}.{uuid}.json.gz"
    for key in (dump_key(SOURCE_ID, UPLOADED, uuid), legacy, "prefix/" + legacy):
        file = LandingFile(key=key, size=1, etag="e", modified=UPLOADED)
        assert is_dump_key(key)
        assert file.source_id == SOURCE_ID
        assert file.upload_date == date(2021, 7, 26)


def test_key_dates_and_non_dump_keys() -> None:
    assert parse_key_date("2021-07-26") == date(2021, 7, 26)
    assert parse_key_date("07-26-2021") == date(2021, 7, 26)
    assert parse_key_date("26-07-2021") is None
    assert parse_key_date("yesterday") is None
    assert not is_dump_key("rudder-logs/src/2021-07-26/notes.txt")
    assert not is_dump_key("elsewhere/2021-07-26/1.src.uuid.json.gz")
    # A key outside the layout takes the day it was written, so a reload of that day reaches it.
    odd = LandingFile(key="rudder-logs/src/someday/1.src.u.json.gz", size=1, etag="e", modified=UPLOADED)
    assert odd.source_id == "src" and odd.upload_date == UPLOADED.date()
    loose = LandingFile(key="rudder-logs/odd.json.gz", size=1, etag="e", modified=UPLOADED)
    assert loose.source_id is None and loose.upload_date == UPLOADED.date()


def test_local_store_lists_dump_files_only(landing) -> None:
    key = write_dump(landing, [event()], uploaded_at=UPLOADED)
    (landing.root / "README.md").write_text("not a dump")
    (landing.root / "rudder-logs" / "partial.json.gz.tmp").write_bytes(b"half")
    listed = list(landing.list_files())
    assert [f.key for f in listed] == [key]
    stat = (landing.root / key).stat()
    assert listed[0].size == stat.st_size
    assert listed[0].etag == f"{stat.st_size}-{stat.st_mtime_ns}"
    with landing.local_copy(listed[0]) as path:
        assert gzip.decompress(path.read_bytes()).startswith(b'{"type":"track"')
    assert list(LocalLandingStore(landing.root / "missing").list_files()) == []


def test_local_listing_follows_folder_links_skips_dangling_ones_and_refuses_a_file(landing, tmp_path) -> None:
    key = write_dump(landing, [event()], uploaded_at=UPLOADED)
    elsewhere = LocalLandingStore(tmp_path / "elsewhere")
    linked = write_dump(elsewhere, [event()], uploaded_at=UPLOADED, source_id="SRC2")
    (landing.root / "rudder-logs" / "SRC2").symlink_to(elsewhere.root / "rudder-logs" / "SRC2")
    (landing.root / "rudder-logs" / "loop").symlink_to(landing.root)  # walked once, not forever
    dangling = Path(key).with_name("1793529000.x.00000000-0000-4000-8000-000000000000.json.gz")
    (landing.root / dangling).symlink_to(tmp_path / "nothing-here.json.gz")
    assert sorted(f.key for f in landing.list_files()) == sorted([key, linked])
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    with pytest.raises(LandingError, match="not a folder"):
        list(LocalLandingStore(a_file).list_files())


def test_a_file_deleted_after_listing_is_skipped_and_tried_again_later(landing, warehouse_path) -> None:
    keys = [write_dump(landing, [event(messageId=f"m-{i}")], uploaded_at=UPLOADED) for i in range(3)]
    moved = landing.root / keys[1]
    aside = moved.with_name("aside")
    summary = load_events(
        landing,
        DuckDBWarehouse(warehouse_path),
        progress=lambda event_, _data: moved.rename(aside) if event_ == "listed" else None,
    )
    assert (summary.files, summary.loaded, summary.balanced) == (2, 2, True)
    assert [s["file"] for s in summary.skipped_files] == [keys[1]]
    assert "no longer there" in summary.skipped_files[0]["reason"]
    assert query(warehouse_path, f"SELECT count(*) FROM {LEDGER}.files") == [(2,)]
    aside.rename(moved)  # back: it was never recorded, so the next load reads it
    again = load(landing, warehouse_path)
    assert (again.files, again.loaded, again.skipped_files) == (1, 1, [])


def test_two_loads_at_once_in_one_process_load_each_file_once(landing, warehouse_path) -> None:
    for i in range(40):
        write_dump(landing, [event(messageId=f"c-{i}-{j}") for j in range(50)], uploaded_at=UPLOADED)
    summaries = []
    warehouse = DuckDBWarehouse(warehouse_path)
    # (load_events itself: the test helper's checks open the file outside the process's shared instance.)
    threads = [
        threading.Thread(target=lambda: summaries.append(load_events(landing, warehouse, LoadOptions(chunk_files=5))))
        for _ in range(2)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(s.files for s in summaries) == [0, 40]
    assert query(warehouse_path, f"SELECT count(*), count(DISTINCT id) FROM {ES}.tracks") == [(2000, 2000)]


def test_landing_urls(tmp_path) -> None:
    assert landing_store(str(tmp_path)).url == str(tmp_path.resolve())
    assert landing_store(f"file://{tmp_path}").url == str(tmp_path.resolve())


def test_pending_files_are_the_new_versions_oldest_first() -> None:
    def f(key: str, etag: str, minutes: int) -> LandingFile:
        return LandingFile(key=key, size=1, etag=etag, modified=UPLOADED + timedelta(minutes=minutes))

    files = [f("c", "1", 5), f("a", "1", 10), f("b", "1", 5), f("d", "2", 1)]
    done = {("a", "1"), ("d", "1")}
    assert [x.key for x in pending(files, done)] == ["d", "b", "c"]


def _stage(tmp_path: Path, files: dict[str, bytes]) -> tuple[list[StagedFile], list[tuple]]:
    staged = []
    for i, (name, data) in enumerate(files.items()):
        path = tmp_path / name
        path.write_bytes(data)
        key = dump_key(SOURCE_ID, UPLOADED, f"00000000-0000-4000-8000-{i:012d}")
        staged.append(StagedFile(i, LandingFile(key, len(data), "e", UPLOADED), path))
    conn = duckdb.connect()
    create_stage(conn, staged)
    rows = conn.execute(
        "SELECT f.file_idx, r.raw, r.line_no FROM _raw r JOIN _chunk_files f ON f.path = r.filename ORDER BY r.rowid"
    ).fetchall()
    conn.close()
    return staged, rows


def test_staging_reads_every_line_in_place_and_crlf_files_exactly_in_python(tmp_path) -> None:
    plain = gzip_lines(["{}", '{"a":1}'])
    files = {
        "plain.json.gz": plain,
        "blank.json.gz": gzip_lines(["{}", "", '{"b":2}']),
        "crlf.json.gz": gzip_lines(["{}", '{"c":3}'], newline=b"\r\n"),
        "no-final-newline.json.gz": gzip.compress(b'{}\n{"d":4}', mtime=0),
        "two-members.json.gz": gzip.compress(b"{}\n", mtime=0) + gzip.compress(b'{"e":5}\n', mtime=0),
        "plain-too.json.gz": plain,
        "blank-and-cr.json.gz": gzip_lines(["{}", "", '{"f":\r6}']),
    }
    staged, rows = _stage(tmp_path, files)
    assert {s.path.name: s.reader for s in staged} == {
        "plain.json.gz": "csv",
        # An empty line may be half of a CRLF: a file with one is searched for CRs, and read exactly if
        # it holds any.
        "blank.json.gz": "csv",
        "crlf.json.gz": "python",  # the engine's reader would end a line at each CR too
        "no-final-newline.json.gz": "csv",
        "two-members.json.gz": "python",  # the gzip trailer states only the last member's size
        "plain-too.json.gz": "csv",
        "blank-and-cr.json.gz": "python",
    }
    assert all(s.corrupt_reason is None for s in staged)
    # Lines in file order and line order, whichever reader took them; the exact reader numbers them.
    assert [r[0] for r in rows] == sorted(r[0] for r in rows)
    by_file: dict[int, list] = {}
    for idx, raw, line_no in rows:
        by_file.setdefault(idx, []).append((raw, line_no))
    assert [raw for raw, _n in by_file[1]] == ["{}", None, '{"b":2}']
    assert [n for _raw, n in by_file[1]] == [1, 2, 3]
    assert [raw for raw, _n in by_file[2]] == ["{}", '{"c":3}']
    assert [raw for raw, _n in by_file[3]] == ["{}", '{"d":4}']
    assert [raw for raw, _n in by_file[4]] == ["{}", '{"e":5}']
    assert by_file[6] == [("{}", 1), (None, 2), ('{"f":\r6}', 3)]


def test_line_numbers_stay_exact_around_carriage_returns_and_control_bytes(landing, warehouse_path) -> None:
    lines: list[dict | str | bytes] = [
        event(messageId="ok-1"),
        # A CR is JSON whitespace between tokens: one line, one event.
        compact(event(messageId="cr-inside")).replace(',"anonymousId"', ',\r"anonymousId"'),
        b"two\x01control\x01bytes",
        "",
        "  ",
        event(messageId="ok-2"),
        "nope",
    ]
    key = dump_key(SOURCE_ID, UPLOADED, "00000000-0000-4000-8000-000000000042")
    landing.put(key, gzip_lines(lines))
    summary = load(landing, warehouse_path)
    assert (summary.lines, summary.blank_lines, summary.loaded, summary.discarded) == (5, 2, 3, 2)
    assert {r[0] for r in query(warehouse_path, f"SELECT id FROM {ES}.tracks")} == {"ok-1", "cr-inside", "ok-2"}
    errors = load_errors(warehouse_path)
    assert [(e["line_no"], e["reason"], e["raw_text"]) for e in errors] == [
        (3, "invalid_json", "two\x01control\x01bytes"),
        (7, "invalid_json", "nope"),
    ]


@pytest.mark.parametrize("legacy", [False, True])
def test_both_date_formats_load_and_record_their_upload_date(landing, warehouse_path, legacy) -> None:
    key = write_dump(landing, [event()], uploaded_at=UPLOADED, legacy_date=legacy)
    load(landing, warehouse_path)
    assert query(warehouse_path, "SELECT file_key, source_id, upload_date FROM event_load.files") == [
        (key, SOURCE_ID, date(2021, 7, 26))
    ]
