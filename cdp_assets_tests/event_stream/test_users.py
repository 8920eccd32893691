"""`users`: the latest non-null value per column per user id, across identifies and across loads."""

from __future__ import annotations

from datetime import UTC, datetime

from cdp_assets_tests.conftest import event, write_dump
from cdp_assets_tests.event_stream.helpers import ES, columns, dicts, load, query

T0 = datetime(2026, 11, 1, 10, 30, tzinfo=UTC)


def _identify(message_id: str, user_id: str | None, received: str, anonymous_id: str = "anon-1", **traits) -> dict:
    return event(
        "identify",
        messageId=message_id,
        userId=user_id,
        anonymousId=anonymous_id,
        receivedAt=f"2026-11-01T{received}Z",
        sentAt=f"2026-11-01T{received}Z",
        originalTimestamp=f"2026-11-01T{received}Z",
        context={"library": {"name": "analytics-node"}, "traits": traits},
        traits=traits,
    )


def _users(wh) -> dict[str, dict]:
    return {r["id"]: r for r in dicts(wh, f"SELECT * FROM {ES}.users")}


def test_latest_non_null_value_per_column_within_and_across_loads(landing, warehouse_path) -> None:
    write_dump(
        landing,
        [
            _identify("i-1", "u-1", "10:00:00.000", email="a@example.com", plan="free", seats=1),
            _identify("i-2", "u-1", "10:05:00.000", anonymous_id="anon-2", plan="pro"),  # no email: keeps a@
            _identify("i-3", "u-2", "10:01:00.000", email="b@example.com"),
            _identify("i-4", None, "10:02:00.000", anonymous_id="anon-9", email="nobody@example.com"),
            event(messageId="t-1", userId="u-3"),  # a track never makes a user
        ],
        uploaded_at=T0,
    )
    first = load(landing, warehouse_path)
    assert first.tables["users"] == 2
    users = _users(warehouse_path)
    assert set(users) == {"u-1", "u-2"}  # no row for the identify without a userId
    u1 = users["u-1"]
    assert (u1["email"], u1["plan"], u1["seats"], u1["anonymous_id"]) == ("a@example.com", "pro", 1, "anon-2")
    assert u1["context_traits_email"] == "a@example.com"
    assert u1["received_at"] == datetime(2026, 11, 1, 10, 5, tzinfo=UTC)
    assert query(warehouse_path, f"SELECT count(*) FROM {ES}.identifies")[0][0] == 4

    write_dump(
        landing,
        [
            _identify("i-5", "u-1", "11:00:00.000", email="new@example.com", company="Acme"),
            # Arrives late, but happened before: it does not override newer values.
            _identify("i-6", "u-2", "09:00:00.000", email="old@example.com", plan="trial"),
        ],
        uploaded_at=T0.replace(hour=11),
    )
    second = load(landing, warehouse_path)
    assert second.tables["users"] == 2
    assert "company" in columns(warehouse_path, "users")
    users = _users(warehouse_path)
    u1, u2 = users["u-1"], users["u-2"]
    assert (u1["email"], u1["plan"], u1["seats"], u1["company"]) == ("new@example.com", "pro", 1, "Acme")
    assert (u2["email"], u2["plan"], u2["company"]) == ("b@example.com", "trial", None)
    assert u2["id"] == "u-2"


def test_users_has_the_identifies_schema_without_user_id(landing, warehouse_path) -> None:
    write_dump(landing, [_identify("i-1", "u-1", "10:00:00.000", email="a@example.com", vip=True)])
    load(landing, warehouse_path)
    identifies = columns(warehouse_path, "identifies")
    users = columns(warehouse_path, "users")
    assert users == {c: t for c, t in identifies.items() if c != "user_id"}


def test_a_rebuild_gives_the_same_row_when_received_at_ties(landing, warehouse_path) -> None:
    write_dump(
        landing,
        [
            _identify("tie-a", "u-1", "10:00:00.000", plan="a"),
            _identify("tie-b", "u-1", "10:00:00.000", plan="b"),
        ],
    )
    load(landing, warehouse_path)
    plan = _users(warehouse_path)["u-1"]["plan"]
    assert plan in {"a", "b"}
    # The same ids and times in another warehouse give the same winner.
    other = warehouse_path.with_name("other.duckdb")
    load(landing, other)
    assert _users(other)["u-1"]["plan"] == plan
