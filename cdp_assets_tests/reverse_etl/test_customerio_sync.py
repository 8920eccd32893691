"""Syncs into Customer.io end to end: the runner, the real `customerio` client, the Track API stand-in."""

from __future__ import annotations

import time
from typing import Any

import duckdb
import pytest

from cdp_assets.reverse_etl.destinations import OutgoingRow, RowOutcome, open_destination
from cdp_assets.reverse_etl.runner import DestinationUnavailable, RunOptions, SyncResult, run_sync
from cdp_assets.reverse_etl.spec import SyncSpec, spec_from_meta
from cdp_assets.sandbox.customerio import CustomerIOSandbox, rate_limit_fault, server_error_fault
from cdp_assets.sandbox.http import Fault, Response
from cdp_assets.sources.customerio import CustomerIOConfig
from cdp_assets_tests.reverse_etl.helpers import batch_operations, previews, row_results, set_consent, writes

PEOPLE_META: dict[str, Any] = {
    "sync": {
        "destination": "customerio",
        "object": "person",
        "mode": "upsert",
        "primary_key": "id",
        "destination_key": "id",
        "purpose": "marketing",
        "consent_channel": "email",
        "profile_column": "profile_id",
        "fields": {"email": "email", "plan": "plan", "mrr": "mrr", "profile_id": "cdp_profile_id"},
        "send_nulls": False,
        "schedule": "daily",
    }
}


def people_spec(**changes: Any) -> SyncSpec:
    meta = {"sync": {**PEOPLE_META["sync"], **changes}}
    return spec_from_meta("sync_customerio_people", "sync.sync_customerio_people", meta)


def load_people(conn: duckdb.DuckDBPyConnection, rows: list[tuple[str, str, str | None, float, str]]) -> None:
    """(id, email, plan, mrr, profile_id) rows; every profile opted in unless the test says otherwise."""
    conn.execute(
        "CREATE OR REPLACE TABLE sync.sync_customerio_people "
        "(id VARCHAR, email VARCHAR, plan VARCHAR, mrr DOUBLE, profile_id VARCHAR)"
    )
    for row in rows:
        conn.execute("INSERT INTO sync.sync_customerio_people VALUES (?, ?, ?, ?, ?)", list(row))
        known = conn.execute("SELECT count(*) FROM consent.consent_status WHERE profile_id = ?", [row[4]]).fetchone()
        if not known[0]:
            set_consent(conn, row[4], "opted_in")


PEOPLE = [
    ("u1", "a@x.com", "pro", 49.0, "p1"),
    ("u2", "b@x.com", "free", 0.0, "p2"),
    ("u3", "c@x.com", None, 0.0, "p3"),
    ("u4", "d@x.com", "pro", 49.0, "p4"),
    ("u5", "e@x.com", "free", 0.0, "p5"),
]


def run(
    conn: duckdb.DuckDBPyConnection, spec: SyncSpec, config: CustomerIOConfig | None, run_id: str, **options: bool
) -> SyncResult:
    destination = open_destination(spec, config, None) if config is not None else None
    try:
        return run_sync(conn, spec, destination, RunOptions(**options), run_id)
    finally:
        if destination is not None:
            destination.close()


def identify(pk: str, **attributes: Any) -> dict[str, Any]:
    return {"type": "person", "action": "identify", "identifiers": {"id": pk}, "attributes": attributes}


