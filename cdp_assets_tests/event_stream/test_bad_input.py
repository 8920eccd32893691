"""Bad input: every unusable line is discarded with its file, line number, reason and text; bad files do
not stop the others, and every line read is accounted for."""

from __future__ import annotations

import gzip
import zlib
from datetime import UTC, datetime

import pytest

from cdp_assets.event_stream.landing import dump_key
from cdp_assets.event_stream.spec import MAX_EVENT_BYTES
from cdp_assets_tests.conftest import SOURCE_ID, event, write_dump
from cdp_assets_tests.event_stream.helpers import (
    ES,
    LEDGER,
    compact,
    dicts,
    discards,
    gzip_lines,
    load,
    load_errors,
    query,
    row,
)

UPLOADED = datetime(2026, 11, 1, 10, 30, tzinfo=UTC)


def _with(base: dict, **fields: object) -> dict:
    """`base` with fields set, None kept as JSON null (unlike `event`, which drops None keys)."""
    return {**base, **fields}


def _key(n: int) -> str:
    return dump_key(SOURCE_ID, UPLOADED, f"00000000-0000-4000-8000-{n:012d}")


@pytest.fixture(scope="module")
def bad_lines_load(tmp_path_factory):
    """One file holding one of each kind of bad line between good ones, loaded once."""
    from cdp_assets.event_stream.landing import LocalLandingStore

    root = tmp_path_factory.mktemp("bad_lines")
    store = LocalLandingStore(root / "landing")
    good_1 = event(messageId="good-1")
    no_ids = event(messageId="no-ids", anonymousId=None)
    null_ids = _with(event(messageId="null-ids"), anonymousId=None, userId=None)
    empty_ids = _with(event(messageId="empty-ids"), anonymousId="", userId="  ")
    unknown_type = event("purchase", messageId="unknown-type")
    missing_type = event(messageId="missing-type", type=None)
    null_type = _with(event(messageId="null-type"), type=None)
    oversized = event(messageId="oversized", properties={"blob": "x" * (33 * 1024)})
    control = compact(event(messageId="control-byte", properties={"note": "a"})).replace('"a"', '"a\x01b"')
    good_2 = event(messageId="good-2", userId="u-2")
    lines: list[dict | str] = [
        good_1,  # 1
        "not json",  # 2
        "[1,2]",  # 3
        "3",  # 4
        "",  # 5 blank
        compact(no_ids),  # 6
        compact(null_ids),  # 7
        compact(empty_ids),  # 8
        "   \t ",  # 9 whitespace only
        unknown_type,  # 10
        missing_type,  # 11
        compact(null_type),  # 12
        oversized,  # 13
        control,  # 14
        '{"type": "track", "messageId": "cut-off", "anonymousId": "a',  # 15
        '"just a string"',  # 16
        good_2,  # 17
    ]
    key = write_dump(store, lines, uploaded_at=UPLOADED)
    wh = root / "warehouse.duckdb"
    summary = load(store, wh)
    return wh, key, summary, {"oversized": compact(oversized), "control": control}


EXPECTED_BAD = [
    (2, "invalid_json", "not json"),
    (3, "not_an_object", "[1,2]"),
    (4, "not_an_object", "3"),
    (6, "missing_ids", None),
    (7, "missing_ids", None),
    (8, "missing_ids", None),
    (10, "unknown_type", None),
    (11, "unknown_type", None),
    (12, "unknown_type", None),
    (13, "oversized", None),
    (14, "invalid_json", None),
    (15, "invalid_json", '{"type": "track", "messageId": "cut-off", "anonymousId": "a'),
    (16, "not_an_object", '"just a string"'),
]


def test_each_bad_line_is_recorded_with_file_line_reason_and_text(bad_lines_load) -> None:
    wh, key, summary, raw = bad_lines_load
    errors = load_errors(wh)
    assert [(e["file_key"], e["line_no"], e["reason"]) for e in errors] == [
        (key, line, reason) for line, reason, _text in EXPECTED_BAD
    ]
    by_line = {e["line_no"]: e for e in errors}
    for line, _reason, text in EXPECTED_BAD:
        if text is not None:
            assert by_line[line]["raw_text"] == text
    assert '"messageId":"no-ids"' in by_line[6]["raw_text"]
    # The oversized event's text is cut at 2,000 characters; its full size is kept.
    assert by_line[13]["raw_text"] == raw["oversized"][:2000]
    size = query(wh, f"SELECT raw_bytes FROM {LEDGER}.load_errors WHERE line_no = 13")[0][0]
    assert size == len(raw["oversized"].encode())
    # The 0x01 byte is part of the recorded text, not a place where the line was cut.
    assert by_line[14]["raw_text"] == raw["control"]


