"""Flattening: payload objects become columns the way RudderStack's warehouse transformer makes them."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from cdp_assets_tests.conftest import event, write_dump
from cdp_assets_tests.event_stream.helpers import ES, columns, discards, load, query, row

JS_CONTEXT = {
    "library": {"name": "RudderLabs JavaScript SDK", "version": "3.0.0"},
    "userAgent": "Mozilla/5.0",
    "page": {"url": "https://example.com/pricing", "referring_domain": "google.com"},
    "screen": {"innerWidth": 1280, "density": 2},
    "campaign": {"name": "spring", "source": "newsletter"},
    "traits": {"email": "a@example.com", "address": {"city": "Berlin"}},
    "ip": "10.0.0.7",
}


@pytest.fixture(scope="module")
def flat(tmp_path_factory):
    """One load of every event type and shape the assertions below look at."""
    from cdp_assets.event_stream.landing import LocalLandingStore

    root = tmp_path_factory.mktemp("flattening")
    store = LocalLandingStore(root / "landing")
    lines = [
        event(
            messageId="t-nested",
            context=JS_CONTEXT,
            request_ip="192.0.2.1",
            properties={
                "plan": {"tier": "pro", "limits": {"seats": 5, "sso": True}},
                "items": [{"sku": "A-1", "qty": 2}, {"sku": "B-2", "qty": 1}],
                "tags": ["a", "b"],
                "empty_list": [],
                "nothing": None,
                "blank": "",
                "empty_object": {},
                "shape": "square",
                "Email": "upper@example.com",
            },
            topLevelExtra="dropped",
        ),
        event(messageId="t-object", properties={"shape": {"sides": 4, "name": "square"}, "email": "lower@example.com"}),
        event(messageId="t-both-cases", properties={"Email": "E@example.com", "email": "e@example.com"}),
        event(messageId="t-nulls", properties={"nothing": None, "blank": ""}),
        event(
            "page",
            messageId="p-named",
            name="Pricing",
            category="Docs",
            properties={"name": "Pricing", "path": "/pricing", "url": "https://example.com/pricing"},
        ),
        event("page", messageId="p-fallback", properties={"name": "Home", "path": "/"}),
        event("page", messageId="p-unnamed", properties={"path": "/x"}),
        event("screen", messageId="s-1", name="Settings", properties={"dark_mode": True}),
        # Node's identify: root traits (bare columns) plus a copy in context.traits.
        event(
            "identify",
            messageId="i-node",
            userId="u-1",
            traits={"email": "n@example.com", "plan": "pro", "company": {"name": "Acme"}},
            context={"library": {"name": "analytics-node"}, "traits": {"email": "n@example.com"}},
        ),
        # JS v3 / Python identify: context.traits only.
        event("identify", messageId="i-js", userId="u-2", context={"traits": {"email": "j@example.com"}}),
        event("group", messageId="g-1", userId="u-1", groupId="acme", traits={"name": "Acme", "employees": 40}),
        event("alias", messageId="al-1", userId="u-3", previousId="anon-1", traits={"merged": True}),
    ]
    write_dump(store, lines)
    wh = root / "warehouse.duckdb"
    summary = load(store, wh)
    assert summary.loaded == len(lines)
    return wh


def test_context_is_flattened_under_the_context_prefix(flat) -> None:
    r = row(flat, "order_completed", "t-nested")
    assert r["context_library_name"] == "RudderLabs JavaScript SDK"
    assert r["context_user_agent"] == "Mozilla/5.0"
    assert r["context_page_url"] == "https://example.com/pricing"
    assert r["context_page_referring_domain"] == "google.com"
    assert r["context_screen_inner_width"] == 1280
    assert r["context_campaign_name"] == "spring"
    assert r["context_traits_email"] == "a@example.com"
    assert r["context_traits_address_city"] == "Berlin"
    # context.ip is the passed ip and wins over the request ip; no context_ip column of its own is added.
    assert (r["context_ip"], r["context_passed_ip"], r["context_request_ip"]) == ("10.0.0.7", "10.0.0.7", "192.0.2.1")
    # tracks holds the standard and context columns, not the properties.
    tracks = columns(flat, "tracks")
    assert "context_user_agent" in tracks and "plan_tier" not in tracks and "shape" not in tracks


def test_nested_properties_are_joined_with_underscores(flat) -> None:
    r = row(flat, "order_completed", "t-nested")
    assert (r["plan_tier"], r["plan_limits_seats"], r["plan_limits_sso"]) == ("pro", 5, True)
    cols = columns(flat, "order_completed")
    assert (cols["plan_limits_seats"], cols["plan_limits_sso"]) == ("BIGINT", "BOOLEAN")
    assert "plan" not in cols and "top_level_extra" not in cols and "properties" not in cols


def test_arrays_are_stored_as_json_text(flat) -> None:
    r = row(flat, "order_completed", "t-nested")
    assert columns(flat, "order_completed")["items"] == "VARCHAR"
    assert json.loads(r["items"]) == [{"sku": "A-1", "qty": 2}, {"sku": "B-2", "qty": 1}]
    assert json.loads(r["tags"]) == ["a", "b"]
    assert r["empty_list"] == "[]"
    assert "items_sku" not in columns(flat, "order_completed")


def test_null_empty_string_and_empty_objects_are_skipped(flat) -> None:
    cols = columns(flat, "order_completed")
    assert "nothing" not in cols and "blank" not in cols and "empty_object" not in cols


def test_a_property_that_is_a_scalar_in_one_event_and_an_object_in_another(flat) -> None:
    scalar = row(flat, "order_completed", "t-nested")
    nested = row(flat, "order_completed", "t-object")
    assert (scalar["shape"], scalar["shape_sides"]) == ("square", None)
    assert (nested["shape"], nested["shape_sides"], nested["shape_name"]) == (None, 4, "square")


def test_keys_equal_but_for_case_feed_one_column(flat) -> None:
    assert [c for c in columns(flat, "order_completed") if c.lower() == "email"] == ["email"]
    assert row(flat, "order_completed", "t-nested")["email"] == "upper@example.com"
    assert row(flat, "order_completed", "t-object")["email"] == "lower@example.com"
    assert row(flat, "order_completed", "t-both-cases")["email"] in {"E@example.com", "e@example.com"}
    assert not [d for d in discards(flat) if d["column_name"] == "email"]


def test_pages_take_their_name_from_the_event_or_from_properties(flat) -> None:
    assert row(flat, "pages", "p-named")["name"] == "Pricing"
    assert "category" not in columns(flat, "pages")  # a root field, not a property: dropped
    assert row(flat, "pages", "p-fallback")["name"] == "Home"
    assert row(flat, "pages", "p-unnamed")["name"] is None
    assert row(flat, "pages", "p-fallback")["path"] == "/"
    # properties.name is where the name comes from, not a collision with the name column.
    assert not [d for d in discards(flat) if d["table_name"] == "pages"]
    assert row(flat, "screens", "s-1")["name"] == "Settings"
    assert row(flat, "screens", "s-1")["dark_mode"] is True


def test_identify_root_traits_are_bare_columns_and_context_traits_are_prefixed(flat) -> None:
    node = row(flat, "identifies", "i-node")
    assert (node["email"], node["plan"], node["company_name"]) == ("n@example.com", "pro", "Acme")
    assert node["context_traits_email"] == "n@example.com"
    assert node["context_source_type"] == "Node"
    js = row(flat, "identifies", "i-js")
    assert js["context_traits_email"] == "j@example.com"
    assert js["email"] is None  # context.traits never becomes bare columns (allowUsersContextTraits off)


def test_group_and_alias_tables(flat) -> None:
    group = row(flat, "groups", "g-1")
    assert (group["group_id"], group["user_id"], group["name"], group["employees"]) == ("acme", "u-1", "Acme", 40)
    alias = row(flat, "aliases", "al-1")
    assert (alias["previous_id"], alias["user_id"], alias["merged"]) == ("anon-1", "u-3", True)


def test_standard_columns_of_every_table(flat) -> None:
    common = [
        "id",
        "anonymous_id",
        "user_id",
        "sent_at",
        "timestamp",
        "received_at",
        "original_timestamp",
        "channel",
        "context_ip",
        "context_request_ip",
        "context_passed_ip",
        "context_source_id",
        "context_source_type",
        "context_destination_id",
        "context_destination_type",
        "uuid_ts",
    ]
    for table, extra in [
        ("tracks", ["event_text", "event"]),
        ("order_completed", ["event_text", "event"]),
        ("pages", ["name"]),
        ("screens", ["name"]),
        ("groups", ["group_id"]),
        ("aliases", ["previous_id"]),
        ("identifies", []),
    ]:
        assert list(columns(flat, table))[: len(common) + len(extra)] == common + extra, table
    users = columns(flat, "users")
    assert "user_id" not in users and "anonymous_id" in users and "email" in users
    r = row(flat, "tracks", "t-nested")
    assert (r["event_text"], r["event"], r["channel"]) == ("Order Completed", "order_completed", "web")
    assert r["context_source_id"] == "2Gsrc0000000000000000000001"
    assert r["context_source_type"] == "Javascript"
    assert r["uuid_ts"] is not None
    assert query(flat, f"SELECT count(DISTINCT uuid_ts) FROM {ES}.tracks")[0][0] == 1


def test_an_object_where_earlier_loads_saw_a_scalar(landing, warehouse_path) -> None:
    write_dump(landing, [event(messageId="first", properties={"device": "phone"})])
    load(landing, warehouse_path)
    later = datetime(2026, 11, 1, 11, tzinfo=UTC)
    write_dump(
        landing,
        [event(messageId="second", properties={"device": {"kind": "tablet", "os": {"name": "iOS"}}})],
        uploaded_at=later,
    )
    summary = load(landing, warehouse_path)
    assert summary.loaded == 1
    assert summary.new_columns["order_completed"] == ["device_kind", "device_os_name"]
    second = row(warehouse_path, "order_completed", "second")
    assert (second["device"], second["device_kind"], second["device_os_name"]) == (None, "tablet", "iOS")
    assert row(warehouse_path, "order_completed", "first")["device"] == "phone"
    # And back: a scalar where the last load saw an object.
    write_dump(landing, [event(messageId="third", properties={"device": "watch"})], uploaded_at=later.replace(hour=12))
    load(landing, warehouse_path)
    assert row(warehouse_path, "order_completed", "third")["device"] == "watch"


def _nest(keys: str, leaf: object) -> object:
    for key in reversed(keys):
        leaf = {key: leaf}
    return leaf


def test_shapes_that_vary_deeper_and_deeper_do_not_block_the_load(landing, warehouse_path) -> None:
    """A value that is a scalar in one event and an object in the next, level after level, and a chain
    of events each nesting deeper where only the one before was read: the batch still loads, whole."""
    depth = 12
    letters = "abcdefghijklmnopqrstuvwxyz"
    scalar_then_object = [event(messageId=f"s-{i:02d}", properties=_nest(letters[: i + 1], i)) for i in range(depth)]
    # c-i: {"chain": {"y": {"y": ... {"x<i>": i}}}}, i levels of "y".
    chain = [
        event(messageId=f"c-{i:02d}", event="Chain", properties={"chain": _nest("y" * i, {f"x{i}": i})})
        for i in range(depth)
    ]
    write_dump(landing, scalar_then_object + chain)
    summary = load(landing, warehouse_path)
    assert summary.loaded == 2 * depth
    for i in range(depth):
        column = "_".join(letters[: i + 1])
        assert row(warehouse_path, "order_completed", f"s-{i:02d}")[column] == i
        column = "_".join(["chain", *["y"] * i, f"x{i}"])
        assert row(warehouse_path, "chain", f"c-{i:02d}")[column] == i


def _pages_batch() -> list[dict]:
    """Pages whose shapes change along the batch: a new key late, a scalar that becomes an object, a
    value of the wrong kind for a column the batch types, a duplicate."""
    pages = [event("page", messageId=f"p-{i}", properties={"path": f"/{i}", "size": i}) for i in range(6)]
    pages.append(event("page", messageId="p-late-key", properties={"path": "/late", "late": "yes"}))
    pages.append(event("page", messageId="p-object", properties={"path": {"base": "/docs", "depth": 2}}))
    pages.append(event("page", messageId="p-conflict", properties={"size": "large"}))
    pages.append(event("page", messageId="p-0", properties={"path": "/again"}))
    return pages


def test_a_batch_mostly_of_pages_loads_like_a_mixed_batch(tmp_path):
    """When one type holds most of a batch its lines are read in place rather than copied (a cheaper
    path); the rows, columns and discards must be what the copied path gives for the same pages."""
    from cdp_assets.event_stream.landing import LocalLandingStore

    # A first load makes `size` an int column, so the batch's "large" is a conflict.
    first = [event("page", messageId="p-first", properties={"size": 1})]
    mostly = LocalLandingStore(tmp_path / "mostly")
    mixed = LocalLandingStore(tmp_path / "mixed")
    for store, path in ((mostly, "mostly.duckdb"), (mixed, "mixed.duckdb")):
        write_dump(store, first)
        load(store, tmp_path / path)
    write_dump(mostly, [*_pages_batch(), event(messageId="t-1")])
    tracks = [event(messageId=f"t-{i}", properties={"n": i}) for i in range(30)]
    write_dump(mixed, [*tracks[:15], *_pages_batch(), *tracks[15:]])
    assert load(mostly, tmp_path / "mostly.duckdb").duplicates == 1
    assert load(mixed, tmp_path / "mixed.duckdb").duplicates == 1

    def pages(path):
        cols = [c for c in columns(path, "pages") if c not in ("uuid_ts",)]
        return cols, query(path, f"SELECT {', '.join(cols)} FROM {ES}.pages ORDER BY id")

    got_cols, got = pages(tmp_path / "mostly.duckdb")
    assert pages(tmp_path / "mixed.duckdb") == (got_cols, got)
    assert {"path", "path_base", "path_depth", "late", "size"} <= set(got_cols)
    assert len(got) == 10  # p-first and the batch but its second p-0, a duplicate
    by_id = {r[got_cols.index("id")]: dict(zip(got_cols, r, strict=True)) for r in got}
    assert by_id["p-object"]["path_base"] == "/docs" and by_id["p-object"]["path_depth"] == 2
    assert by_id["p-late-key"]["late"] == "yes"
    assert by_id["p-conflict"]["size"] is None
    page_discards = [d for d in discards(tmp_path / "mostly.duckdb") if d["table_name"] == "pages"]
    assert page_discards == [d for d in discards(tmp_path / "mixed.duckdb") if d["table_name"] == "pages"]
    assert [(d["row_id"], d["column_name"], d["column_value"]) for d in page_discards] == [
        ("p-conflict", "size", "large")
    ]


def test_an_object_found_in_one_group_is_looked_for_in_every_group_holding_its_key(landing, warehouse_path) -> None:
    """Discovery's first round groups events by their keys at the objects known when the chunk began, so
    "scalar" and "object" share a group (same keys in properties) and "scalar" is its sample. "learns"
    (another group) shows that `cart` is an object: the group of "scalar" must be grouped again, or the
    keys under `cart` in "object" would have no column."""
    write_dump(
        landing,
        [
            event(messageId="scalar", properties={"cart": "none"}),
            event(messageId="object", properties={"cart": {"items": 3}}),
            event(messageId="learns", properties={"cart": {"total": 9.5}, "coupon": "X"}),
            event(messageId="other", properties={"plan": "pro"}),
        ],
    )
    summary = load(landing, warehouse_path)
    assert summary.loaded == 4
    assert {k: row(warehouse_path, "order_completed", k)["cart_items"] for k in ("scalar", "object", "learns")} == {
        "scalar": None,
        "object": 3,
        "learns": None,
    }
    assert row(warehouse_path, "order_completed", "learns")["cart_total"] == 9.5
    assert row(warehouse_path, "order_completed", "scalar")["cart"] == "none"


def test_only_groups_whose_sample_holds_a_new_objects_key_are_grouped_again() -> None:
    from cdp_assets.event_stream.discovery import _regroup

    hashed = {("context",), ("properties",), ("context", "traits")}
    samples = {
        1: [{"properties": {"cart": "none"}}],  # holds the key (a scalar here, maybe not in its group)
        2: [{"properties": {"plan": "pro"}}],
        3: [{"context": {"traits": {"company": {"name": "Acme"}}}}],
        None: [{"properties": {"cart": {"total": 1}}}],
    }
    # properties.cart.total.currency: its first unhashed ancestor is properties.cart.
    assert sorted(_regroup(samples, {("properties", "cart"), ("properties", "cart", "x")}, hashed), key=str) == [
        1,
        None,
    ]
    assert _regroup(samples, {("context", "traits", "company")}, hashed) == [3]
    assert _regroup(samples, {("context", "page")}, hashed) == []
    # A new top-level object has no hashed parent: every event is grouped again.
    assert _regroup(samples, {("integrations",)}, hashed) is None


def test_user_properties_feed_the_event_table_and_identifies_and_a_user_id_trait_is_renamed(
    landing, warehouse_path
) -> None:
    lines = [
        event(
            messageId="t-up",
            userId="u-1",
            properties={"plan": "basic", "total": 5},
            userProperties={"plan": "pro", "seats": {"used": 3}, "blank": ""},
        ),
        # A null user property leaves the property's value in place.
        event(messageId="t-up-null", properties={"plan": "basic"}, userProperties={"plan": None}),
        event(
            "identify",
            messageId="i-up",
            userId="u-1",
            traits={"email": "t@example.com", "tier": "gold", "userId": "crm-7"},
            userProperties={"tier": "silver", "score": 9},
        ),
        event("page", messageId="p-up", properties={"path": "/"}, userProperties={"tier": "gold"}),
    ]
    write_dump(landing, lines)
    summary = load(landing, warehouse_path)
    assert (summary.loaded, summary.discarded) == (4, 0)
    track = row(warehouse_path, "order_completed", "t-up")
    # userProperties are unprefixed columns of the event table and win over properties of the same name.
    assert (track["plan"], track["total"], track["seats_used"]) == ("pro", 5, 3)
    assert row(warehouse_path, "order_completed", "t-up-null")["plan"] == "basic"
    assert "seats_used" not in columns(warehouse_path, "tracks")
    identify = row(warehouse_path, "identifies", "i-up")
    # Root traits win over userProperties; a trait naming user_id lands in _user_id, not in a discard.
    assert (identify["tier"], identify["score"], identify["email"]) == ("gold", 9, "t@example.com")
    assert (identify["user_id"], identify["_user_id"]) == ("u-1", "crm-7")
    user = row(warehouse_path, "users", "u-1")
    assert (user["_user_id"], user["tier"], user["score"]) == ("crm-7", "gold", 9)
    # RudderStack flattens userProperties for track and identify only (like any other root field).
    assert "tier" not in columns(warehouse_path, "pages")
    assert discards(warehouse_path) == []
