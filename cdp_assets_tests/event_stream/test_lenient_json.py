"""Lines the warehouse's JSON reader takes but Python's would not, or could not walk: lenient syntax,
non-finite numbers, repeated keys, deep nesting. None of them may crash a load or vanish unrecorded."""

from __future__ import annotations

import pytest

from cdp_assets.event_stream.sample_json import MAX_OBJECT_DEPTH, TOO_DEEP, UnreadableLine, parse_sample
from cdp_assets_tests.conftest import event, write_dump
from cdp_assets_tests.event_stream.helpers import ES, compact, discards, load, load_errors, query


def _nested(depth: int, leaf: object = 1) -> dict:
    """Properties whose objects nest so that the event is `depth` objects deep (event, properties, ...)."""
    value: object = leaf
    for _ in range(depth - 1):
        value = {"k": value}
    return value  # type: ignore[return-value]


def test_a_line_nesting_objects_too_deeply_is_discarded_and_the_rest_loads(landing, warehouse_path) -> None:
    deep = event(messageId="deep", event="Deep", properties=_nested(600))
    limit = event(messageId="at-limit", event="Deep", properties=_nested(MAX_OBJECT_DEPTH))
    over = event(messageId="over-limit", event="Deep", properties=_nested(MAX_OBJECT_DEPTH + 1))
    # Arrays are stored whole as text: their depth costs nothing.
    array = compact(event(messageId="deep-array", event="Arr", properties={"a": "X"}))
    array = array.replace('"X"', "[" * 3000 + "1" + "]" * 3000)
    first = write_dump(landing, [deep, event(messageId="fine-1")])
    write_dump(landing, [event(messageId="fine-2"), limit, over, array])
    summary = load(landing, warehouse_path)
    assert summary.balanced
    assert (summary.lines, summary.loaded, summary.discarded) == (6, 4, 2)
    assert summary.discard_reasons == {TOO_DEEP: 2}
    errors = {e["raw_text"][:200]: e for e in load_errors(warehouse_path)}
    assert {(e["reason"]) for e in errors.values()} == {TOO_DEEP}
    assert any(e["file_key"] == first and e["line_no"] == 1 for e in errors.values())
    ids = sorted(r[0] for r in query(warehouse_path, f"SELECT id FROM {ES}.tracks"))
    assert ids == ["at-limit", "deep-array", "fine-1", "fine-2"]
    # The deepest allowed value has its column; the array is kept as its JSON text.
    column = "_".join(["k"] * (MAX_OBJECT_DEPTH - 1))
    assert query(warehouse_path, f'SELECT "{column}" FROM {ES}.deep') == [(1,)]
    text = query(warehouse_path, f"SELECT a FROM {ES}.arr")[0][0]
    assert text.startswith("[[[") and len(text) == 6001
    # A rerun loads nothing and keeps failing nothing.
    again = load(landing, warehouse_path)
    assert (again.files, again.lines) == (0, 0)


def test_a_deep_line_found_by_extraction_is_discarded_too(landing, warehouse_path) -> None:
    # The first line of the shape is shallow: discovery reads it, and meets the deep one only when the
    # extraction finds an object where it expected a value.
    shallow = event(messageId="shallow", event="Deep", properties={"k": 1})
    deep = event(messageId="deep", event="Deep", properties=_nested(200))
    write_dump(landing, [shallow, deep])
    summary = load(landing, warehouse_path)
    assert (summary.loaded, summary.discarded, summary.discard_reasons) == (1, 1, {TOO_DEEP: 1})
    assert query(warehouse_path, f"SELECT id, k FROM {ES}.deep") == [("shallow", 1)]


def test_trailing_commas_load_as_the_warehouse_reads_them(landing, warehouse_path) -> None:
    base = compact(event(messageId="comma", event="Lax", properties={"a": 1, "tags": ["x"]}))
    line = base.replace('"tags":["x"]', '"tags":["x",],').replace("}}", "},}")
    write_dump(landing, [line])
    summary = load(landing, warehouse_path)
    assert (summary.loaded, summary.discarded) == (1, 0)
    assert query(warehouse_path, f"SELECT a, tags FROM {ES}.lax") == [(1, '["x"]')]


@pytest.mark.parametrize("token", ["NaN", "nan", "Infinity", "-Infinity", "inf", "-inf", "1e400"])
def test_non_finite_numbers_become_null_and_a_discard(landing, warehouse_path, token) -> None:
    line = compact(event(messageId="odd", event="Lax", properties={"a": "X"})).replace('"X"', token)
    write_dump(landing, [event(messageId="ok", event="Lax", properties={"a": 1.5}), line])
    summary = load(landing, warehouse_path)
    assert (summary.loaded, summary.discarded, summary.value_discards) == (2, 0, 1)
    assert query(warehouse_path, f"SELECT id, a FROM {ES}.lax ORDER BY id") == [("odd", None), ("ok", 1.5)]
    [discard] = discards(warehouse_path)
    assert (discard["row_id"], discard["column_name"], discard["column_value"]) == ("odd", "a", token)
    assert discard["reason"] == "cannot convert to float: value is a non-finite or out-of-range number"