def test_first_run_sends_everyone_then_nothing_then_only_what_changed(
    warehouse: duckdb.DuckDBPyConnection, cio_app: CustomerIOSandbox, cio_config: CustomerIOConfig
) -> None:
    spec = people_spec()
    load_people(warehouse, PEOPLE)
    first = run(warehouse, spec, cio_config, "r1")
    assert (first.status, first.planned_adds, first.sent, first.accepted, first.api_calls) == ("success", 5, 5, 5, 1)
    # One batch; nulls are not sent (send_nulls: false): u3 has no plan.
    assert batch_operations(cio_app) == [
        identify("u1", email="a@x.com", plan="pro", mrr=49.0, cdp_profile_id="p1"),
        identify("u2", email="b@x.com", plan="free", mrr=0.0, cdp_profile_id="p2"),
        identify("u3", email="c@x.com", mrr=0.0, cdp_profile_id="p3"),
        identify("u4", email="d@x.com", plan="pro", mrr=49.0, cdp_profile_id="p4"),
        identify("u5", email="e@x.com", plan="free", mrr=0.0, cdp_profile_id="p5"),
    ]
    assert cio_app.person("u1").attributes["plan"] == "pro"

    seen = len(cio_app.requests())
    second = run(warehouse, spec, cio_config, "r2")
    assert (second.status, second.sent, second.api_calls) == ("no_change", 0, 0)
    assert writes(cio_app, seen) == []

    warehouse.execute("UPDATE sync.sync_customerio_people SET plan = 'enterprise' WHERE id = 'u2'")
    third = run(warehouse, spec, cio_config, "r3")
    assert (third.status, third.planned_changes, third.sent) == ("success", 1, 1)
    assert batch_operations(cio_app, seen) == [
        identify("u2", email="b@x.com", plan="enterprise", mrr=0.0, cdp_profile_id="p2")
    ]
    assert row_results(warehouse, "r3") == {"u2": ("change", "accepted", None)}
    run_row = warehouse.execute(
        "SELECT status, planned_changes, sent, accepted, api_calls FROM reverse_etl.sync_runs WHERE run_id = 'r3'"
    ).fetchone()
    assert run_row == ("success", 1, 1, 1, 1)


def test_rejected_rows_keep_their_error_and_only_they_are_retried(
    warehouse: duckdb.DuckDBPyConnection, cio_app: CustomerIOSandbox, cio_config: CustomerIOConfig
) -> None:
    spec = people_spec()
    load_people(warehouse, PEOPLE)
    cio_app.reject(["u2", "d@x.com"], "attribute value too long")
    first = run(warehouse, spec, cio_config, "r1")
    assert (first.status, first.sent, first.accepted, first.rejected) == ("partial", 5, 3, 2)
    results = row_results(warehouse, "r1")
    assert {pk: status for pk, (_, status, _) in results.items()} == {
        "u1": "accepted",
        "u2": "rejected",
        "u3": "accepted",
        "u4": "rejected",
        "u5": "accepted",
    }
    assert "attribute value too long: u2" in (results["u2"][2] or "")
    assert "attribute value too long: d@x.com" in (results["u4"][2] or "")
    assert cio_app.person("u2") is None

    cio_app.clear_rejections()
    seen = len(cio_app.requests())
    second = run(warehouse, spec, cio_config, "r2")  # the model did not change
    assert (second.status, second.planned_adds, second.accepted) == ("success", 2, 2)
    assert [op["identifiers"]["id"] for op in batch_operations(cio_app, seen)] == ["u2", "u4"]
    assert cio_app.person("u2").attributes["email"] == "b@x.com"


def test_dry_run_sends_nothing_and_previews_exactly_what_the_real_run_sends(
    warehouse: duckdb.DuckDBPyConnection, cio_app: CustomerIOSandbox, cio_config: CustomerIOConfig
) -> None:
    spec = people_spec(max_change_share=0.5)
    load_people(warehouse, PEOPLE[:3])
    run(warehouse, spec, cio_config, "r1")
    load_people(warehouse, [("u1", "a@x.com", "enterprise", 99.0, "p1"), *PEOPLE[1:3], PEOPLE[3]])
    set_consent(warehouse, "p3", "opted_out")  # u3 unchanged: not in the preview at all

    seen = len(cio_app.requests())
    dry = run(warehouse, spec, None, "dry", dry_run=True)
    assert (dry.status, dry.planned_adds, dry.planned_changes, dry.sent, dry.api_calls) == ("dry_run", 1, 1, 0, 0)
    assert cio_app.requests()[seen:] == []
    preview = previews(warehouse, "dry")
    assert preview == {
        "u1": (
            "change",
            [
                {
                    "call": "batch",
                    "operation": identify("u1", email="a@x.com", plan="enterprise", mrr=99.0, cdp_profile_id="p1"),
                }
            ],
            None,
        ),
        "u4": (
            "add",
            [
                {
                    "call": "batch",
                    "operation": identify("u4", email="d@x.com", plan="pro", mrr=49.0, cdp_profile_id="p4"),
                }
            ],
            None,
        ),
    }
    assert warehouse.execute("SELECT count(*) FROM reverse_etl.snapshots WHERE run_id = 'dry'").fetchone() == (0,)

    real = run(warehouse, spec, cio_config, "real")
    assert real.sent == 2
    sent = {op["identifiers"]["id"]: op for op in batch_operations(cio_app, seen)}
    assert sent == {pk: calls[0]["operation"] for pk, (_, calls, reason) in preview.items() if reason is None}


