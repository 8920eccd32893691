"""`integrations` routing (rudder-server FilterClientIntegrations) and user transformations: what they drop
is counted as filtered, with the rule, and never loaded."""

from __future__ import annotations

import pytest

from cdp_assets.event_stream.transformations import TRANSFORMATIONS, UnknownTransformation, is_internal_email, resolve
from cdp_assets_tests.conftest import event, write_dump
from cdp_assets_tests.event_stream.helpers import ES, LEDGER, compact, dicts, load, query

MISSING = object()
ALL_FALSE = "routing: integrations.All is false"
DEST_FALSE = "routing: integrations.Snowflake is false"
IS_NULL = "routing: integrations is null"
NOT_OBJECT = "routing: integrations is not an object"
ALL_NOT_BOOL = "routing: integrations.All is not a boolean"

# (message id, integrations, the rule that filters it or None when it is loaded)
ROUTING_CASES = [
    ("missing", MISSING, None),
    ("empty", {}, None),
    ("all-true", {"All": True}, None),
    ("all-false", {"All": False}, ALL_FALSE),
    ("all-false-dest-true", {"All": False, "Snowflake": True}, None),
    ("dest-false", {"Snowflake": False}, DEST_FALSE),
    ("all-true-dest-false", {"All": True, "Snowflake": False}, DEST_FALSE),
    ("all-false-dest-object", {"All": False, "Snowflake": {}}, None),
    ("all-false-dest-options", {"All": False, "Snowflake": {"jsonPaths": ["track.properties.cart"]}}, None),
    ("null", None, IS_NULL),
    ("string", "All", NOT_OBJECT),
    ("array", ["Snowflake"], NOT_OBJECT),
    ("number", 1, NOT_OBJECT),
    ("all-string", {"All": "yes"}, ALL_NOT_BOOL),
    ("all-number", {"All": 1}, ALL_NOT_BOOL),
    ("all-false-other-dest", {"All": False, "Customer IO": True}, ALL_FALSE),
    ("other-dest-false", {"Customer IO": False, "Salesforce": False}, None),
    ("wrong-case", {"snowflake": False}, None),  # keys are case-sensitive display names
    ("dest-string", {"Snowflake": "false"}, None),  # neither boolean nor object: All decides
    ("all-false-dest-string", {"All": False, "Snowflake": "yes"}, ALL_FALSE),
]


@pytest.fixture(scope="module")
def routed(tmp_path_factory):
    from cdp_assets.event_stream.landing import LocalLandingStore

    root = tmp_path_factory.mktemp("routing")
    store = LocalLandingStore(root / "landing")
    lines: list[dict | str] = []
    for message_id, integrations, _rule in ROUTING_CASES:
        e = event(messageId=message_id, event="Signed Up")
        e.pop("integrations", None)
        if integrations is not MISSING:
            e["integrations"] = integrations
        lines.append(compact(e))  # compact(): keeps an explicit null
    key = write_dump(store, lines)
    wh = root / "warehouse.duckdb"
    return wh, key, load(store, wh)


def test_routing_rules(routed) -> None:
    wh, key, summary = routed
    loaded = {r[0] for r in query(wh, f"SELECT id FROM {ES}.tracks")}
    filtered = {r["message_id"]: r for r in dicts(wh, f"SELECT * FROM {LEDGER}.filtered")}
    for line, (message_id, _integrations, rule) in enumerate(ROUTING_CASES, start=1):
        if rule is None:
            assert message_id in loaded, message_id
            assert message_id not in filtered, message_id
        else:
            assert message_id not in loaded, message_id
            assert filtered[message_id]["rule"] == rule, message_id
            assert (filtered[message_id]["file_key"], filtered[message_id]["line_no"]) == (key, line)
            assert (filtered[message_id]["event_type"], filtered[message_id]["event_text"]) == ("track", "Signed Up")
    expected_rules: dict[str, int] = {}
    for _id, _integrations, rule in ROUTING_CASES:
        if rule:
            expected_rules[rule] = expected_rules.get(rule, 0) + 1
    assert summary.filter_rules == expected_rules
    assert summary.filtered == sum(expected_rules.values())
    assert summary.loaded == len(ROUTING_CASES) - summary.filtered
    # A filtered event is in no table, not even its own event table.
    assert query(wh, f"SELECT count(*) FROM {ES}.signed_up")[0][0] == summary.loaded


