"""Typing: column kinds from values (RudderStack's datatype rules), type evolution, conflicts, discards."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from cdp_assets.event_stream.flatten import looks_like_datetime
from cdp_assets_tests.conftest import event, write_dump
from cdp_assets_tests.event_stream.helpers import ES, columns, discards, load, query, row

T0 = datetime(2026, 11, 1, 10, 30, tzinfo=UTC)


def _at(hour: int) -> datetime:
    return T0.replace(hour=hour)


def _utc(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2019-09-26", True),
        ("2009-05-19 14:39:22", True),
        ("2019-09-26T06:30:12.984Z", True),
        ("2020-02-11 04:56:55.175116", True),
        ("2019-09-26T06:30:12.984+0530", True),
        ("2019-09-26T06:30:12.984+05:30", True),
        ("2019-13-26", False),
        ("2019-02-30", False),
        ("26/09/2019", False),
        ("2019-09-26 and more", False),
        ("20190926", False),
        ("hello", False),
        ("2019-09-26T06:30:12.984Z" + " " * 20, False),
    ],
)
def test_looks_like_datetime(value: str, expected: bool) -> None:
    assert looks_like_datetime(value) is expected


@pytest.fixture(scope="module")
def typed(tmp_path_factory):
    from cdp_assets.event_stream.landing import LocalLandingStore

    root = tmp_path_factory.mktemp("typing")
    store = LocalLandingStore(root / "landing")
    lines = [
        event(
            messageId="k-1",
            properties={
                "count": 3,
                "whole_float": 3.0,
                "price": 9.99,
                "flag": True,
                "day": "2019-09-26",
                "space_time": "2009-05-19 14:39:22",
                "zulu": "2019-09-26T06:30:12.984Z",
                "micros": "2020-02-11 04:56:55.175116",
                "before_1970": "1969-12-31T23:59:59.9996Z",
                "offset_compact": "2019-09-26T06:30:12.984+0530",
                "offset_colon": "2019-09-26T06:30:12.984+05:30",
                "numeric_text": "123",
                "mixed": 1,
                "date_then_text": "2019-09-26",
                "int_then_bool": 1,
                "float_then_int": 1.5,
                "int_then_float": 2,
                "date_then_int": "2019-09-26",
                "huge": 123456789012345678901234567890,
                "int64_max": 2**63 - 1,
                "int64_max_minus_1024": 2**63 - 1025,
                "negative": -7,
                "exponent": 1e3,
            },
        ),
        event(
            messageId="k-2",
            properties={
                "mixed": "text",
                "date_then_text": "not a date",
                "int_then_bool": True,
                "float_then_int": 4,
                "int_then_float": 2.9,
                "date_then_int": 5,
                "count": 123456789012345678901234567890,  # beyond 64 bits: a float, into an int column
            },
        ),
        event(messageId="k-3", properties={"mixed": False, "int_then_float": -3.7}),
    ]
    write_dump(store, lines, uploaded_at=_at(10))
    wh = root / "warehouse.duckdb"
    summary = load(store, wh)
    return wh, summary


def test_kinds_of_a_new_column(typed) -> None:
    wh, _summary = typed
    cols = columns(wh, "order_completed")
    expected = {
        "count": "BIGINT",
        "whole_float": "BIGINT",  # 3.0 is integral: int
        "price": "DOUBLE",
        "flag": "BOOLEAN",
        "day": "TIMESTAMP WITH TIME ZONE",
        "space_time": "TIMESTAMP WITH TIME ZONE",
        "zulu": "TIMESTAMP WITH TIME ZONE",
        "micros": "TIMESTAMP WITH TIME ZONE",
        "offset_compact": "TIMESTAMP WITH TIME ZONE",
        "offset_colon": "TIMESTAMP WITH TIME ZONE",
        "numeric_text": "VARCHAR",  # a JSON string stays a string
        "negative": "BIGINT",
        "exponent": "BIGINT",
        # A whole number beyond 64 bits is a float, as RudderStack reads it (2**63 - 1 rounds to 2**63).
        "huge": "DOUBLE",
        "int64_max": "DOUBLE",
        "int64_max_minus_1024": "BIGINT",
    }
    assert {c: cols[c] for c in expected} == expected


def test_values_are_converted_and_datetimes_rewritten_to_utc(typed) -> None:
    wh, _summary = typed
    r = row(wh, "order_completed", "k-1")
    assert (r["count"], r["whole_float"], r["price"], r["flag"]) == (3, 3, 9.99, True)
    assert r["day"] == _utc("2019-09-26T00:00:00+00:00")
    assert r["space_time"] == _utc("2009-05-19T14:39:22+00:00")
    assert r["zulu"] == _utc("2019-09-26T06:30:12.984+00:00")
    # Cut to the millisecond, as RudderStack writes datetimes.
    assert r["micros"] == _utc("2020-02-11T04:56:55.175+00:00")
    assert r["before_1970"] == _utc("1969-12-31T23:59:59.999+00:00")  # cut, not rounded up to 1970
    assert r["offset_compact"] == r["offset_colon"] == _utc("2019-09-26T01:00:12.984+00:00")
    assert (r["numeric_text"], r["negative"], r["exponent"]) == ("123", -7, 1000)
    assert (r["huge"], r["int64_max"], r["int64_max_minus_1024"]) == (1.2345678901234568e29, 2.0**63, 2**63 - 1025)


def test_a_string_anywhere_in_the_batch_makes_a_string_column(typed) -> None:
    wh, _summary = typed
    cols = columns(wh, "order_completed")
    assert cols["mixed"] == cols["date_then_text"] == "VARCHAR"
    values = dict(query(wh, f"SELECT id, mixed FROM {ES}.order_completed"))
    assert values == {"k-1": "1", "k-2": "text", "k-3": "false"}
    assert row(wh, "order_completed", "k-1")["date_then_text"] == "2019-09-26"
    assert row(wh, "order_completed", "k-2")["date_then_text"] == "not a date"


def test_otherwise_the_first_kind_seen_wins(typed) -> None:
    wh, _summary = typed
    cols = columns(wh, "order_completed")
    assert cols["int_then_bool"] == "BIGINT"
    assert cols["float_then_int"] == "DOUBLE"
    assert cols["int_then_float"] == "BIGINT"
    assert cols["date_then_int"] == "TIMESTAMP WITH TIME ZONE"
    got = {
        r[0]: r[1:]
        for r in query(wh, f"SELECT id, float_then_int, int_then_float FROM {ES}.order_completed ORDER BY id")
    }
    # An int goes into a float column converted; a float into an int column truncated (no discard).
    assert got == {"k-1": (1.5, 2), "k-2": (4.0, 2), "k-3": (None, -3)}


def test_a_value_that_does_not_fit_becomes_null_plus_a_discard(typed) -> None:
    wh, summary = typed
    assert row(wh, "order_completed", "k-2")["int_then_bool"] is None
    assert row(wh, "order_completed", "k-2")["date_then_int"] is None
    assert row(wh, "order_completed", "k-2")["count"] is None
    found = {(d["row_id"], d["column_name"]): d for d in discards(wh)}
    assert set(found) == {("k-2", "int_then_bool"), ("k-2", "date_then_int"), ("k-2", "count")}
    assert found[("k-2", "int_then_bool")] == {
        "table_name": "order_completed",
        "row_id": "k-2",
        "column_name": "int_then_bool",
        "column_value": "true",
        "reason": "cannot convert to int: value is a boolean",
    }
    assert found[("k-2", "date_then_int")]["column_value"] == "5"
    assert found[("k-2", "date_then_int")]["reason"] == "cannot convert to datetime: value is a number"
    # Too big for the int column it comes to (a float would be truncated; this one cannot be).
    assert found[("k-2", "count")]["column_value"] == "123456789012345678901234567890"
    assert found[("k-2", "count")]["reason"] == "cannot convert to int: value is a number"
    received = query(wh, f"SELECT DISTINCT received_at FROM {ES}.rudder_discards")
    assert received == [(_utc("2026-11-01T10:00:00.500+00:00"),)]
    assert summary.value_discards == 3
    assert summary.loaded == 3  # a discarded value does not discard its event


def test_existing_column_kinds_win_in_later_loads_and_new_keys_add_columns(landing, warehouse_path) -> None:
    write_dump(
        landing,
        [event(messageId="a-1", properties={"qty": 1, "ratio": 0.5, "ok": True, "at": "2026-01-01", "label": "x"})],
        uploaded_at=_at(10),
    )
    first = load(landing, warehouse_path)
    assert first.new_columns["order_completed"][-5:] == ["at", "label", "ok", "qty", "ratio"]

    write_dump(
        landing,
        [
            event(
                messageId="a-2",
                properties={"qty": 2.7, "ratio": 3, "ok": "yes", "at": "soon", "label": 42, "coupon": "SPRING"},
            ),
            event(messageId="a-3", properties={"qty": "many", "ratio": "half", "ok": 1, "at": 1, "label": [1, 2]}),
            # Numbers an int column cannot hold: too long, or truncated to too long.
            event(messageId="a-4", properties={"qty": 12345678901234567890}),
            event(messageId="a-5", properties={"qty": 1e30}),
            event(messageId="a-6", properties={"ratio": [0.5]}),
        ],
        uploaded_at=_at(11),
    )
    second = load(landing, warehouse_path)
    assert second.new_columns == {"order_completed": ["coupon"]}
    cols = columns(warehouse_path, "order_completed")
    assert (cols["qty"], cols["ratio"], cols["ok"], cols["at"], cols["label"], cols["coupon"]) == (
        "BIGINT",
        "DOUBLE",
        "BOOLEAN",
        "TIMESTAMP WITH TIME ZONE",
        "VARCHAR",
        "VARCHAR",
    )
    a2 = row(warehouse_path, "order_completed", "a-2")
    assert (a2["qty"], a2["ratio"], a2["ok"], a2["at"], a2["label"], a2["coupon"]) == (
        2,
        3.0,
        None,
        None,
        "42",
        "SPRING",
    )
    a3 = row(warehouse_path, "order_completed", "a-3")
    assert (a3["qty"], a3["ratio"], a3["ok"], a3["at"], a3["label"]) == (None, None, None, None, "[1,2]")
    assert row(warehouse_path, "order_completed", "a-1")["coupon"] is None

    found = {(d["row_id"], d["column_name"]): (d["column_value"], d["reason"]) for d in discards(warehouse_path)}
    assert found == {
        ("a-2", "ok"): ("yes", "cannot convert to boolean: value is a string"),
        ("a-2", "at"): ("soon", "cannot convert to datetime: value is a string"),
        ("a-3", "qty"): ("many", "cannot convert to int: value is a string"),
        ("a-3", "ratio"): ("half", "cannot convert to float: value is a string"),
        ("a-3", "ok"): ("1", "cannot convert to boolean: value is a number"),
        ("a-3", "at"): ("1", "cannot convert to datetime: value is a number"),
        ("a-4", "qty"): ("12345678901234567890", "cannot convert to int: value is a number"),
        ("a-5", "qty"): ("1e30", "cannot convert to int: value is a number"),
        ("a-6", "ratio"): ("[0.5]", "cannot convert to float: value is an array"),
    }
    assert row(warehouse_path, "order_completed", "a-4")["qty"] is None
    assert second.value_discards == 9
    assert second.tables["rudder_discards"] == 9


def test_a_column_first_seen_with_only_nulls_gets_its_kind_later(landing, warehouse_path) -> None:
    write_dump(landing, [event(messageId="n-1", properties={"later": None, "blank": ""})], uploaded_at=_at(10))
    load(landing, warehouse_path)
    assert "later" not in columns(warehouse_path, "order_completed")
    write_dump(landing, [event(messageId="n-2", properties={"later": 7, "blank": "2026-02-03"})], uploaded_at=_at(11))
    load(landing, warehouse_path)
    cols = columns(warehouse_path, "order_completed")
    assert (cols["later"], cols["blank"]) == ("BIGINT", "TIMESTAMP WITH TIME ZONE")
    assert row(warehouse_path, "order_completed", "n-2")["later"] == 7
