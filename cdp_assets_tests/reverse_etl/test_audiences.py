"""Audiences mirrored into Customer.io: members added and removed, by attribute or manual segment."""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

import duckdb
import pytest

from cdp_assets.reverse_etl.destinations import open_destination
from cdp_assets.reverse_etl.destinations.customerio import CustomerIODestination
from cdp_assets.reverse_etl.runner import RunOptions, SyncResult, run_sync
from cdp_assets.reverse_etl.spec import SyncSpec, spec_from_meta
from cdp_assets.sandbox.customerio import CustomerIOSandbox
from cdp_assets.sources.customerio import CustomerIOConfig, track_client
from cdp_assets_tests.reverse_etl.helpers import batch_operations, row_results, set_consent, writes

SEGMENT = 6  # the stand-in's manual "Enterprise prospects" segment


def audience_spec(membership: dict[str, Any]) -> SyncSpec:
    meta = {
        "audience": {
            "description": "Requested an enterprise quote.",
            "channel": "email",
            "destination": "customerio",
            "membership": membership,
            "primary_key": "profile_id",
            "identifier": "customerio_identifier",
            "schedule": "on_demand",
            "columns": ["plan"],
        }
    }
    return spec_from_meta("audience_quote", "audiences.audience_quote", meta)


def load_members(conn: duckdb.DuckDBPyConnection, members: list[tuple[str, str, str]]) -> None:
    """(profile_id, customerio_identifier, email) rows, as the audience_select macro shapes them."""
    conn.execute(
        "CREATE OR REPLACE TABLE audiences.audience_quote (profile_id VARCHAR, email VARCHAR, user_id VARCHAR,"
        " customerio_id VARCHAR, customerio_identifier VARCHAR, member_since TIMESTAMP, plan VARCHAR)"
    )
    for profile_id, identifier, email in members:
        conn.execute(
            "INSERT INTO audiences.audience_quote VALUES (?, ?, ?, NULL, ?, TIMESTAMP '2024-01-01', 'pro')",
            [profile_id, email, identifier, identifier],
        )
        set_consent(conn, profile_id, "opted_in")


def run(
    conn: duckdb.DuckDBPyConnection, spec: SyncSpec, config: CustomerIOConfig, run_id: str, **opts: bool
) -> SyncResult:
    destination = open_destination(spec, config, None)
    try:
        return run_sync(conn, spec, destination, RunOptions(**opts), run_id)
    finally:
        destination.close()


def identify(pk: str) -> dict[str, Any]:
    """The identify that precedes a manual-segment add (the member's id and email)."""
    return {"type": "person", "action": "identify", "identifiers": {"id": pk}, "attributes": {"email": f"{pk}@x.com"}}


@pytest.fixture
def people(cio_app: CustomerIOSandbox) -> list[str]:
    for pk in ("m1", "m2", "m3"):
        cio_app.identify(pk, email=f"{pk}@x.com")
    return ["m1", "m2", "m3"]


def test_attribute_audience_adds_removes_and_resyncs_without_remove(
    warehouse: duckdb.DuckDBPyConnection, cio_app: CustomerIOSandbox, cio_config: CustomerIOConfig, people: list[str]
) -> None:
    spec = audience_spec({"type": "attribute", "attribute": "audience_quote"})
    load_members(warehouse, [("p1", "m1", "m1@x.com"), ("p2", "m2", "m2@x.com"), ("p3", "m3", "m3@x.com")])
    first = run(warehouse, spec, cio_config, "r1")
    assert (first.status, first.planned_adds, first.accepted) == ("success", 3, 3)
    assert batch_operations(cio_app) == [
        {
            "type": "person",
            "action": "identify",
            "identifiers": {"id": pk},
            "attributes": {"audience_quote": True, "email": f"{pk}@x.com"},
        }
        for pk in people
    ]
    assert all(cio_app.person(pk).attributes["audience_quote"] is True for pk in people)

    # p2 leaves the audience (e.g. opted out: the model drops them): set to false, update-only, never created.
    load_members(warehouse, [("p1", "m1", "m1@x.com"), ("p3", "m3", "m3@x.com")])
    seen = len(cio_app.requests())
    blocked = run(warehouse, spec, cio_config, "r2-blocked")  # 1 of 3 members out: above the default 20%
    assert (blocked.status, blocked.planned_removes, blocked.api_calls) == ("blocked_large_change", 1, 0)
    assert writes(cio_app, seen) == []
    second = run(warehouse, spec, cio_config, "r2", approve_large_change=True)
    assert (second.planned_removes, second.accepted) == (1, 1)
    assert writes(cio_app, seen) == [("PUT", "/api/v1/customers/m2", {"audience_quote": False, "_update": True})]
    assert cio_app.person("m2").attributes["audience_quote"] is False
    assert row_results(warehouse, "r2") == {"p2": ("remove", "accepted", None)}

    # A full resync sends every member again as an add of the attribute: no remove, no false in between.
    seen = len(cio_app.requests())
    resync = run(warehouse, spec, cio_config, "r3", full_resync=True)
    assert (resync.status, resync.planned_changes, resync.planned_removes, resync.accepted) == ("success", 2, 0, 2)
    sent = writes(cio_app, seen)
    assert [m for m, _, _ in sent] == ["POST"]
    assert [
        (op["identifiers"]["id"], op["attributes"]["audience_quote"]) for op in batch_operations(cio_app, seen)
    ] == [
        ("m1", True),
        ("m3", True),
    ]


