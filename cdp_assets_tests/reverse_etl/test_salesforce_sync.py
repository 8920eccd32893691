"""Syncs into Salesforce end to end: the runner, simple-salesforce, the REST stand-in's sObject Collections."""

from __future__ import annotations

from typing import Any

import duckdb

from cdp_assets.reverse_etl.destinations import OutgoingRow, open_destination
from cdp_assets.reverse_etl.destinations.salesforce import SalesforceDestination
from cdp_assets.reverse_etl.runner import RunOptions, SyncResult, run_sync
from cdp_assets.reverse_etl.spec import SyncSpec, spec_from_meta
from cdp_assets.sandbox.http import Fault, Response
from cdp_assets.sandbox.salesforce import SalesforceSandbox
from cdp_assets.sources.salesforce import SalesforceConfig
from cdp_assets_tests.reverse_etl.helpers import row_results, writes

LEADS_META: dict[str, Any] = {
    "sync": {
        "destination": "salesforce",
        "object": "Lead",
        "mode": "update_only",
        "primary_key": "id",
        "destination_key": "Id",
        "purpose": "operational",
        "profile_column": "profile_id",
        "fields": {
            "product_user_id": "Product_User_Id__c",
            "lifecycle_stage": "Lifecycle_Stage__c",
            "signed_up_at": "Signed_Up_At__c",
            "has_opted_out_of_email": "HasOptedOutOfEmail",
        },
        "send_nulls": False,
        "schedule": "daily",
    }
}


def leads_spec(**changes: Any) -> SyncSpec:
    return spec_from_meta(
        "sync_salesforce_leads", "sync.sync_salesforce_leads", {"sync": {**LEADS_META["sync"], **changes}}
    )


def open_leads(app: SalesforceSandbox, n: int) -> list[str]:
    leads = [r for r in app.records("Lead") if not r["IsConverted"] and not r["IsDeleted"]]
    assert len(leads) >= n
    return sorted(r["Id"] for r in leads)[:n]


def load_leads(conn: duckdb.DuckDBPyConnection, rows: list[tuple[Any, ...]]) -> None:
    """(id, profile_id, product_user_id, lifecycle_stage, signed_up_at, has_opted_out_of_email)."""
    conn.execute(
        "CREATE OR REPLACE TABLE sync.sync_salesforce_leads (id VARCHAR, profile_id VARCHAR, product_user_id VARCHAR,"
        " lifecycle_stage VARCHAR, signed_up_at TIMESTAMP, has_opted_out_of_email BOOLEAN)"
    )
    for row in rows:
        conn.execute("INSERT INTO sync.sync_salesforce_leads VALUES (?, ?, ?, ?, ?, ?)", list(row))


def run(
    conn: duckdb.DuckDBPyConnection, spec: SyncSpec, config: SalesforceConfig, run_id: str, batch_size: int = 200
) -> SyncResult:
    destination = (
        SalesforceDestination(config, batch_size) if batch_size != 200 else open_destination(spec, None, config)
    )
    try:
        return run_sync(conn, spec, destination, RunOptions(), run_id)
    finally:
        destination.close()


def collection_records(app: SalesforceSandbox, since: int = 0) -> list[dict[str, Any]]:
    return [r for m, p, body in writes(app, since) if p.endswith("/composite/sobjects") for r in body["records"]]