def test_large_change_guard_blocks_before_any_call_until_approved(
    warehouse: duckdb.DuckDBPyConnection, cio_app: CustomerIOSandbox, cio_config: CustomerIOConfig
) -> None:
    spec = people_spec(max_change_share=0.5)
    load_people(warehouse, PEOPLE)
    run(warehouse, spec, cio_config, "r1")
    warehouse.execute("UPDATE sync.sync_customerio_people SET mrr = mrr + 1 WHERE id IN ('u1', 'u2', 'u3')")

    seen = len(cio_app.requests())
    blocked = run(warehouse, spec, cio_config, "r2")
    assert blocked.status == "blocked_large_change"
    assert "3 of the 5 rows" in blocked.message and "approve_large_change: true" in blocked.message
    assert (blocked.sent, blocked.api_calls) == (0, 0)
    assert cio_app.requests()[seen:] == []

    approved = run(warehouse, spec, cio_config, "r3", approve_large_change=True)
    assert (approved.status, approved.accepted) == ("success", 3)
    assert [op["identifiers"]["id"] for op in batch_operations(cio_app, seen)] == ["u1", "u2", "u3"]
    # A full resync re-sends everything but changes nothing: the guard does not stop it.
    resync = run(warehouse, spec, cio_config, "r4", full_resync=True)
    assert (resync.status, resync.planned_changes, resync.accepted) == ("success", 5, 5)


def test_an_opted_out_person_in_a_marketing_feed_is_never_sent(
    warehouse: duckdb.DuckDBPyConnection, cio_app: CustomerIOSandbox, cio_config: CustomerIOConfig
) -> None:
    spec = people_spec()
    load_people(
        warehouse, [*PEOPLE[:2], ("u6", "optedout@x.com", "pro", 49.0, "p6"), ("u7", "nobody@x.com", "pro", 0.0, "p7")]
    )
    set_consent(warehouse, "p6", "opted_out")
    warehouse.execute("DELETE FROM consent.consent_status WHERE profile_id = 'p7'")  # no consent row: unknown

    result = run(warehouse, spec, cio_config, "r1")
    assert (result.status, result.skipped_consent, result.accepted) == ("success", 2, 2)
    bodies = [str(body) for _, _, body in writes(cio_app)]
    assert bodies and not any("u6" in b or "optedout@x.com" in b or "p6" in b for b in bodies)
    assert not any("u7" in b or "nobody@x.com" in b for b in bodies)
    assert cio_app.person("u6") is None
    results = row_results(warehouse, "r1")
    assert results["u6"] == ("add", "skipped_consent", "profile p6 is opted_out on email: not eligible")
    assert results["u7"] == ("add", "skipped_consent", "profile p7 has no consent status on email: not eligible")

    # Still refused next run; sent once the person opts in again (explicitly).
    assert run(warehouse, spec, cio_config, "r2").skipped_consent == 2
    set_consent(warehouse, "p6", "opted_in")
    third = run(warehouse, spec, cio_config, "r3")
    assert (third.skipped_consent, third.accepted) == (1, 1)
    assert cio_app.person("u6").attributes["email"] == "optedout@x.com"


def test_an_address_opted_out_is_never_sent_whatever_its_profile_says(
    warehouse: duckdb.DuckDBPyConnection, cio_app: CustomerIOSandbox, cio_config: CustomerIOConfig
) -> None:
    # The profile opted in on another address; this one still has its opt-out in effect.
    load_people(warehouse, [*PEOPLE[:1], ("u8", "Old@X.com ", "pro", 49.0, "p8")])
    set_consent(warehouse, "p8", "opted_in")
    warehouse.execute(
        "INSERT INTO consent.consent_contact_points (email, profile_id, channel, status, eligible) "
        "VALUES ('old@x.com', 'p8', 'email', 'opted_out', false)"
    )
    result = run(warehouse, spec := people_spec(), cio_config, "r1")
    assert (result.skipped_consent, result.accepted) == (1, 1)
    assert cio_app.person("u8") is None
    assert row_results(warehouse, "r1")["u8"] == (
        "add",
        "skipped_consent",
        "address Old@X.com  is opted_out on email: not eligible",
    )
    warehouse.execute("UPDATE consent.consent_contact_points SET status = 'opted_in', eligible = true")
    assert run(warehouse, spec, cio_config, "r2").accepted == 1