def test_segment_audience_adds_and_removes_members(
    warehouse: duckdb.DuckDBPyConnection, cio_app: CustomerIOSandbox, cio_config: CustomerIOConfig, people: list[str]
) -> None:
    spec = audience_spec({"type": "manual_segment", "segment_id": SEGMENT})
    before = {p.id for p in cio_app.segment_members(SEGMENT)}
    load_members(warehouse, [("p1", "m1", "m1@x.com"), ("p2", "m2", "m2@x.com")])
    seen = len(cio_app.requests())
    first = run(warehouse, spec, cio_config, "r1")
    # The identify batch, the add, and one read of the segment's membership that finds both added.
    assert (first.status, first.accepted, first.api_calls) == ("success", 2, 3)
    assert [r.path for r in cio_app.requests("GET")[-1:]] == [f"/v1/segments/{SEGMENT}/membership"]
    # Identified first (add_customers ignores unknown ids), then added.
    assert writes(cio_app, seen) == [
        ("POST", "/api/v2/batch", {"batch": [identify("m1"), identify("m2")]}),
        ("POST", f"/api/v1/segments/{SEGMENT}/add_customers", {"ids": ["m1", "m2"]}),
    ]
    assert {p.id for p in cio_app.segment_members(SEGMENT)} - before == {"m1", "m2"}

    # p1 leaves; p2 is now addressed as m3 (say, after a merge in Customer.io).
    load_members(warehouse, [("p2", "m3", "m3@x.com")])
    seen = len(cio_app.requests())
    second = run(warehouse, spec, cio_config, "r2", approve_large_change=True)
    assert (second.planned_changes, second.planned_removes, second.accepted) == (1, 1, 2)
    # Removals first (p1's m1, and p2's old identifier m2), then the addition: p2 is never left out.
    assert writes(cio_app, seen) == [
        ("POST", f"/api/v1/segments/{SEGMENT}/remove_customers", {"ids": ["m2", "m1"]}),
        ("POST", "/api/v2/batch", {"batch": [identify("m3")]}),
        ("POST", f"/api/v1/segments/{SEGMENT}/add_customers", {"ids": ["m3"]}),
    ]
    assert {p.id for p in cio_app.segment_members(SEGMENT)} - before == {"m3"}

    # Full resync: only add_customers, never a remove and re-add.
    seen = len(cio_app.requests())
    run(warehouse, spec, cio_config, "r3", full_resync=True)
    assert writes(cio_app, seen) == [
        ("POST", "/api/v2/batch", {"batch": [identify("m3")]}),
        ("POST", f"/api/v1/segments/{SEGMENT}/add_customers", {"ids": ["m3"]}),
    ]