def test_bad_lines_are_counted_as_discarded_and_blank_lines_not_at_all(bad_lines_load) -> None:
    wh, key, summary, _raw = bad_lines_load
    assert summary.files == 1
    assert summary.lines == 15  # 17 lines, two of them blank
    assert summary.blank_lines == 2
    assert summary.loaded == 2
    assert summary.discarded == len(EXPECTED_BAD) == 13
    assert (summary.filtered, summary.duplicates) == (0, 0)
    assert summary.discard_reasons == {
        "invalid_json": 3,
        "not_an_object": 3,
        "missing_ids": 3,
        "unknown_type": 3,
        "oversized": 1,
    }
    assert summary.corrupt_files == []
    files = dicts(wh, f"SELECT * FROM {LEDGER}.files")
    assert len(files) == 1
    assert files[0]["file_key"] == key
    assert files[0]["status"] == "loaded"
    assert (files[0]["lines"], files[0]["blank_lines"], files[0]["loaded"], files[0]["discarded"]) == (15, 2, 2, 13)
    assert sorted(r[0] for r in query(wh, f"SELECT id FROM {ES}.tracks")) == ["good-1", "good-2"]
    assert query(wh, f"SELECT count(*) FROM {ES}.order_completed")[0][0] == 2


def test_an_event_just_under_32_kb_is_loaded(landing, warehouse_path) -> None:
    base = event(messageId="big", properties={"blob": ""})
    room = 32 * 1024 - len(compact(base).encode())
    big = event(messageId="big", properties={"blob": "y" * room})
    assert len(compact(big).encode()) == 32 * 1024
    write_dump(landing, [big])
    summary = load(landing, warehouse_path)
    assert (summary.loaded, summary.discarded) == (1, 0)
    assert query(warehouse_path, f"SELECT length(blob) FROM {ES}.order_completed")[0][0] == room


def test_the_type_is_read_case_aside_as_rudderstack_does_but_not_trimmed(landing, warehouse_path) -> None:
    # RudderStack's warehouse transformer lower-cases `type`; anything else about it stays unknown.
    lines = [
        event("Track", messageId="t-upper", event="Order Completed", properties={"plan": "pro"}),
        event("PAGE", messageId="p-upper", name="Home", properties={"path": "/"}),
        event("Identify", messageId="i-upper", userId="u-1", context={"traits": {"email": "a@example.com"}}),
        event(" track", messageId="t-space", event="Order Completed", properties={}),
    ]
    write_dump(landing, lines)
    summary = load(landing, warehouse_path)
    assert (summary.loaded, summary.discarded, summary.discard_reasons) == (3, 1, {"unknown_type": 1})
    assert query(warehouse_path, f"SELECT id, event_text, event FROM {ES}.tracks") == [
        ("t-upper", "Order Completed", "order_completed")
    ]
    assert query(warehouse_path, f"SELECT id, plan FROM {ES}.order_completed") == [("t-upper", "pro")]
    assert query(warehouse_path, f"SELECT id, name, path FROM {ES}.pages") == [("p-upper", "Home", "/")]
    assert query(warehouse_path, f"SELECT id, context_traits_email FROM {ES}.users") == [("u-1", "a@example.com")]
    assert [(e["line_no"], e["reason"]) for e in load_errors(warehouse_path)] == [(4, "unknown_type")]