def test_lead_fields_update_with_a_per_record_error_then_the_retry(
    warehouse: duckdb.DuckDBPyConnection, sf_app: SalesforceSandbox, sf_config: SalesforceConfig
) -> None:
    a, b, c = open_leads(sf_app, 3)
    load_leads(
        warehouse,
        [
            (a, "p1", "usr_1", "signed_up", "2024-01-05 10:00:00", None),
            (b, "p2", "usr_2", "customer", None, True),
            (c, "p3", None, "lead", None, None),
        ],
    )
    sf_app.reject([b], code="FIELD_CUSTOM_VALIDATION_EXCEPTION", message="Stage cannot skip signed_up", times=1)
    first = run(warehouse, leads_spec(), sf_config, "r1")
    assert (first.status, first.sent, first.accepted, first.rejected) == ("partial", 3, 2, 1)
    # One collection call, allOrNone false, nulls left out (send_nulls: false), the timestamp in ISO 8601.
    calls = [(m, p, body) for m, p, body in writes(sf_app) if "composite" in p]
    assert [(m, p, body["allOrNone"]) for m, p, body in calls] == [
        ("PATCH", "/services/data/v59.0/composite/sobjects", False)
    ]
    assert collection_records(sf_app) == [
        {
            "attributes": {"type": "Lead"},
            "Id": a,
            "Product_User_Id__c": "usr_1",
            "Lifecycle_Stage__c": "signed_up",
            "Signed_Up_At__c": "2024-01-05T10:00:00Z",
        },
        {
            "attributes": {"type": "Lead"},
            "Id": b,
            "Product_User_Id__c": "usr_2",
            "Lifecycle_Stage__c": "customer",
            "HasOptedOutOfEmail": True,
        },
        {"attributes": {"type": "Lead"}, "Id": c, "Lifecycle_Stage__c": "lead"},
    ]
    assert row_results(warehouse, "r1")[b] == (
        "add",
        "rejected",
        "FIELD_CUSTOM_VALIDATION_EXCEPTION: Stage cannot skip signed_up",
    )
    lead_a = next(r for r in sf_app.records("Lead") if r["Id"] == a)
    assert (lead_a["Product_User_Id__c"], lead_a["Signed_Up_At__c"]) == ("usr_1", "2024-01-05T10:00:00.000+0000")

    seen = len(sf_app.requests())
    second = run(warehouse, leads_spec(), sf_config, "r2")
    assert (second.status, second.accepted) == ("success", 1)
    assert [r["Id"] for r in collection_records(sf_app, seen)] == [b]
    assert next(r for r in sf_app.records("Lead") if r["Id"] == b)["HasOptedOutOfEmail"] is True


def test_update_only_never_creates(
    warehouse: duckdb.DuckDBPyConnection, sf_app: SalesforceSandbox, sf_config: SalesforceConfig
) -> None:
    (a,) = open_leads(sf_app, 1)
    missing = a[:3] + "9" * (len(a) - 3)
    before = len(sf_app.records("Lead"))
    load_leads(warehouse, [(a, "p1", "usr_1", "lead", None, None), (missing, "p2", "usr_2", "lead", None, None)])
    result = run(warehouse, leads_spec(), sf_config, "r1")
    assert (result.accepted, result.rejected) == (1, 1)
    assert row_results(warehouse, "r1")[missing][1] == "rejected"
    assert "INVALID_CROSS_REFERENCE_KEY" in (row_results(warehouse, "r1")[missing][2] or "")
    assert len(sf_app.records("Lead")) == before


def test_quota_stop_keeps_what_was_committed(
    warehouse: duckdb.DuckDBPyConnection, sf_app: SalesforceSandbox, sf_config: SalesforceConfig
) -> None:
    leads = open_leads(sf_app, 3)
    load_leads(warehouse, [(lead, f"p{i}", f"usr_{i}", "lead", None, None) for i, lead in enumerate(leads)])
    # One record a call, so the quota runs out between calls: the org has two calls left.
    spec = leads_spec()
    sf_app.api_limit = sf_app.api_used + 2
    first = run(warehouse, spec, sf_config, "r1", batch_size=1)
    assert first.status == "quota_stopped"
    assert (first.accepted, first.sent) == (2, 2)
    assert "REQUEST_LIMIT_EXCEEDED" in first.message
    assert row_results(warehouse, "r1")[leads[2]][1] == "not_sent"
    committed = warehouse.execute("SELECT pk FROM reverse_etl.snapshots ORDER BY pk").fetchall()
    assert committed == [(leads[0],), (leads[1],)]

    sf_app.api_limit = sf_app.api_used + 100
    seen = len(sf_app.requests())
    second = run(warehouse, spec, sf_config, "r2")
    assert (second.status, second.accepted) == ("success", 1)
    assert [r["Id"] for r in collection_records(sf_app, seen)] == [leads[2]]


def test_upsert_by_external_id_creates_and_updates(
    warehouse: duckdb.DuckDBPyConnection, sf_app: SalesforceSandbox, sf_config: SalesforceConfig
) -> None:
    spec = spec_from_meta(
        "sync_salesforce_lead_people",
        "sync.people",
        {
            "sync": {
                "destination": "salesforce",
                "object": "Lead",
                "mode": "upsert",
                "primary_key": "person_id",
                "destination_key": "Person_Id__c",
                "purpose": "operational",
                "fields": {"last_name": "LastName", "company": "Company"},
                "schedule": "on_demand",
            }
        },
    )
    warehouse.execute("CREATE TABLE sync.people (person_id VARCHAR, last_name VARCHAR, company VARCHAR)")
    warehouse.execute("INSERT INTO sync.people VALUES ('per_new_1', 'Lovelace', 'Analytical Engines')")
    result = run(warehouse, spec, sf_config, "r1")
    assert (result.status, result.accepted) == ("success", 1)
    [(method, path, body)] = [w for w in writes(sf_app) if "composite" in w[1]]
    assert (method, path) == ("PATCH", "/services/data/v59.0/composite/sobjects/Lead/Person_Id__c")
    assert body["records"] == [
        {
            "attributes": {"type": "Lead"},
            "LastName": "Lovelace",
            "Company": "Analytical Engines",
            "Person_Id__c": "per_new_1",
        }
    ]
    created = [r for r in sf_app.records("Lead") if r["Person_Id__c"] == "per_new_1"]
    assert [(r["LastName"], r["Company"]) for r in created] == [("Lovelace", "Analytical Engines")]