def test_is_internal_email() -> None:
    assert is_internal_email("x@rudderstack.com")
    assert is_internal_email("someone@rudderlabs.io")
    assert is_internal_email("a+ruddertest@gmail.com")
    assert not is_internal_email("rudderstack@example.com")
    assert not is_internal_email("a@example.com")
    assert not is_internal_email(None)
    assert not is_internal_email("")


def test_drop_internal_emails(landing, warehouse_path) -> None:
    lines = [
        event(messageId="ctx-internal", context={"traits": {"email": "x@rudderstack.com"}}),
        event(messageId="ctx-test-alias", context={"traits": {"email": "a+ruddertest@gmail.com"}}),
        event(messageId="ctx-labs", context={"traits": {"email": "ops@rudderlabs.com"}}),
        event("identify", messageId="root-traits", userId="u-1", traits={"email": "y@rudderstack.com"}),
        event(messageId="property", properties={"email": "z@rudderstack.com"}),
        event(messageId="customer", context={"traits": {"email": "a@example.com"}}),
        event(messageId="lookalike", context={"traits": {"email": "rudderstack@example.com"}}),
        event(messageId="no-email", context={"traits": {"name": "Ann"}}),
        event(messageId="no-traits"),
        event(messageId="no-context", context=None),
        event(messageId="email-not-text", context={"traits": {"email": 5}}),
        # Routing is decided first: an event routed away is filtered by routing, not the transformation.
        event(messageId="both", integrations={"All": False}, context={"traits": {"email": "x@rudderstack.com"}}),
    ]
    write_dump(landing, lines)
    summary = load(landing, warehouse_path, transformations=(TRANSFORMATIONS["drop_internal_emails"],))
    rule = "transformation: drop_internal_emails"
    assert summary.filter_rules == {rule: 5, ALL_FALSE: 1}
    assert (summary.loaded, summary.filtered) == (6, 6)
    kept = {r[0] for r in query(warehouse_path, f"SELECT id FROM {ES}.tracks")}
    assert kept == {"customer", "lookalike", "no-email", "no-traits", "no-context", "email-not-text"}
    assert query(warehouse_path, f"SELECT count(*) FROM {ES}.identifies")[0][0] == 0
    assert query(warehouse_path, f"SELECT count(*) FROM {ES}.users")[0][0] == 0
    rules = dict(query(warehouse_path, f"SELECT message_id, rule FROM {LEDGER}.filtered"))
    assert rules == {
        "ctx-internal": rule,
        "ctx-test-alias": rule,
        "ctx-labs": rule,
        "root-traits": rule,
        "property": rule,
        "both": ALL_FALSE,
    }


def test_without_the_transformation_internal_emails_load(landing, warehouse_path) -> None:
    write_dump(landing, [event(messageId="internal", context={"traits": {"email": "x@rudderstack.com"}})])
    summary = load(landing, warehouse_path)
    assert (summary.loaded, summary.filtered) == (1, 0)


def test_drop_anonymous_pages_and_two_transformations(landing, warehouse_path) -> None:
    lines = [
        event("page", messageId="anon-page", properties={"path": "/"}),
        event("page", messageId="known-page", userId="u-1", properties={"path": "/"}),
        event("page", messageId="internal-page", userId="u-2", context={"traits": {"email": "q@rudderstack.com"}}),
        event(messageId="anon-track"),
        event("Page", messageId="anon-page-capitalised", properties={"path": "/"}),
    ]
    write_dump(landing, lines)
    chosen = tuple(resolve(["drop_anonymous_pages", "drop_internal_emails"]))
    summary = load(landing, warehouse_path, transformations=chosen)
    assert summary.filter_rules == {
        "transformation: drop_anonymous_pages": 2,
        "transformation: drop_internal_emails": 1,
    }
    assert {r[0] for r in query(warehouse_path, f"SELECT id FROM {ES}.pages")} == {"known-page"}


def test_unknown_transformations_are_refused_by_name() -> None:
    with pytest.raises(UnknownTransformation, match="drop_everything"):
        resolve(["drop_internal_emails", "drop_everything"])


def test_a_nested_integrations_key_is_not_the_events(landing, warehouse_path) -> None:
    nested = event(messageId="nested", properties={"integrations": None, "note": '"integrations": null'})
    nested.pop("integrations", None)
    write_dump(landing, [compact(nested), compact({**event(messageId="top"), "integrations": None})])
    summary = load(landing, warehouse_path)
    assert (summary.loaded, summary.filter_rules) == (1, {IS_NULL: 1})
    assert query(warehouse_path, f"SELECT id, note FROM {ES}.order_completed") == [("nested", '"integrations": null')]