def test_a_context_that_is_not_an_object_discards_the_event_as_rudderstack_fails_it(landing, warehouse_path) -> None:
    lines = [
        event(messageId="ctx-string", context="web"),
        event(messageId="ctx-array", context=[{"ip": "10.0.0.1"}]),
        event(messageId="ctx-number", context=5),
        compact(_with(event(messageId="ctx-null"), context=None)),
        event(messageId="ctx-empty", context={}),
        event(messageId="ctx-bare", context={"locale": "de-DE"}),  # neither ip nor library: looked at, kept
        event(messageId="ctx-missing", context=None),
    ]
    write_dump(landing, lines)
    summary = load(landing, warehouse_path)
    assert (summary.loaded, summary.discarded) == (4, 3)
    assert summary.discard_reasons == {"context_not_an_object": 3}
    assert [(e["line_no"], e["reason"]) for e in load_errors(warehouse_path)] == [
        (1, "context_not_an_object"),
        (2, "context_not_an_object"),
        (3, "context_not_an_object"),
    ]
    assert sorted(r[0] for r in query(warehouse_path, f"SELECT id FROM {ES}.tracks")) == [
        "ctx-bare",
        "ctx-empty",
        "ctx-missing",
        "ctx-null",
    ]
    assert row(warehouse_path, "order_completed", "ctx-bare")["context_locale"] == "de-DE"


def test_a_name_that_is_not_a_json_string_still_names_an_event_table(landing, warehouse_path) -> None:
    # RudderStack makes no event table for these, dropping their properties; here they are kept.
    lines = [
        event(messageId="name-number", event=42, properties={"plan": "pro"}),
        event(messageId="name-numeric-text", event="42", properties={"plan": "team"}),
        event(messageId="name-object", event={"name": "Order Completed"}),
    ]
    write_dump(landing, lines)
    summary = load(landing, warehouse_path)
    assert (summary.loaded, summary.discarded) == (3, 0)
    assert dict(query(warehouse_path, f"SELECT id, event FROM {ES}.tracks")) == {
        "name-number": "_42",
        "name-numeric-text": "_42",
        "name-object": "name_order_completed",
    }
    assert dict(query(warehouse_path, f"SELECT id, plan FROM {ES}._42")) == {
        "name-number": "pro",
        "name-numeric-text": "team",
    }
    assert row(warehouse_path, "tracks", "name-object")["event_text"] == '{"name":"Order Completed"}'


def test_an_object_or_array_is_no_id(landing, warehouse_path) -> None:
    # An SDK that sends {} as every visitor's anonymousId would otherwise join them all into one person.
    lines = [
        event(messageId="anon-empty-object", anonymousId={}, userId="u-1"),
        event(messageId="anon-object-only", anonymousId={"id": "a-1"}),
        event(messageId="anon-braced-text", anonymousId="{a-2}"),
        event(messageId="user-array", anonymousId="a-3", userId=[]),
        event("alias", messageId="alias-object", userId="u-4", previousId={"id": "a-4"}),
        event("group", messageId="group-array", userId="u-5", groupId=["g-1"]),
    ]
    write_dump(landing, lines)
    summary = load(landing, warehouse_path)
    assert (summary.loaded, summary.discarded, summary.discard_reasons) == (5, 1, {"missing_ids": 1})
    assert [(e["line_no"], e["reason"]) for e in load_errors(warehouse_path)] == [(2, "missing_ids")]
    ids = {r[0]: r[1:] for r in query(warehouse_path, f"SELECT id, anonymous_id, user_id FROM {ES}.tracks")}
    assert ids == {
        "anon-empty-object": (None, "u-1"),
        "anon-braced-text": ("{a-2}", None),
        "user-array": ("a-3", None),
    }
    assert row(warehouse_path, "aliases", "alias-object")["previous_id"] is None
    assert row(warehouse_path, "groups", "group-array")["group_id"] is None
    # Not a silent drop: a non-empty object or array goes to rudder_discards for each table the event
    # landed in; an empty one is blank, skipped like "" and null.
    reason = "a JSON object or array is no id; loaded as NULL"
    assert [
        (d["table_name"], d["row_id"], d["column_name"], d["column_value"], d["reason"])
        for d in discards(warehouse_path)
    ] == [
        ("aliases", "alias-object", "previous_id", '{"id":"a-4"}', reason),
        ("groups", "group-array", "group_id", '["g-1"]', reason),
    ]
    assert summary.value_discards == 2