def test_update_only_never_creates_and_a_quota_stop_keeps_what_was_accepted(
    warehouse: duckdb.DuckDBPyConnection, cio_app: CustomerIOSandbox, cio_config: CustomerIOConfig
) -> None:
    spec = people_spec(mode="update_only")
    for pk in ("u1", "u2", "u4"):
        cio_app.identify(pk, email=f"{pk}@old.com")
    load_people(warehouse, PEOPLE[:4])
    # The Track API keeps rate-limiting u4's update: the run stops there.
    cio_app.inject(rate_limit_fault(times=10, retry_after=0, path=r"/customers/u4$"))
    seen = len(cio_app.requests())
    first = run(warehouse, spec, cio_config, "r1")
    assert first.status == "quota_stopped"
    assert (first.accepted, first.sent, first.retries) == (3, 3, 2)
    assert [(m, p) for m, p, _ in writes(cio_app, seen)] == [
        ("PUT", "/api/v1/customers/u1"),
        ("PUT", "/api/v1/customers/u2"),
        ("PUT", "/api/v1/customers/u3"),
        ("PUT", "/api/v1/customers/u4"),
        ("PUT", "/api/v1/customers/u4"),
        ("PUT", "/api/v1/customers/u4"),
    ]
    assert writes(cio_app, seen)[0][2] == {
        "email": "a@x.com",
        "plan": "pro",
        "mrr": 49.0,
        "cdp_profile_id": "p1",
        "_update": True,
    }
    assert cio_app.person("u3") is None  # update_only: u3 did not exist and was not created
    assert cio_app.person("u1").attributes["email"] == "a@x.com"
    assert row_results(warehouse, "r1")["u4"][1] == "not_sent"

    cio_app.clear_faults()
    seen = len(cio_app.requests())
    second = run(warehouse, spec, cio_config, "r2")
    assert (second.status, second.accepted) == ("success", 1)
    assert [(m, p) for m, p, _ in writes(cio_app, seen)] == [("PUT", "/api/v1/customers/u4")]


@pytest.mark.parametrize("action", ["unsubscribe", "suppress"])
def test_suppression_sync_carries_opted_out_people_and_never_creates(
    warehouse: duckdb.DuckDBPyConnection, cio_app: CustomerIOSandbox, cio_config: CustomerIOConfig, action: str
) -> None:
    meta = {
        "sync": {
            "destination": "customerio",
            "object": "person",
            "mode": "suppression",
            "primary_key": "id",
            "purpose": "operational",
            "profile_column": "profile_id",
            "action_column": "action",
            "fields": {"unsubscribed": "unsubscribed"},
            "schedule": "daily",
        }
    }
    spec = spec_from_meta("sync_customerio_suppressions", "sync.sync_customerio_suppressions", meta)
    warehouse.execute(
        "CREATE TABLE sync.sync_customerio_suppressions "
        "(id VARCHAR, profile_id VARCHAR, unsubscribed BOOLEAN, action VARCHAR)"
    )
    warehouse.execute(
        "INSERT INTO sync.sync_customerio_suppressions VALUES ('u1', 'p1', true, ?), "
        "('ghost', 'p9', true, 'unsubscribe'), ('u2', 'p2', true, 'delete everything')",
        [action],
    )
    set_consent(warehouse, "p1", "opted_out")
    cio_app.identify("u1", email="a@x.com")
    result = run(warehouse, spec, cio_config, "r1")
    assert (result.skipped_consent, result.invalid, result.accepted) == (0, 1, 2)
    sent = [(m, p, b) for m, p, b in writes(cio_app)]
    if action == "unsubscribe":
        assert ("PUT", "/api/v1/customers/u1", {"unsubscribed": True, "_update": True}) in sent
        assert cio_app.person("u1").unsubscribed
    else:
        assert [(m, p) for m, p, _ in sent if p.startswith("/api/v1/customers/u1")] == [
            ("POST", "/api/v1/customers/u1/suppress")
        ]
        assert cio_app.person("u1") is None and cio_app.is_suppressed("u1")
    assert cio_app.person("ghost") is None
    assert row_results(warehouse, "r1")["u2"][1:] == (
        "invalid",
        "suppression row 'u2': action must be unsubscribe or suppress, got 'delete everything'",
    )


