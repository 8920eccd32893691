"""Names from data (event names, property keys) become safe warehouse identifiers, RudderStack's way."""

from __future__ import annotations

import re

import pytest

from cdp_assets.event_stream.naming import MAX_IDENTIFIER_LENGTH, event_table_name, quote, safe_name
from cdp_assets_tests.conftest import event, write_dump
from cdp_assets_tests.event_stream.helpers import ES, columns, discards, load, query, row, tables


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        # The reference's examples.
        ("Add to Cart", "add_to_cart"),
        ("userAgent", "user_agent"),
        ("isISO8601", "is_iso8601"),  # new destinations do not split numbers
        # RudderStack's snakecase test vectors ("with numbers").
        ("aeiouAreVowels", "aeiou_are_vowels"),
        ("enable 6h format", "enable_6h_format"),
        ("enable 24H format", "enable_24h_format"),
        ("LETTERSAeiouAreVowels", "letters_aeiou_are_vowels"),
        ("tooLegit2Quit", "too_legit2_quit"),
        ("walk500Miles", "walk500_miles"),
        ("xhr2Request", "xhr2_request"),
        ("XMLHttp", "xml_http"),
        ("XmlHTTP", "xml_http"),
        ("XmlHttp", "xml_http"),
        ("foo bar", "foo_bar"),
        ("Foo Bar", "foo_bar"),
        ("FOO BAR", "foo_bar"),
        ("fooBar", "foo_bar"),
        ("--foo-bar--", "foo_bar"),
        ("already_snake_case", "already_snake_case"),
        # A leading digit gets a `_` prefix.
        ("12ft", "_12ft"),
        ("1st visit", "_1st_visit"),
        ("2019", "_2019"),
        # Snowflake reserved words get a `_` prefix, whatever their case.
        ("select", "_select"),
        ("order", "_order"),
        ("Order", "_order"),
        ("GROUP", "_group"),
        ("currentDate", "_current_date"),
        ("selection", "selection"),
        # Leading underscores are kept (and then the name is no longer a reserved word).
        ("_private", "_private"),
        ("__two", "__two"),
        ("__foo_bar__", "__foo_bar"),
        ("_select", "_select"),
        ("_1abc", "_1abc"),
        # Everything outside ASCII letters and digits separates words and is dropped.
        ('"quoted"', "quoted"),
        ("semi;colon", "semi_colon"),
        ("it's", "it_s"),
        ("a.b/c~d", "a_b_c_d"),
        ("'; DROP TABLE tracks; --", "drop_table_tracks"),
        ("Robert'); DROP TABLE users;--", "robert_drop_table_users"),
        ('x" OR "1"="1', "x_or_1_1"),
        ("😀 smile", "smile"),
        ("Ünïcödé key", "n_c_d_key"),
        ("tab\tand\nnewline", "tab_and_newline"),
        # Nothing usable left.
        ("😀", ""),
        ("", ""),
        ("___", ""),
        ("!@#$%", ""),
    ],
)
def test_safe_name_vectors(raw: str, expected: str) -> None:
    assert safe_name(raw) == expected


def test_long_names_are_cut_to_127_characters() -> None:
    assert safe_name("a" * 300) == "a" * MAX_IDENTIFIER_LENGTH
    assert safe_name("9" + "b" * 300) == "_9" + "b" * (MAX_IDENTIFIER_LENGTH - 2)
    assert len(safe_name("word " * 100)) == MAX_IDENTIFIER_LENGTH
    assert len(event_table_name("users" + "x" * 300)) == MAX_IDENTIFIER_LENGTH


def test_safe_names_contain_only_lowercase_letters_digits_and_underscores() -> None:
    hostile = ["'; DROP TABLE x; --", 'a"b', "a`b", "a\\b", "\x00\x01", "ä" * 10, "🙂a🙂b", "a b\u2019s c", " "]
    for raw in hostile:
        name = safe_name(raw)
        assert re.fullmatch(r"[a-z0-9_]*", name), (raw, name)
        if name:
            assert quote(name) == f'"{name}"'


def test_quote_refuses_anything_but_a_safe_name() -> None:
    for bad in ['a"b', "A", "1abc", "", "a b", "tracks; DROP TABLE tracks"]:
        with pytest.raises(ValueError):
            quote(bad)


@pytest.mark.parametrize(
    ("event_name", "table"),
    [
        ("Order Completed", "order_completed"),
        ("users", "_users"),
        ("Users", "_users"),
        ("identifies", "_identifies"),
        ("tracks", "_tracks"),
        ("pages", "_pages"),
        ("screens", "_screens"),
        ("groups", "_groups"),
        ("aliases", "_aliases"),
        ("accounts", "_accounts"),
        ("Tracks!", "_tracks"),
        ("rudder_discards", "_rudder_discards"),
        # Only the reserved word prefixes these, once: ORDER is reserved, ORDERS is not.
        ("Order", "_order"),
        ("orders", "orders"),
        ("group", "_group"),
        ("user", "user"),
        ("😀", ""),
    ],
)
def test_event_table_names(event_name: str, table: str) -> None:
    assert event_table_name(event_name) == table