def test_a_field_salesforce_does_not_have_rejects_the_row_with_its_error(
    warehouse: duckdb.DuckDBPyConnection, sf_app: SalesforceSandbox, sf_config: SalesforceConfig
) -> None:
    spec = spec_from_meta(
        "sync_salesforce_accounts",
        "sync.accounts",
        {
            "sync": {
                "destination": "salesforce",
                "object": "Account",
                "mode": "update_only",
                "primary_key": "id",
                "purpose": "operational",
                "fields": {"plan": "Plan__c", "unknown": "No_Such_Field__c"},
                "schedule": "daily",
            }
        },
    )
    account = sorted(r["Id"] for r in sf_app.records("Account"))[0]
    warehouse.execute("CREATE TABLE sync.accounts (id VARCHAR, plan VARCHAR, unknown VARCHAR)")
    warehouse.execute("INSERT INTO sync.accounts VALUES (?, 'pro', 'x')", [account])
    result = run(warehouse, spec, sf_config, "r1")
    assert (result.status, result.rejected) == ("partial", 1)
    assert "INVALID_FIELD" in (row_results(warehouse, "r1")[account][2] or "")


def test_a_record_that_lost_its_row_lock_is_sent_again(
    warehouse: duckdb.DuckDBPyConnection, sf_app: SalesforceSandbox, sf_config: SalesforceConfig
) -> None:
    a, b = open_leads(sf_app, 2)
    load_leads(warehouse, [(a, "p1", "usr_1", "lead", None, None), (b, "p2", "usr_2", "lead", None, None)])
    sf_app.reject([b], code="UNABLE_TO_LOCK_ROW", message="unable to obtain exclusive access to this record", times=1)
    result = run(warehouse, leads_spec(), sf_config, "r1")
    assert (result.status, result.accepted, result.rejected, result.api_calls, result.retries) == (
        "success",
        2,
        0,
        2,
        1,
    )
    assert [[r["Id"] for r in body["records"]] for _, p, body in writes(sf_app) if "composite" in p] == [[a, b], [b]]


def test_a_non_finite_number_never_reaches_salesforce(
    warehouse: duckdb.DuckDBPyConnection, sf_app: SalesforceSandbox, sf_config: SalesforceConfig
) -> None:
    sf_app.add_custom_field("Account", "Score__c", "double")
    spec = spec_from_meta(
        "sync_salesforce_accounts",
        "sync.accounts",
        {
            "sync": {
                "destination": "salesforce",
                "object": "Account",
                "mode": "update_only",
                "primary_key": "id",
                "purpose": "operational",
                "fields": {"score": "Score__c"},
                "schedule": "daily",
            }
        },
    )
    a, b, c = sorted(r["Id"] for r in sf_app.records("Account"))[:3]
    warehouse.execute("CREATE TABLE sync.accounts (id VARCHAR, score DOUBLE)")
    warehouse.execute("INSERT INTO sync.accounts VALUES (?, 'inf'), (?, 'nan'), (?, 2.5)", [a, b, c])
    result = run(warehouse, spec, sf_config, "r1")
    assert (result.status, result.invalid, result.sent, result.accepted) == ("success", 2, 1, 1)
    results = row_results(warehouse, "r1")
    assert results[a] == (
        "add",
        "invalid",
        "column score is inf, not a finite number: JSON cannot carry it, so the row is not sent",
    )
    assert results[b][1] == "invalid" and "column score is nan" in (results[b][2] or "")
    assert collection_records(sf_app) == [{"attributes": {"type": "Account"}, "Id": c, "Score__c": 2.5}]

    # The destination does not rely on the runner: such a record fails alone, before any request.
    destination = SalesforceDestination(sf_config)
    seen = len(sf_app.requests())
    try:
        report = destination.send(
            [
                OutgoingRow(
                    a,
                    "add",
                    [
                        {
                            "call": "update",
                            "record": {"attributes": {"type": "Account"}, "Id": a, "Score__c": float("inf")},
                        }
                    ],
                ),
                OutgoingRow(
                    c,
                    "add",
                    [{"call": "update", "record": {"attributes": {"type": "Account"}, "Id": c, "Score__c": 3.5}}],
                ),
            ]
        )
    finally:
        destination.close()
    assert (report.outcomes[a].accepted, report.outcomes[a].sent, report.outcomes[c].accepted) == (False, False, True)
    assert collection_records(sf_app, seen) == [{"attributes": {"type": "Account"}, "Id": c, "Score__c": 3.5}]