def test_crlf_line_endings_load_like_lf(landing, warehouse_path) -> None:
    lines = [
        event(messageId="crlf-1", properties={"plan": "pro"}),
        "",
        event("identify", messageId="crlf-2", userId="u-1", context={"traits": {"email": "a@example.com"}}),
        "not json",
    ]
    landing.put(_key(1), gzip_lines(lines, newline=b"\r\n"))
    summary = load(landing, warehouse_path)
    assert (summary.lines, summary.blank_lines, summary.loaded, summary.discarded) == (3, 1, 2, 1)
    assert query(warehouse_path, f"SELECT plan FROM {ES}.order_completed")[0][0] == "pro"
    assert query(warehouse_path, f"SELECT context_traits_email FROM {ES}.identifies")[0][0] == "a@example.com"
    errors = load_errors(warehouse_path)
    assert [(e["line_no"], e["reason"]) for e in errors] == [(4, "invalid_json")]
    assert errors[0]["raw_text"] == "not json"


def test_the_size_limit_counts_an_event_the_same_with_crlf_endings(landing, warehouse_path) -> None:
    base = compact(event(messageId="at-limit", properties={"blob": ""}))
    at_limit = base.replace('"blob":""', '"blob":"' + "x" * (MAX_EVENT_BYTES - len(base)) + '"')
    over = at_limit.replace('"at-limit"', '"over-lim"').replace('"blob":"', '"blob":"x')
    assert (len(at_limit), len(over)) == (MAX_EVENT_BYTES, MAX_EVENT_BYTES + 1)
    landing.put(_key(3), gzip_lines([at_limit, over], newline=b"\r\n"))
    summary = load(landing, warehouse_path)
    assert (summary.loaded, summary.discarded, summary.discard_reasons) == (1, 1, {"oversized": 1})
    assert query(warehouse_path, f"SELECT id FROM {ES}.tracks") == [("at-limit",)]


def test_invalid_utf8_in_one_line_discards_that_line_only(landing, warehouse_path) -> None:
    good = write_dump(landing, [event(messageId="other-file")])
    lines = [event(messageId="u-1"), b'{"type":"track","event":"\xff\xfe","anonymousId":"a"}', event(messageId="u-3")]
    landing.put(_key(2), gzip_lines(lines))
    summary = load(landing, warehouse_path)
    assert (summary.files, summary.lines, summary.loaded, summary.discarded) == (2, 4, 3, 1)
    errors = load_errors(warehouse_path)
    assert [(e["file_key"], e["line_no"], e["reason"]) for e in errors] == [(_key(2), 2, "invalid_utf8")]
    assert errors[0]["raw_text"].startswith('{"type":"track","event":"')
    ids = sorted(r[0] for r in query(warehouse_path, f"SELECT id FROM {ES}.tracks"))
    assert ids == ["other-file", "u-1", "u-3"]
    # The file itself is whole gzip: one bad line does not make it corrupt.
    status = dict(query(warehouse_path, f"SELECT file_key, status FROM {LEDGER}.files"))
    assert status == {good: "loaded", _key(2): "loaded"}
    assert summary.corrupt_files == []