def test_an_audience_refuses_a_member_without_consent_but_still_removes(
    warehouse: duckdb.DuckDBPyConnection, cio_app: CustomerIOSandbox, cio_config: CustomerIOConfig, people: list[str]
) -> None:
    spec = audience_spec({"type": "attribute", "attribute": "audience_quote"})
    load_members(warehouse, [("p1", "m1", "m1@x.com"), ("p2", "m2", "m2@x.com")])
    run(warehouse, spec, cio_config, "r1")
    # p2 is suppressed after the audience was built, yet still in it; p3 joins with an erasure request.
    load_members(warehouse, [("p2", "m2", "m2-new@x.com"), ("p3", "m3", "m3@x.com")])
    set_consent(warehouse, "p2", "suppressed")
    set_consent(warehouse, "p3", "erased")
    seen = len(cio_app.requests())
    result = run(warehouse, spec, cio_config, "r2", approve_large_change=True)
    assert (result.skipped_consent, result.planned_removes, result.accepted) == (2, 1, 1)
    assert writes(cio_app, seen) == [("PUT", "/api/v1/customers/m1", {"audience_quote": False, "_update": True})]
    assert row_results(warehouse, "r2") == {
        "p1": ("remove", "accepted", None),
        "p2": ("change", "skipped_consent", "profile p2 is suppressed on email: not eligible"),
        "p3": ("add", "skipped_consent", "profile p3 is erased on email: not eligible"),
    }


def test_a_member_whose_key_is_duplicated_stays_in_the_audience(
    warehouse: duckdb.DuckDBPyConnection, cio_app: CustomerIOSandbox, cio_config: CustomerIOConfig, people: list[str]
) -> None:
    spec = audience_spec({"type": "attribute", "attribute": "audience_quote"})
    members = [("p1", "m1", "m1@x.com"), ("p2", "m2", "m2@x.com"), ("p3", "m3", "m3@x.com")]
    load_members(warehouse, members)
    assert run(warehouse, spec, cio_config, "r1").accepted == 3

    # A join fan-out in the model gives p2 two rows: both invalid, and p2 must not be taken out.
    load_members(warehouse, [*members, ("p2", "m2", "m2-other@x.com")])
    seen = len(cio_app.requests())
    second = run(warehouse, spec, cio_config, "r2")
    assert (second.invalid, second.planned_removes, second.sent) == (2, 0, 0)
    assert writes(cio_app, seen) == []
    assert cio_app.person("m2").attributes["audience_quote"] is True
    assert (
        warehouse.execute("SELECT op, status, error FROM reverse_etl.sync_row_results WHERE run_id = 'r2'").fetchall()
        == [("invalid", "invalid", "duplicate primary key")] * 2
    )
    assert warehouse.execute(
        "SELECT run_id FROM reverse_etl.snapshots WHERE sync = 'audience_quote' AND pk = 'p2'"
    ).fetchall() == [("r1",)]


def test_a_segment_member_customerio_does_not_know_yet_is_created_then_added(
    warehouse: duckdb.DuckDBPyConnection, cio_app: CustomerIOSandbox, cio_config: CustomerIOConfig, people: list[str]
) -> None:
    # add_customers ignores an unknown id without an error: the add used to be recorded accepted and
    # committed, so the member was never added, even once Customer.io knew them.
    spec = audience_spec({"type": "manual_segment", "segment_id": SEGMENT})
    assert cio_app.person("newbie") is None
    load_members(warehouse, [("p1", "m1", "m1@x.com"), ("p2", "newbie", "newbie@x.com")])
    result = run(warehouse, spec, cio_config, "r1")
    assert (result.status, result.accepted) == ("success", 2)
    assert cio_app.person("newbie").attributes["email"] == "newbie@x.com"
    assert {"m1", "newbie"} <= {p.id for p in cio_app.segment_members(SEGMENT)}
    assert row_results(warehouse, "r1")["p2"] == ("add", "accepted", None)


def test_the_stand_in_lags_identifies_like_customerio_so_an_early_add_customers_is_ignored(
    cio_app: CustomerIOSandbox, cio_config: CustomerIOConfig
) -> None:
    client = track_client(cio_config)
    add = f"{client.base_url}/segments/{SEGMENT}/add_customers"
    cio_app.delay_identifies(0.3)
    client.identify("late", email="late@x.com")
    # Accepted (200) but not applied yet: the person does not exist, and the add of their id is ignored.
    client.send_request("POST", add, {"ids": ["late"]})
    assert cio_app.person("late") is None
    time.sleep(0.35)
    assert cio_app.person("late") is not None
    assert "late" not in {p.id for p in cio_app.segment_members(SEGMENT)}
    client.send_request("POST", add, {"ids": ["late"]})  # now Customer.io knows them: the add takes
    assert "late" in {p.id for p in cio_app.segment_members(SEGMENT)}
    client.close()


