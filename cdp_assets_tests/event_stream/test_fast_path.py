"""The fast path: a table whose columns exist already is inserted straight from the parse, and a value
that needs the checks (an object where discovery saw a scalar, a misfit for a typed column, the first
value of a key that has no column yet) stops the insert, and the chunk is written again, checked.

Every test loads the same files twice, with and without the fast path, and the warehouses must agree.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from cdp_assets.event_stream.landing import LocalLandingStore
from cdp_assets.event_stream.loader import LoadSummary
from cdp_assets_tests.conftest import event, write_dump
from cdp_assets_tests.event_stream.helpers import ES, columns, discards, load, query, row, tables

T0 = datetime(2026, 11, 1, 10, 30, tzinfo=UTC)


def _twice(tmp_path: Path, batches: list[list[dict]]) -> tuple[Path, list[LoadSummary]]:
    """Load each batch in turn, with the fast path and without; return the fast warehouse and its loads,
    after checking that both warehouses hold the same tables, columns, rows and discards."""
    runs = {}
    for fast in (True, False):
        store = LocalLandingStore(tmp_path / f"landing-{fast}")
        path = tmp_path / f"warehouse-{fast}.duckdb"
        summaries = []
        for hour, batch in enumerate(batches):
            write_dump(store, batch, uploaded_at=T0.replace(hour=10 + hour))
            summaries.append(load(store, path, fast_path=fast))
        runs[fast] = (path, summaries)
    fast_path, slow_path = runs[True][0], runs[False][0]
    assert tables(fast_path) == tables(slow_path)
    for table in sorted(tables(fast_path)):
        cols = [c for c in columns(slow_path, table) if c != "uuid_ts"]
        assert [c for c in columns(fast_path, table) if c != "uuid_ts"] == cols, table
        order = "id" if "id" in cols else ", ".join(f'"{c}"' for c in cols)
        select = f"SELECT {', '.join(repr(c).replace(chr(39), chr(34)) for c in cols)} FROM {ES}.{table}"
        assert query(fast_path, f"{select} ORDER BY {order}") == query(slow_path, f"{select} ORDER BY {order}"), table
    assert discards(fast_path) == discards(slow_path)
    assert all(s.fast_path_writes == 0 and not s.fast_path_misses for s in runs[False][1])
    return fast_path, runs[True][1]


def _orders(prefix: str, n: int, **properties: object) -> list[dict]:
    return [
        event(messageId=f"{prefix}-{i}", properties={"plan": "pro", "seats": i, "ratio": 0.5, **properties})
        for i in range(n)
    ]


def _pages(prefix: str, n: int, **properties: object) -> list[dict]:
    return [
        event("page", messageId=f"{prefix}-{i}", properties={"path": f"/{i}", "title": "Docs", **properties})
        for i in range(n)
    ]


def test_a_steady_state_batch_goes_straight_from_the_parse(tmp_path) -> None:
    wh, (first, second) = _twice(tmp_path, [_orders("a", 2) + _pages("p", 5), _orders("b", 5)])
    # Pages hold most of the first batch: their new columns' kinds are guessed from the samples, which
    # every value agrees with, so they go fast; so do tracks, whose new (context) columns are strings.
    # The orders' new columns hold numbers, which only the main type's guess covers: decided checked.
    assert first.fast_path_writes == 2 and first.fast_path_misses == {}
    # The second batch adds no column: tracks and order_completed both go fast.
    assert second.fast_path_writes == 2 and second.fast_path_misses == {}
    assert second.tables == {"tracks": 5, "order_completed": 5}
    assert row(wh, "order_completed", "b-3")["seats"] == 3


def test_an_object_where_the_same_keys_held_a_scalar_makes_the_table_checked(tmp_path) -> None:
    # Both events of the second batch hold the same keys, so discovery reads the first one only, and
    # sees a scalar `plan`; the insert meets the object, and the chunk is written again, checked.
    later = [
        *_orders("b", 1),
        event(messageId="b-obj", properties={"plan": {"name": "pro", "tier": 2}, "seats": 1, "ratio": 0.5}),
    ]
    wh, (_, second) = _twice(tmp_path, [_orders("a", 2), later])
    assert second.fast_path_misses == {"order_completed": 1}
    assert second.new_columns == {"order_completed": ["plan_name", "plan_tier"]}
    obj = row(wh, "order_completed", "b-obj")
    assert (obj["plan"], obj["plan_name"], obj["plan_tier"]) == (None, "pro", 2)
    assert row(wh, "order_completed", "b-0")["plan"] == "pro"


def test_a_value_its_typed_column_cannot_hold_is_discarded_as_on_the_checked_path(tmp_path) -> None:
    later = [*_orders("b", 1), event(messageId="b-bad", properties={"plan": "pro", "seats": "many", "ratio": True})]
    wh, (_, second) = _twice(tmp_path, [_orders("a", 2), later])
    assert second.fast_path_misses == {"order_completed": 1}
    assert second.value_discards == 2
    found = {(d["row_id"], d["column_name"]): (d["column_value"], d["reason"]) for d in discards(wh)}
    assert found == {
        ("b-bad", "seats"): ("many", "cannot convert to int: value is a string"),
        ("b-bad", "ratio"): ("true", "cannot convert to float: value is a boolean"),
    }
    assert row(wh, "order_completed", "b-bad")["seats"] is None


def test_a_key_without_values_gets_no_column_until_its_first_value(tmp_path) -> None:
    # `coupon` is always null or "" in the first two batches: no column, and the second batch goes fast.
    quiet = [_orders("a", 2, coupon=None), _orders("b", 2, coupon="")]
    # In the third, the first event (the one discovery reads) still has none; the second has a value.
    third = [*_orders("c", 1, coupon=None), *_orders("d", 1, coupon="SPRING")]
    wh, (first, second, last) = _twice(tmp_path, [*quiet, third])
    assert "coupon" not in first.new_columns.get("order_completed", [])
    assert second.fast_path_writes == 2 and not second.fast_path_misses
    assert last.fast_path_misses == {"order_completed": 1}
    assert last.new_columns == {"order_completed": ["coupon"]}
    assert row(wh, "order_completed", "d-0")["coupon"] == "SPRING"
    assert row(wh, "order_completed", "a-0")["coupon"] is None


def test_a_miss_rewrites_only_the_table_that_missed(tmp_path) -> None:
    pages = [event("page", messageId=f"p-{i}", properties={"path": f"/{i}"}) for i in range(3)]
    later_pages = [event("page", messageId=f"q-{i}", properties={"path": f"/q{i}"}) for i in range(3)]
    later = [
        *later_pages,
        *_orders("b", 1),
        event(messageId="b-bad", properties={"plan": "pro", "seats": "x", "ratio": 0.5}),
    ]
    wh, (_, second) = _twice(tmp_path, [[*pages, *_orders("a", 2)], later])
    assert second.fast_path_misses == {"order_completed": 1}
    # The rewrite checked order_completed; pages and tracks stayed on the fast path.
    assert second.fast_path_writes == 2
    assert query(wh, f"SELECT count(*) FROM {ES}.pages")[0][0] == 6


def test_a_new_key_of_the_main_type_goes_fast_with_the_kind_its_sampled_values_show(tmp_path) -> None:
    later = _pages("q", 3, coupon="SPRING", renews="2027-01-01", stars=4, flag=True, price=9.5)
    wh, (_, second) = _twice(tmp_path, [_pages("p", 2), later])
    assert second.fast_path_misses == {} and second.fast_path_writes == 1
    assert sorted(second.new_columns["pages"]) == ["coupon", "flag", "price", "renews", "stars"]
    cols = columns(wh, "pages")
    assert (cols["coupon"], cols["renews"], cols["stars"], cols["flag"], cols["price"]) == (
        "VARCHAR",
        "TIMESTAMP WITH TIME ZONE",
        "BIGINT",
        "BOOLEAN",
        "DOUBLE",
    )
    assert row(wh, "pages", "q-1")["stars"] == 4


def test_a_new_key_of_another_type_is_decided_checked_without_a_miss(tmp_path) -> None:
    wh, (_, second) = _twice(tmp_path, [_orders("a", 2), [*_orders("b", 2, stars=4), *_pages("p", 1)]])
    assert second.fast_path_misses == {}
    # tracks, and pages (a new table, of strings only); order_completed adds an int column: checked
    assert second.fast_path_writes == 2
    assert second.new_columns["order_completed"] == ["stars"]
    assert columns(wh, "order_completed")["stars"] == "BIGINT"


def test_a_new_string_key_of_another_type_goes_fast(tmp_path) -> None:
    # A sampled string is no guess: a string wins over every other kind and its column takes any value.
    # c-0 holds the same keys as b-0, so only b-0 is sampled; its int goes in as text, as checked. d-0
    # holds another key too, so it is sampled: an int next to a sampled string changes nothing.
    later = [*_orders("b", 2, coupon="SPRING"), *_orders("c", 1, coupon=5), *_orders("d", 1, coupon=7, x="y")]
    later += _pages("p", 1)
    wh, (_, second) = _twice(tmp_path, [_orders("a", 2), later])
    assert second.fast_path_misses == {}
    assert second.fast_path_writes == 3  # tracks, order_completed, and pages (a new table, strings only)
    assert sorted(second.new_columns["order_completed"]) == ["coupon", "x"]
    assert columns(wh, "order_completed")["coupon"] == "VARCHAR"
    assert (row(wh, "order_completed", "c-0")["coupon"], row(wh, "order_completed", "d-0")["coupon"]) == ("5", "7")


def test_a_new_key_whose_values_disagree_with_the_sample_is_decided_on_the_checked_path(tmp_path) -> None:
    # Discovery reads q-0 (an int); r-0's fraction makes the insert stop; checked, the first kind seen
    # wins (int, the fraction truncated), and a string later makes another new column a string one.
    later = [
        *_pages("q", 1, stars=4, code=7),
        *_pages("r", 1, stars=4.5, code="X7"),
        *_pages("s", 1, stars=12345678901234567890, code=8),
    ]
    wh, (_, second) = _twice(tmp_path, [_pages("p", 2), later])
    assert second.fast_path_misses == {"pages": 1}
    cols = columns(wh, "pages")
    assert (cols["stars"], cols["code"]) == ("BIGINT", "VARCHAR")
    assert row(wh, "pages", "r-0")["stars"] == 4
    assert row(wh, "pages", "r-0")["code"] == "X7"
    assert [(d["row_id"], d["column_name"]) for d in discards(wh)] == [("s-0", "stars")]


def _page(message_id: str, **properties: object) -> dict:
    return event("page", messageId=message_id, properties={"path": "/", "title": "Docs", **properties})


def test_ints_and_floats_in_the_samples_go_fast_with_the_kind_sampled_first(tmp_path) -> None:
    # Each line holds other keys, so discovery samples each: an int first makes an int column (the
    # fraction truncated into it), a fraction first a float column (the int converted), as checked.
    later = [_page("q-0", stars=4, a=1), _page("r-0", stars=4.5, b=1), _page("s-0", rate=0.5, c=1)]
    later += [_page("t-0", rate=2, d=1)]
    wh, (_, second) = _twice(tmp_path, [_pages("p", 2), later])
    assert second.fast_path_misses == {} and second.fast_path_writes == 1
    cols = columns(wh, "pages")
    assert (cols["stars"], cols["rate"]) == ("BIGINT", "DOUBLE")
    assert (row(wh, "pages", "r-0")["stars"], row(wh, "pages", "t-0")["rate"]) == (4, 2.0)
    assert discards(wh) == []


def test_the_other_number_kind_before_the_first_sampled_line_of_the_guess_stops_the_insert(tmp_path) -> None:
    # q-0 is its group's sample and holds no value; q-1, same keys, is not sampled and holds the batch's
    # first number, a fraction. The samples say int (r-0) before float (s-0): the insert meets q-1's
    # fraction before r-0's line and stops; checked, the fraction came first: a float column.
    later = [_page("q-0", stars="", a=1), _page("q-1", stars=1.5, a=1)]
    later += [_page("r-0", stars=2, b=1), _page("s-0", stars=2.5, c=1)]
    wh, (_, second) = _twice(tmp_path, [_pages("p", 2), later])
    assert second.fast_path_misses == {"pages": 1}
    assert columns(wh, "pages")["stars"] == "DOUBLE"
    assert row(wh, "pages", "r-0")["stars"] == 2.0


def test_a_sampled_string_makes_a_string_column_whatever_the_other_values_are(tmp_path) -> None:
    # q-1 (not sampled) holds an int and a boolean where q-0 held strings: a string wins, checked too.
    later = [_page("q-0", code="X7", note="hi"), _page("q-1", code=5, note=True)]
    wh, (_, second) = _twice(tmp_path, [_pages("p", 2), later])
    assert second.fast_path_misses == {} and second.fast_path_writes == 1
    assert (columns(wh, "pages")["code"], columns(wh, "pages")["note"]) == ("VARCHAR", "VARCHAR")
    assert (row(wh, "pages", "q-1")["code"], row(wh, "pages", "q-1")["note"]) == ("5", "true")


def test_numbers_an_int_column_takes_go_fast_and_those_too_long_for_it_miss(tmp_path) -> None:
    # The insert's test takes a value its bare cast to BIGINT takes (2.7 casts to 3) without the full
    # test; the conversion still truncates, as the checked path does.
    fitting = [
        event(messageId=f"b-{i}", properties={"plan": "pro", "seats": seats, "ratio": 0.5})
        for i, seats in enumerate([2.7, -1.5, 1e3, 4, 9223372036854775807])
    ]
    too_long = [event(messageId="c-0", properties={"plan": "pro", "seats": 1e30, "ratio": 0.5})]
    wh, (_, second, third) = _twice(tmp_path, [_orders("a", 2), fitting, too_long])
    assert second.fast_path_misses == {} and second.value_discards == 0
    seats = [row(wh, "order_completed", f"b-{i}")["seats"] for i in range(5)]
    assert seats == [2, -1, 1000, 4, 9223372036854775807]
    assert third.fast_path_misses == {"order_completed": 1} and third.value_discards == 1
    assert row(wh, "order_completed", "c-0")["seats"] is None


def test_keys_that_collide_or_are_both_a_value_and_an_object_go_fast_with_the_checked_discards(tmp_path) -> None:
    # `channel` collides with the standard column: every value is discarded with its reason (an object
    # there is flattened, so it does not collide), and so does `Channel`, whose twin key makes the parse
    # read `properties` as JSON text. `company` is a string in some events and an object in others: its
    # column and its object's columns are read by pointer. Neither needs the checked path once the
    # columns exist; the discards come from a parse of the rejected keys alone.
    def batch(prefix: str) -> list[dict]:
        return [
            *_pages(prefix, 3, channel="email", company="Acme"),
            *_pages(f"{prefix}-obj", 2, channel={"name": "ads"}, company={"name": "Initech", "size": 40}),
            *_pages(f"{prefix}-twin", 1, channel="sms", Channel="SMS"),
            # `received` holds a value here and an object there, whose `at` flattens onto `received_at`.
            *_pages(f"{prefix}-flat", 1, received="yes"),
            *_pages(f"{prefix}-nest", 1, received={"at": "noon"}),
        ]

    wh, (first, second) = _twice(tmp_path, [batch("a"), batch("b")])
    assert second.fast_path_writes == 1 and second.fast_path_misses == {}
    assert second.value_discards == first.value_discards == 6
    assert (row(wh, "pages", "b-1")["company"], row(wh, "pages", "b-1")["company_name"]) == ("Acme", None)
    obj = row(wh, "pages", "b-obj-1")
    assert (obj["company"], obj["company_name"], obj["company_size"]) == (None, "Initech", 40)
    assert (obj["channel"], obj["channel_name"]) == ("web", "ads")
    found = {(d["row_id"], d["column_name"]): (d["column_value"], d["reason"]) for d in discards(wh)}
    assert found[("b-0", "channel")] == ("email", "collides with the standard column channel; value is a string")
    assert ("b-obj-0", "channel") not in found
    assert sorted(d["column_value"] for d in discards(wh) if d["row_id"] == "b-twin-0") == ["SMS", "sms"]
    assert found[("b-nest-0", "received_at")][0] == "noon"
    assert row(wh, "pages", "b-flat-0")["received"] == "yes"