def test_a_newly_mapped_null_field_touches_no_record_and_with_send_nulls_a_null_clears_it(
    warehouse: duckdb.DuckDBPyConnection, sf_app: SalesforceSandbox, sf_config: SalesforceConfig
) -> None:
    a, b = open_leads(sf_app, 2)
    load_leads(warehouse, [(a, "p1", "usr_1", "lead", None, None), (b, "p2", "usr_2", "customer", None, None)])
    assert run(warehouse, leads_spec(), sf_config, "r1").accepted == 2
    stamps = {r["Id"]: r["SystemModstamp"] for r in sf_app.records("Lead") if r["Id"] in (a, b)}

    # Title is mapped but null everywhere: without send_nulls nothing would reach Salesforce, so nothing
    # is sent. (Re-sent, the same values would still move every record's SystemModstamp, and every
    # incremental extract downstream would read them all again.)
    warehouse.execute("ALTER TABLE sync.sync_salesforce_leads ADD COLUMN title VARCHAR")
    fields = {**LEADS_META["sync"]["fields"], "title": "Title"}
    seen = len(sf_app.requests())
    result = run(warehouse, leads_spec(fields=fields), sf_config, "r2")
    assert (result.status, result.planned_changes, result.api_calls) == ("no_change", 0, 0)
    assert collection_records(sf_app, seen) == []
    assert {r["Id"]: r["SystemModstamp"] for r in sf_app.records("Lead") if r["Id"] in (a, b)} == stamps

    # With send_nulls a value that turns null is sent as null, and Salesforce clears the field.
    warehouse.execute(f"UPDATE sync.sync_salesforce_leads SET title = 'CTO' WHERE id = '{a}'")
    nulls = leads_spec(fields=fields, send_nulls=True, max_change_share=1.0)
    run(warehouse, nulls, sf_config, "r3")
    assert sf_app.record("Lead", a)["Title"] == "CTO"
    warehouse.execute(f"UPDATE sync.sync_salesforce_leads SET title = NULL WHERE id = '{a}'")
    seen = len(sf_app.requests())
    result = run(warehouse, nulls, sf_config, "r4")
    assert (result.planned_changes, result.accepted) == (1, 1)
    [record] = collection_records(sf_app, seen)
    assert record["Id"] == a and record["Title"] is None
    assert sf_app.record("Lead", a)["Title"] is None


def test_an_answer_that_is_not_json_rejects_its_records_instead_of_crashing(
    warehouse: duckdb.DuckDBPyConnection, sf_app: SalesforceSandbox, sf_config: SalesforceConfig
) -> None:
    leads = open_leads(sf_app, 3)
    load_leads(warehouse, [(lead, f"p{i}", f"usr_{i}", "lead", None, None) for i, lead in enumerate(leads)])
    # The first call's 200 (two records) is cut short; the second's (one record) lists something else.
    sf_app.inject(Fault(Response(200, '[{"id": "00Q', {"Content-Type": "application/json"}), path="composite"))
    sf_app.inject(Fault(Response(200, '["?"]', {"Content-Type": "application/json"}), path="composite"))
    first = run(warehouse, leads_spec(), sf_config, "r1", batch_size=2)
    assert (first.status, first.accepted, first.rejected) == ("partial", 0, 3)
    results = row_results(warehouse, "r1")
    for lead in leads[:2]:
        assert results[lead][1] == "rejected"
        assert (results[lead][2] or "").startswith("Salesforce's answer is not JSON: JSONDecodeError")
    assert results[leads[2]] == ("add", "rejected", "UNREADABLE_RESULT: ?")
    second = run(warehouse, leads_spec(), sf_config, "r2")
    assert (second.status, second.accepted) == ("success", 3)