def test_a_429_is_retried_after_its_retry_after_and_counted(
    warehouse: duckdb.DuckDBPyConnection, cio_app: CustomerIOSandbox, cio_config: CustomerIOConfig
) -> None:
    load_people(warehouse, PEOPLE[:2])
    cio_app.inject(rate_limit_fault(times=1, retry_after=0.2, path="/api/v2/batch"))
    started = time.monotonic()
    result = run(warehouse, people_spec(), cio_config, "r1")
    assert time.monotonic() - started >= 0.2
    assert (result.status, result.accepted, result.api_calls, result.retries) == ("success", 2, 2, 1)
    assert len([w for w in writes(cio_app) if w[1] == "/api/v2/batch"]) == 2


def test_an_api_that_keeps_failing_fails_the_run_after_committing_what_was_accepted(
    warehouse: duckdb.DuckDBPyConnection, cio_app: CustomerIOSandbox, cio_config: CustomerIOConfig
) -> None:
    spec = people_spec(mode="update_only")
    load_people(warehouse, PEOPLE[:3])
    cio_app.inject(server_error_fault(times=10, status=503, path=r"/customers/u2$"))
    with pytest.raises(DestinationUnavailable, match="Customer.io still failing after 3 attempts: HTTP 503"):
        run(warehouse, spec, cio_config, "r1")
    assert warehouse.execute("SELECT status, accepted FROM reverse_etl.sync_runs").fetchall() == [("error", 1)]
    assert warehouse.execute("SELECT pk FROM reverse_etl.snapshots").fetchall() == [("u1",)]
    results = row_results(warehouse, "r1")
    assert results["u1"][1] == "accepted"
    assert results["u2"][1] == results["u3"][1] == "not_sent"
    assert "a@x.com" not in str(results)  # the client's error text (with the request body) stays out


@pytest.mark.parametrize("mode", ["upsert", "update_only"])
def test_a_non_finite_number_makes_its_row_invalid_and_the_others_go(
    warehouse: duckdb.DuckDBPyConnection, cio_app: CustomerIOSandbox, cio_config: CustomerIOConfig, mode: str
) -> None:
    # Say, a division by zero in the model. inf used to fail the whole batch in the client (every row
    # rejected, every run); NaN went out as null and cleared the attribute despite send_nulls: false.
    spec = people_spec(mode=mode)
    for pk in ("u1", "u2", "u3", "u4"):
        cio_app.identify(pk, email=f"{pk}@x.com", mrr=49.0)
    load_people(warehouse, [(pk, f"{pk}@x.com", "pro", 49.0, f"p{pk[1]}") for pk in ("u1", "u2", "u3", "u4")])
    assert run(warehouse, spec, cio_config, "r1").accepted == 4
    warehouse.execute(
        "UPDATE sync.sync_customerio_people SET plan = 'enterprise', "
        "mrr = CASE id WHEN 'u1' THEN 'inf'::DOUBLE WHEN 'u2' THEN '-inf'::DOUBLE WHEN 'u3' THEN 'nan'::DOUBLE "
        "ELSE mrr END"
    )
    for run_id in ("r2", "r3"):  # the bad rows stay invalid run after run; they never block the others
        seen = len(cio_app.requests())
        result = run(warehouse, spec, cio_config, run_id, approve_large_change=True)
        results = row_results(warehouse, run_id)
        assert {pk: status for pk, (_, status, _) in results.items()} == {
            "u1": "invalid",
            "u2": "invalid",
            "u3": "invalid",
            **({"u4": "accepted"} if run_id == "r2" else {}),
        }
        assert (
            results["u1"][2] == "column mrr is inf, not a finite number: JSON cannot carry it, so the row is not sent"
        )
        assert "column mrr is -inf" in (results["u2"][2] or "")
        assert "column mrr is nan" in (results["u3"][2] or "")
        assert (result.invalid, result.sent) == (3, 1 if run_id == "r2" else 0)
        assert [w[1] for w in writes(cio_app, seen)] == (
            (["/api/v2/batch"] if mode == "upsert" else ["/api/v1/customers/u4"]) if run_id == "r2" else []
        )
    for pk in ("u1", "u2", "u3"):
        assert (cio_app.person(pk).attributes["mrr"], cio_app.person(pk).attributes["plan"]) == (49.0, "pro")
    assert cio_app.person("u4").attributes["plan"] == "enterprise"