def run_with_checks(
    conn: duckdb.DuckDBPyConnection, spec: SyncSpec, config: CustomerIOConfig, run_id: str, checks: int = 4
) -> SyncResult:
    """A run whose membership checks wait 0.1 s, 0.2 s, 0.4 s (not the 2 s, 4 s, 8 s of a real run)."""
    destination = CustomerIODestination(config, segment_checks=checks, segment_settle_seconds=0.1)
    try:
        return run_sync(conn, spec, destination, RunOptions(), run_id)
    finally:
        destination.close()


def segment_adds(app: CustomerIOSandbox, since: int = 0) -> list[list[str]]:
    return [body["ids"] for _, path, body in writes(app, since) if path.endswith("/add_customers")]


def test_a_segment_add_that_reached_customerio_before_the_identify_is_checked_and_sent_again(
    warehouse: duckdb.DuckDBPyConnection, cio_app: CustomerIOSandbox, cio_config: CustomerIOConfig, people: list[str]
) -> None:
    # Customer.io processes the identify of the new member 0.2 s after accepting it, so the add that
    # follows at once is ignored (200). It used to be recorded accepted and committed: never added.
    spec = audience_spec({"type": "manual_segment", "segment_id": SEGMENT})
    cio_app.delay_identifies(0.2)
    load_members(warehouse, [("p1", "m1", "m1@x.com"), ("p2", "newbie", "newbie@x.com")])
    result = run_with_checks(warehouse, spec, cio_config, "r1")
    assert (result.status, result.accepted, result.rejected) == ("success", 2, 0)
    assert {"m1", "newbie"} <= {p.id for p in cio_app.segment_members(SEGMENT)}
    # m1 was in at the first check; newbie was added again until the segment had them.
    adds = segment_adds(cio_app)
    assert adds[0] == ["m1", "newbie"] and all(ids == ["newbie"] for ids in adds[1:]) and len(adds) >= 2
    assert row_results(warehouse, "r1") == {"p1": ("add", "accepted", None), "p2": ("add", "accepted", None)}
    assert len(cio_app.requests("GET", f"/v1/segments/{SEGMENT}/membership")) == len(adds)


def test_a_member_customerio_never_takes_is_rejected_with_why_and_sent_again_next_run(
    warehouse: duckdb.DuckDBPyConnection, cio_app: CustomerIOSandbox, cio_config: CustomerIOConfig, people: list[str]
) -> None:
    # A suppressed id: Customer.io accepts its identify and drops it, and ignores its add.
    spec = audience_spec({"type": "manual_segment", "segment_id": SEGMENT})
    cio_app.suppress("ghost")
    load_members(warehouse, [("p1", "m1", "m1@x.com"), ("p2", "ghost", "ghost@x.com")])
    result = run_with_checks(warehouse, spec, cio_config, "r1", checks=3)
    assert (result.status, result.accepted, result.rejected) == ("partial", 1, 1)
    assert segment_adds(cio_app) == [["m1", "ghost"], ["ghost"], ["ghost"]]
    op, status, error = row_results(warehouse, "r1")["p2"]
    assert (op, status) == ("add", "rejected")
    assert f"did not add 'ghost' to manual segment {SEGMENT}" in (error or "")
    assert "after 3 checks over 0.3 s" in (error or "")
    assert warehouse.execute("SELECT pk FROM reverse_etl.snapshots").fetchall() == [("p1",)]

    # Not committed: the next run sends it again (and takes it once Customer.io does).
    client = track_client(cio_config)
    client.unsuppress("ghost")
    client.close()
    seen = len(cio_app.requests())
    again = run_with_checks(warehouse, spec, cio_config, "r2")
    assert (again.planned_adds, again.accepted) == (1, 1)
    assert segment_adds(cio_app, seen) == [["ghost"]]
    assert "ghost" in {p.id for p in cio_app.segment_members(SEGMENT)}


def test_without_an_app_api_key_segment_adds_are_taken_on_customerios_word_and_the_run_says_so(
    warehouse: duckdb.DuckDBPyConnection, cio_app: CustomerIOSandbox, cio_config: CustomerIOConfig, people: list[str]
) -> None:
    spec = audience_spec({"type": "manual_segment", "segment_id": SEGMENT})
    load_members(warehouse, [("p1", "m1", "m1@x.com")])
    result = run(warehouse, spec, replace(cio_config, app_api_key=""), "r1")
    assert (result.status, result.accepted, result.api_calls) == ("success", 1, 2)
    assert "1 manual-segment add(s) not checked: without an App API key" in result.message
    assert cio_app.requests("GET") == []