def test_a_non_finite_number_alone_still_gives_a_discard(landing, warehouse_path) -> None:
    line = compact(event(messageId="odd", event="Lax", properties={"a": "X", "b": 2})).replace('"X"', "NaN")
    write_dump(landing, [line])
    summary = load(landing, warehouse_path)
    assert (summary.loaded, summary.value_discards) == (1, 1)
    assert query(warehouse_path, f"SELECT a, b FROM {ES}.lax") == [(None, 2)]


def test_a_repeated_key_keeps_its_first_value(landing, warehouse_path) -> None:
    base = compact(event(messageId="dup", event="Dup", properties={"p": "X", "r": "Y"}))
    line = base.replace('"p":"X"', '"p":1,"p":{"a":5}').replace('"r":"Y"', '"r":{"a":7},"r":3')
    write_dump(landing, [line])
    summary = load(landing, warehouse_path)
    assert (summary.loaded, summary.discarded) == (1, 0)
    assert query(warehouse_path, f"SELECT p, r_a FROM {ES}.dup") == [(1, 7)]


def test_the_sample_reader_matches_the_warehouse_grammar() -> None:
    assert parse_sample('{"a":1,"a":2,"b":[1,],"c":nan,}') == {"a": 1, "b": [], "c": None}
    assert parse_sample('{"a":{"x":1,"x":{"y":2}},"n":-Infinity}') == {"a": {"x": 1}, "n": None}
    assert parse_sample('{"s":"a\\"b\\u00e9","e":1.5e3,"t":true,"f":false,"z":null}') == {
        "s": 'a"bé',
        "e": 1500.0,
        "t": True,
        "f": False,
        "z": None,
    }
    with pytest.raises(UnreadableLine) as too_deep:
        parse_sample('{"a":' * 5000 + "1" + "}" * 5000)
    assert too_deep.value.reason == TOO_DEEP
    assert parse_sample('{"a":' + "[" * 5000 + "]" * 5000 + "}") == {"a": []}


def test_properties_of_a_track_without_an_event_table_are_kept_as_discards(landing, warehouse_path) -> None:
    lines = [
        event(messageId="symbols", event="!!!", properties={"amount": 10, "plan": "pro", "none": None}),
        event(messageId="kanji", event="購入", properties={"amount": 20}),
        event(messageId="blank", event="", properties={"amount": 30}),
        event(messageId="named", event="Paid", properties={"amount": 40}),
    ]
    write_dump(landing, lines)
    summary = load(landing, warehouse_path)
    assert (summary.loaded, summary.value_discards) == (4, 4)
    assert sorted(r[0] for r in query(warehouse_path, f"SELECT id FROM {ES}.tracks")) == [
        "blank",
        "kanji",
        "named",
        "symbols",
    ]
    assert query(warehouse_path, f"SELECT id, amount FROM {ES}.paid") == [("named", 40)]
    reason = "the event name is blank or has no letters or digits to name a table; value is "
    found = [tuple(d.values()) for d in discards(warehouse_path)]
    assert found == [
        ("tracks", "blank", "amount", "30", reason + "a number"),
        ("tracks", "kanji", "amount", "20", reason + "a number"),
        ("tracks", "symbols", "amount", "10", reason + "a number"),
        ("tracks", "symbols", "plan", "pro", reason + "a string"),
    ]


def test_the_word_epoch_is_no_timestamp(landing, warehouse_path) -> None:
    write_dump(landing, [event(messageId="ep", sentAt="epoch", originalTimestamp="EPOCH", timestamp="epoch")])
    load(landing, warehouse_path)
    times = query(warehouse_path, f"SELECT sent_at, original_timestamp, timestamp, received_at FROM {ES}.tracks")
    [(sent, original, timestamp, received)] = times
    assert sent == original == timestamp == received
    assert received.year == 2026


def test_a_payload_object_that_is_no_object_is_kept_as_a_discard(landing, warehouse_path) -> None:
    lines = [
        event(messageId="list", event="Shp", properties=["x", 1]),
        event(messageId="text", event="Shp", properties="plan=pro"),
        event(messageId="empty", event="Shp", properties={}),
        event(messageId="user-props", event="Shp", properties=None, userProperties=7),
        event("identify", messageId="traits", userId="u1", traits=["vip"]),
        # Not flattened for a page at all, like any key RudderStack's schema has no place for.
        event("page", messageId="page", properties={"path": "/"}, traits="ignored"),
    ]
    write_dump(landing, lines)
    summary = load(landing, warehouse_path)
    assert (summary.loaded, summary.discarded) == (6, 0)
    found = [
        (d["table_name"], d["row_id"], d["column_name"], d["column_value"], d["reason"])
        for d in discards(warehouse_path)
    ]
    reason = "not an object, so it has no keys to flatten; value is "
    assert found == [
        ("identifies", "traits", "traits", '["vip"]', reason + "an array"),
        ("shp", "list", "properties", '["x",1]', reason + "an array"),
        ("shp", "text", "properties", "plan=pro", reason + "a string"),
        ("shp", "user-props", "userProperties", "7", reason + "a number"),
        ("tracks", "list", "properties", '["x",1]', reason + "an array"),
        ("tracks", "text", "properties", "plan=pro", reason + "a string"),
        ("tracks", "user-props", "userProperties", "7", reason + "a number"),
    ]
    assert summary.value_discards == len(found)