def test_a_message_the_client_cannot_encode_fails_alone_and_is_not_counted_as_sent(
    cio_app: CustomerIOSandbox, cio_config: CustomerIOConfig
) -> None:
    # The runner's render refuses such rows first; the destination must not trust that: one row the
    # client cannot encode used to fail its whole batch before any request, reported as rejected.
    destination = open_destination(people_spec(), cio_config, None)
    try:
        report = destination.send(
            [
                OutgoingRow("u1", "add", [{"call": "batch", "operation": identify("u1", mrr=float("inf"))}]),
                OutgoingRow("u2", "add", [{"call": "batch", "operation": identify("u2", mrr=1.0)}]),
            ]
        )
    finally:
        destination.close()
    assert report.outcomes["u2"] == RowOutcome(True)
    assert (report.outcomes["u1"].accepted, report.outcomes["u1"].sent) == (False, False)
    assert "Out of range float values are not JSON compliant" in (report.outcomes["u1"].error or "")
    assert batch_operations(cio_app) == [identify("u2", mrr=1.0)]
    assert cio_app.person("u1") is None


def test_a_newly_mapped_column_that_is_null_re_sends_nothing_and_a_value_turning_null_is_a_change(
    warehouse: duckdb.DuckDBPyConnection, cio_app: CustomerIOSandbox, cio_config: CustomerIOConfig
) -> None:
    load_people(warehouse, PEOPLE)
    assert run(warehouse, people_spec(), cio_config, "r1").accepted == 5
    warehouse.execute("ALTER TABLE sync.sync_customerio_people ADD COLUMN country VARCHAR")
    fields = {**PEOPLE_META["sync"]["fields"], "country": "country"}

    # Nulls are not sent (send_nulls: false), so every message would be the one Customer.io already
    # has: nothing is planned and no request is made (it used to re-send all 5 rows).
    seen = len(cio_app.requests())
    result = run(warehouse, people_spec(fields=fields), cio_config, "r2")
    assert (result.status, result.planned_changes, result.sent, result.api_calls) == ("no_change", 0, 0, 0)
    assert writes(cio_app, seen) == []

    # A row that gets a value in the new column is the only one sent.
    warehouse.execute("UPDATE sync.sync_customerio_people SET country = 'FR' WHERE id = 'u2'")
    seen = len(cio_app.requests())
    result = run(warehouse, people_spec(fields=fields), cio_config, "r3")
    assert (result.planned_changes, result.accepted) == (1, 1)
    assert batch_operations(cio_app, seen) == [
        identify("u2", email="b@x.com", plan="free", mrr=0.0, cdp_profile_id="p2", country="FR")
    ]

    # A value that turns null is still a change; without send_nulls the null is not sent, so
    # Customer.io keeps the value (what send_nulls: false promises).
    warehouse.execute("UPDATE sync.sync_customerio_people SET country = NULL WHERE id = 'u2'")
    seen = len(cio_app.requests())
    result = run(warehouse, people_spec(fields=fields), cio_config, "r4")
    assert (result.planned_changes, result.accepted) == (1, 1)
    assert batch_operations(cio_app, seen) == [
        identify("u2", email="b@x.com", plan="free", mrr=0.0, cdp_profile_id="p2")
    ]
    assert cio_app.person("u2").attributes["country"] == "FR"

    # With send_nulls the nulls go out and blank whatever the destination holds: a newly mapped column
    # is a change for every row (so the large-change guard stops it before any call).
    warehouse.execute("ALTER TABLE sync.sync_customerio_people ADD COLUMN region VARCHAR")
    blanking = people_spec(fields={**fields, "region": "region"}, send_nulls=True)
    seen = len(cio_app.requests())
    blocked = run(warehouse, blanking, cio_config, "r5")
    assert (blocked.status, blocked.planned_changes, blocked.api_calls) == ("blocked_large_change", 5, 0)
    assert writes(cio_app, seen) == []
    approved = run(warehouse, blanking, cio_config, "r6", approve_large_change=True)
    assert (approved.planned_changes, approved.accepted) == (5, 5)
    assert "country" not in cio_app.person("u2").attributes  # its null was sent this time, and cleared it

    # ... and a value that turns null is sent as null, which clears the attribute.
    warehouse.execute("UPDATE sync.sync_customerio_people SET plan = NULL WHERE id = 'u1'")
    seen = len(cio_app.requests())
    result = run(warehouse, blanking, cio_config, "r7")
    assert (result.planned_changes, result.accepted) == (1, 1)
    [operation] = batch_operations(cio_app, seen)
    assert operation["identifiers"] == {"id": "u1"} and operation["attributes"]["plan"] is None
    assert "plan" not in cio_app.person("u1").attributes