def test_a_truncated_gzip_file_loads_its_complete_lines_and_does_not_stop_the_others(landing, warehouse_path) -> None:
    before = write_dump(landing, [event(messageId="before")], uploaded_at=datetime(2026, 11, 1, 9, tzinfo=UTC))
    lines = [event(messageId=f"t-{i:03d}", properties={"n": i, "pad": "p" * (i % 17)}) for i in range(400)]
    data = gzip_lines(lines)
    cut = data[: len(data) * 2 // 3]
    landing.put(_key(3), cut)
    after = write_dump(landing, [event(messageId="after")], uploaded_at=datetime(2026, 11, 1, 11, tzinfo=UTC))

    # What a reader can get out of the cut file: its complete lines, then part of one more.
    readable = zlib.decompressobj(31).decompress(cut)
    complete = readable.count(b"\n")
    assert 0 < complete < 400 and not readable.endswith(b"\n")

    summary = load(landing, warehouse_path)
    assert summary.files == 3
    assert summary.loaded == complete + 2
    assert summary.discarded == 1
    assert summary.lines == complete + 3
    assert summary.discard_reasons == {"truncated_line": 1}
    assert len(summary.corrupt_files) == 1
    corrupt = summary.corrupt_files[0]
    assert corrupt["file"] == _key(3)
    assert "truncated gzip" in corrupt["reason"]
    assert (corrupt["loaded"], corrupt["discarded"]) == (complete, 1)

    files = {r["file_key"]: r for r in dicts(warehouse_path, f"SELECT * FROM {LEDGER}.files")}
    assert files[_key(3)]["status"] == "corrupt"
    assert "truncated gzip" in files[_key(3)]["reason"]
    assert (files[_key(3)]["loaded"], files[_key(3)]["discarded"]) == (complete, 1)
    assert files[before]["status"] == files[after]["status"] == "loaded"

    loaded = [r[0] for r in query(warehouse_path, f"SELECT n FROM {ES}.order_completed WHERE n IS NOT NULL ORDER BY n")]
    assert loaded == list(range(complete))
    errors = load_errors(warehouse_path)
    assert [(e["file_key"], e["line_no"], e["reason"]) for e in errors] == [(_key(3), complete + 1, "truncated_line")]
    partial = readable.rsplit(b"\n", 1)[1].decode()
    assert errors[0]["raw_text"] == partial[:2000]

    # The corrupt version is in the ledger: a rerun does not read it again.
    again = load(landing, warehouse_path)
    assert (again.files, again.lines) == (0, 0)


def test_an_empty_file_is_recorded_corrupt_and_an_empty_gzip_as_loaded(landing, warehouse_path) -> None:
    landing.put(_key(4), b"")
    landing.put(_key(5), gzip.compress(b"", mtime=0))
    landing.put(_key(6), gzip.compress(b"\n\n  \n", mtime=0))
    ok = write_dump(landing, [event(messageId="fine")])
    summary = load(landing, warehouse_path)
    assert (summary.files, summary.lines, summary.loaded, summary.discarded) == (4, 1, 1, 0)
    assert summary.blank_lines == 3
    assert [c["file"] for c in summary.corrupt_files] == [_key(4)]
    assert "empty" in summary.corrupt_files[0]["reason"]
    files = {r["file_key"]: r for r in dicts(warehouse_path, f"SELECT * FROM {LEDGER}.files")}
    assert files[_key(4)]["status"] == "corrupt" and "0 bytes" in files[_key(4)]["reason"]
    assert files[_key(4)]["lines"] == 0
    assert files[_key(5)]["status"] == files[_key(6)]["status"] == files[ok]["status"] == "loaded"
    assert files[_key(6)]["blank_lines"] == 3


def test_a_file_that_is_not_gzip_at_all_is_corrupt(landing, warehouse_path) -> None:
    landing.put(_key(7), b'{"type":"track"}\n')  # plain text under a .json.gz name
    write_dump(landing, [event(messageId="fine")])
    summary = load(landing, warehouse_path)
    assert summary.loaded == 1
    assert [c["file"] for c in summary.corrupt_files] == [_key(7)]
    assert query(warehouse_path, f"SELECT status FROM {LEDGER}.files WHERE file_key = ?", [_key(7)]) == [("corrupt",)]


def test_a_null_byte_line_is_discarded_without_stopping_the_file(landing, warehouse_path) -> None:
    lines = [
        event(messageId="n-1"),
        b'{"type":"track","messageId":"n-2","anonymousId":"a\x00b"}',
        event(messageId="n-3"),
    ]
    landing.put(_key(8), gzip_lines(lines))
    summary = load(landing, warehouse_path)
    assert (summary.lines, summary.loaded, summary.discarded) == (3, 2, 1)
    assert [(e["line_no"], e["reason"]) for e in load_errors(warehouse_path)] == [(2, "invalid_json")]


def test_a_line_longer_than_the_readers_buffer_is_discarded_as_oversized(landing, warehouse_path) -> None:
    huge = event(messageId="huge", properties={"blob": "h" * (9 * 1024 * 1024)})
    lines = [event(messageId="before"), huge, event(messageId="after")]
    landing.put(_key(9), gzip_lines(lines))
    summary = load(landing, warehouse_path)
    assert (summary.lines, summary.loaded, summary.discarded) == (3, 2, 1)
    assert summary.corrupt_files == []
    errors = load_errors(warehouse_path)
    assert [(e["line_no"], e["reason"]) for e in errors] == [(2, "oversized")]
    assert errors[0]["raw_text"] == compact(huge)[:2000]