HOSTILE_EVENT = "'; DROP TABLE tracks; --"


def test_hostile_names_end_to_end(landing, warehouse_path) -> None:
    """Event names and keys that try SQL are only names: the tables get safe names, values stay intact,
    and nothing they say is executed."""
    props = {
        HOSTILE_EVENT: "v-drop",
        'a"b': 'value with "quotes"',
        "semi;colon": "v-semi",
        "Robert'); DROP TABLE users;--": "v-bobby",
        "a/b~c": "v-pointer",  # '/' and '~' are JSON-pointer syntax
        "$.x": "v-dollar",
        "x' || (SELECT 1) || '": "v-concat",
        "😀": "only an emoji",  # no letters or digits: no column
        "timestamp": "2020-01-01",  # a standard column: not taken from properties
        "event": "not the event",
        "note": "'; DROP TABLE tracks; --",  # SQL as a value
    }
    lines = [
        event(messageId="m-hostile", event=HOSTILE_EVENT, properties=props),
        event(messageId="m-users", event="users", properties={"plan": "pro"}),
        event(messageId="m-order", event="Order", properties={"total": 10}),
        event(messageId="m-tracks", event="tracks", properties={"n": 1}),
        event(messageId="m-emoji", event="😀", properties={"n": 2}),
        event(messageId="m-select", event="select", properties={"from": "x", "where": "y"}),
        event(
            "identify",
            messageId="m-ident",
            userId='u"1; DROP TABLE users',
            context={"traits": {"email;--": "e@example.com", "😀": "smile"}},
        ),
    ]
    write_dump(landing, lines)
    summary = load(landing, warehouse_path)
    assert summary.loaded == 7

    names = tables(warehouse_path)
    assert {"drop_table_tracks", "_users", "_order", "_tracks", "_select", "tracks", "users"} <= names
    for table in names:
        assert re.fullmatch(r"[a-z_][a-z0-9_]*", table), table
        for column in columns(warehouse_path, table):
            assert re.fullmatch(r"[a-z_][a-z0-9_]*", column), (table, column)

    # Nothing was dropped: every event is in tracks, and the tracks table is whole.
    assert query(warehouse_path, f"SELECT count(*) FROM {ES}.tracks")[0][0] == 6
    hostile = row(warehouse_path, "drop_table_tracks", "m-hostile")
    assert hostile["event_text"] == HOSTILE_EVENT
    assert hostile["event"] == "drop_table_tracks"
    assert hostile["drop_table_tracks"] == "v-drop"
    assert hostile["a_b"] == 'value with "quotes"'
    assert hostile["semi_colon"] == "v-semi"
    assert hostile["robert_drop_table_users"] == "v-bobby"
    assert hostile["a_b_c"] == "v-pointer"
    assert hostile["x"] == "v-dollar"
    assert hostile["x_select_1"] == "v-concat"
    assert hostile["note"] == "'; DROP TABLE tracks; --"
    assert hostile["timestamp"].isoformat() == "2026-11-01T10:00:00.300000+00:00"  # derived, not the property

    assert row(warehouse_path, "_users", "m-users")["plan"] == "pro"
    assert row(warehouse_path, "_order", "m-order")["total"] == 10
    assert row(warehouse_path, "_tracks", "m-tracks")["n"] == 1
    selected = row(warehouse_path, "_select", "m-select")
    assert (selected["_from"], selected["_where"]) == ("x", "y")
    # An event name with nothing usable gets no table of its own; its tracks row is kept.
    emoji = row(warehouse_path, "tracks", "m-emoji")
    assert emoji["event_text"] == "😀"
    assert emoji["event"] is None

    ident = row(warehouse_path, "identifies", "m-ident")
    assert ident["user_id"] == 'u"1; DROP TABLE users'
    assert ident["context_traits_email"] == "e@example.com"
    assert query(warehouse_path, f"SELECT id FROM {ES}.users") == [('u"1; DROP TABLE users',)]

    # Keys that cannot become columns are kept in rudder_discards with the reason.
    found = {(d["table_name"], d["row_id"], d["column_name"]): d for d in discards(warehouse_path)}
    emoji_key = found[("drop_table_tracks", "m-hostile", "/properties/😀")]
    assert emoji_key["column_value"] == "only an emoji"
    assert "no letters or digits" in emoji_key["reason"]
    collided = found[("drop_table_tracks", "m-hostile", "timestamp")]
    assert collided["column_value"] == "2020-01-01"
    assert "standard column timestamp" in collided["reason"]
    assert found[("drop_table_tracks", "m-hostile", "event")]["column_value"] == "not the event"
    assert found[("identifies", "m-ident", "/context/traits/😀")]["column_value"] == "smile"
    # So are the properties of the event whose name names no table, under `tracks`.
    unnamed = found[("tracks", "m-emoji", "n")]
    assert unnamed["column_value"] == "2"
    assert "no letters or digits to name a table" in unnamed["reason"]
    assert len(found) == 5
    assert summary.value_discards == 5