def test_snapshots_hashed_with_their_nulls_before_the_upgrade_re_send_nothing(
    warehouse: duckdb.DuckDBPyConnection, cio_app: CustomerIOSandbox, cio_config: CustomerIOConfig
) -> None:
    load_people(warehouse, PEOPLE)  # u3 has no plan: its hash is the one that moved
    assert run(warehouse, people_spec(), cio_config, "r1").accepted == 5
    # The snapshot as the previous version wrote it: the hash of every mapped column, nulls included.
    warehouse.execute("UPDATE reverse_etl.snapshots SET row_hash = md5(CAST(payload AS VARCHAR))")
    u3_old = warehouse.execute("SELECT row_hash FROM reverse_etl.snapshots WHERE pk = 'u3'").fetchone()[0]

    # The first run after the upgrade, with a newly mapped column that is still null to boot.
    warehouse.execute("ALTER TABLE sync.sync_customerio_people ADD COLUMN country VARCHAR")
    spec = people_spec(fields={**PEOPLE_META["sync"]["fields"], "country": "country"})
    seen = len(cio_app.requests())
    result = run(warehouse, spec, cio_config, "r2")
    assert (result.status, result.planned_changes, result.api_calls) == ("no_change", 0, 0)
    assert writes(cio_app, seen) == []
    # The run rewrote the old-style hash of the same content, so later plans compare hashes only.
    u3_new = warehouse.execute("SELECT row_hash, run_id FROM reverse_etl.snapshots WHERE pk = 'u3'").fetchone()
    assert u3_new[0] != u3_old and u3_new[1] == "r1"
    assert run(warehouse, spec, cio_config, "r3").status == "no_change"


@pytest.mark.parametrize(
    "body",
    [
        "<html><body><h1>502 Bad Gateway</h1></body></html>",  # a proxy's page
        '{"errors": [{"batch_index": 1, "reas',  # cut short
        '{"errors": [{"reason": "invalid", "message": "no index"}]}',  # does not say which
    ],
)
def test_a_207_that_does_not_say_which_operations_failed_rejects_the_batch_instead_of_crashing(
    warehouse: duckdb.DuckDBPyConnection, cio_app: CustomerIOSandbox, cio_config: CustomerIOConfig, body: str
) -> None:
    load_people(warehouse, PEOPLE[:2])
    cio_app.inject(Fault(Response(207, body, {"Content-Type": "text/html"}), path="/api/v2/batch"))
    # It used to raise (JSONDecodeError, AttributeError): no ledger, nothing committed, the run failed.
    first = run(warehouse, people_spec(), cio_config, "r1")
    assert (first.status, first.accepted, first.rejected) == ("partial", 0, 2)
    errors = {pk: error for pk, (_, status, error) in row_results(warehouse, "r1").items() if status == "rejected"}
    assert set(errors) == {"u1", "u2"}
    assert all(e.startswith("HTTP 207 without a readable list of the failed operations: ") for e in errors.values())
    assert warehouse.execute("SELECT count(*) FROM reverse_etl.snapshots").fetchone()[0] == 0
    assert run(warehouse, people_spec(), cio_config, "r2").accepted == 2  # both go again


def test_a_blank_id_is_invalid_not_sent_nor_a_person_named_with_spaces(
    warehouse: duckdb.DuckDBPyConnection, cio_app: CustomerIOSandbox, cio_config: CustomerIOConfig
) -> None:
    # It was sent: "" was refused every run ("id cannot be blank"), and "  " created a person so named.
    load_people(warehouse, [("", "a@x.com", "pro", 1.0, "p1"), ("  ", "b@x.com", "pro", 1.0, "p2"), *PEOPLE[2:3]])
    result = run(warehouse, people_spec(), cio_config, "r1")
    assert (result.status, result.invalid, result.accepted) == ("success", 2, 1)
    assert {pk: r[1:] for pk, r in row_results(warehouse, "r1").items() if pk.strip() == ""} == {
        "": ("invalid", "blank primary key"),
        "  ": ("invalid", "blank primary key"),
    }
    assert [op["identifiers"] for op in batch_operations(cio_app)] == [{"id": "u3"}]
    assert cio_app.person("  ") is None
