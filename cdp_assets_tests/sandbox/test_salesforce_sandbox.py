"""The Salesforce stand-in on its own: seeding, SOQL, paging, auth, quota, faults and sObject Collections.

The collection calls go through simple-salesforce (as reverse ETL will), everything else through plain
HTTP so the wire shapes are checked directly.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import SalesforceMalformedRequest

from cdp_assets.sandbox.http import SandboxServer
from cdp_assets.sandbox.salesforce import (
    SANDBOX_CONSUMER_KEY,
    SANDBOX_CONSUMER_SECRET,
    SANDBOX_INSTANCE_URL,
    SANDBOX_SESSION_ID,
    SalesforceSandbox,
    SoqlError,
    id18,
    parse_soql,
    rate_limited,
    request_limit_exceeded,
    salesforce_id,
    sf_datetime,
)
from cdp_assets.sandbox.world import World
from cdp_assets.sources.salesforce import SalesforceConfig, build_session

SF_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}\+0000$")
API = "/services/data/v59.0"


@pytest.fixture
def app(world: World) -> SalesforceSandbox:
    return SalesforceSandbox(world)


@pytest.fixture
def http(server: SandboxServer) -> Iterator[Any]:
    """GET/POST on the stand-in with the fixed session id (a plain session: no proxies from the environment)."""
    session = requests.Session()
    session.trust_env = False
    session.headers["Authorization"] = f"Bearer {SANDBOX_SESSION_ID}"

    def call(method: str, path: str, **kwargs: Any) -> requests.Response:
        return session.request(method, server.url + path, timeout=10, **kwargs)

    yield call
    session.close()


@pytest.fixture
def sf(server: SandboxServer) -> Salesforce:
    """simple-salesforce on the project's sandbox session, as reverse ETL will use it."""
    session = build_session(SalesforceConfig.for_sandbox(server.url, auth="session"))
    return Salesforce(instance_url=SANDBOX_INSTANCE_URL, session_id=SANDBOX_SESSION_ID, session=session)


# --------------------------------------------------------------------------------------------- seeding


def test_the_seeded_org_is_deterministic_and_follows_the_world(world: World) -> None:
    app = SalesforceSandbox(world)
    again = SalesforceSandbox(world)
    for name in app.objects:
        assert app.records(name, include_deleted=True) == again.records(name, include_deleted=True), name

    leads = app.records("Lead", include_deleted=True)
    people = {p.person_id: p for p in world.people}
    assert sorted(r["Person_Id__c"] for r in leads) == sorted(
        p.person_id for p in world.people if p.lifecycle_stage != "visitor"
    )
    contacts = {r["Id"]: r for r in app.records("Contact", include_deleted=True)}
    accounts = {r["Id"] for r in app.records("Account")}
    opportunities = {r["Id"] for r in app.records("Opportunity")}
    for lead in leads:
        person = people[lead["Person_Id__c"]]
        assert lead["Email"] == person.email
        if person.customer_at is not None:
            assert lead["IsConverted"], "every customer's lead is converted"
        if lead["IsConverted"]:
            assert contacts[lead["ConvertedContactId"]]["Email"] == person.email
            assert lead["ConvertedAccountId"] in accounts and lead["ConvertedOpportunityId"] in opportunities
        if lead["IsDeleted"]:
            assert person.is_test
        # A rep's opt-out is on the lead, or on the contact once the lead was converted.
        records = [lead] + ([contacts[lead["ConvertedContactId"]]] if lead["IsConverted"] else [])
        rep_opt_out = any(c.system == "salesforce" and not c.subscribed for c in person.consent_changes)
        assert any(r["HasOptedOutOfEmail"] for r in records) == rep_opt_out
    assert any(r["HasOptedOutOfEmail"] for r in leads) and any(r["IsDeleted"] for r in leads)
    assert {r["Type"] for r in app.records("Account")} == {"Prospect", "Customer"}

    all_ids = [r["Id"] for name in app.objects for r in app.records(name, include_deleted=True)]
    assert len(all_ids) == len(set(all_ids)) and all(len(i) == 18 for i in all_ids)
    for record in leads[:20] + app.records("LeadHistory")[:20]:
        assert SF_DATETIME.match(record["CreatedDate"])
    assert max(r["SystemModstamp"] for r in leads) < sf_datetime(app.clock.now())


def test_ids_carry_the_case_checksum() -> None:
    assert id18("0015000000Gv7qJ") == "0015000000Gv7qJAAR"  # G and J upper case: bits 0 and 4 of chunk 3
    assert salesforce_id("00Q", 1) == "00Q5g0000000001EAA"
    assert salesforce_id("001", 61)[:15] == "0015g000000000z"


def test_describe_shows_custom_and_compound_fields(app: SalesforceSandbox, http: Any) -> None:
    listing = http("GET", f"{API}/sobjects").json()
    assert listing["maxBatchSize"] == 200
    assert {o["name"] for o in listing["sobjects"]} >= {"Lead", "Contact", "Account", "Opportunity", "LeadHistory"}
    for name in ("Lead", "Contact", "Account", "Opportunity"):
        fields = http("GET", f"{API}/sobjects/{name}/describe").json()["fields"]
        assert any(f["custom"] and f["name"].endswith("__c") for f in fields), name
        assert all({"name", "type", "updateable", "nillable", "length"} <= f.keys() for f in fields)
    lead = {f["name"]: f for f in http("GET", f"{API}/sobjects/Lead/describe").json()["fields"]}
    assert lead["Address"]["type"] == "address"
    assert lead["City"]["compoundFieldName"] == "Address"
    assert lead["Person_Id__c"]["externalId"] and not lead["SystemModstamp"]["updateable"]

    app.add_custom_field("Lead", "Fit_Score__c", "double")
    lead = {f["name"]: f for f in http("GET", f"{API}/sobjects/Lead/describe").json()["fields"]}
    assert lead["Fit_Score__c"]["type"] == "double" and lead["Fit_Score__c"]["custom"]

    missing = http("GET", f"{API}/sobjects/Nope/describe")
    assert missing.status_code == 404 and missing.json()[0]["errorCode"] == "NOT_FOUND"
    versions = http("GET", "/services/data").json()
    assert {"version": "59.0", "label": "v59.0", "url": "/services/data/v59.0"} in versions


# ------------------------------------------------------------------------------------------------ SOQL


def test_parse_soql_reads_the_supported_dialect() -> None:
    query = parse_soql(
        "select Id, Email FROM Lead WHERE SystemModstamp >= 2024-01-05T10:00:00.000+0000 AND IsDeleted = false "
        "AND Email IN ('a@x.com', 'b\\'s@x.com') AND Name LIKE 'Al%' AND CloseDate < 2024-02-01 "
        "AND Status != NULL ORDER BY SystemModstamp DESC LIMIT 10"
    )
    assert query.fields == ("Id", "Email") and query.sobject == "Lead"
    assert [(c.field, c.op) for c in query.where] == [
        ("SystemModstamp", ">="),
        ("IsDeleted", "="),
        ("Email", "IN"),
        ("Name", "LIKE"),
        ("CloseDate", "<"),
        ("Status", "!="),
    ]
    assert query.where[0].value.value == datetime(2024, 1, 5, 10, tzinfo=UTC)  # type: ignore[union-attr]
    assert [v.value for v in query.where[2].value] == ["a@x.com", "b's@x.com"]  # type: ignore[union-attr]
    assert (query.order_by, query.descending, query.limit) == ("SystemModstamp", True, 10)

    for bad in ("SELECT FROM Lead", "SELECT Id FROM Lead WHERE A = 1 OR B = 2", "SELECT Id Lead", "SELECT Id FROM"):
        with pytest.raises(SoqlError) as failure:
            parse_soql(bad)
        assert failure.value.code == "MALFORMED_QUERY"


def test_soql_filters_sort_and_limit_like_salesforce(app: SalesforceSandbox) -> None:
    leads = app.records("Lead", include_deleted=True)
    stamps = sorted(r["SystemModstamp"] for r in leads)
    middle = stamps[len(stamps) // 2]

    newer = app.run_soql(f"SELECT Id, SystemModstamp FROM Lead WHERE SystemModstamp > {middle}", include_deleted=True)
    assert len(newer) == sum(1 for s in stamps if s > middle)
    as_z = middle[:19] + "Z"  # the same moment without milliseconds, in the documented form
    assert len(app.run_soql(f"SELECT Id FROM Lead WHERE SystemModstamp >= {as_z}", include_deleted=True)) == sum(
        1 for s in stamps if s >= middle[:19]
    )
    ordered = app.run_soql("SELECT Id, SystemModstamp FROM Lead ORDER BY SystemModstamp DESC LIMIT 5")
    assert [r["SystemModstamp"] for r in ordered] == sorted((r["SystemModstamp"] for r in ordered), reverse=True)
    assert len(ordered) == 5 and set(ordered[0]) == {"attributes", "Id", "SystemModstamp"}

    deleted = sum(1 for r in leads if r["IsDeleted"])
    assert len(app.run_soql("SELECT Id FROM Lead")) == len(leads) - deleted  # query hides the recycle bin
    assert len(app.run_soql("SELECT Id FROM Lead WHERE IsDeleted = true", include_deleted=True)) == deleted

    someone = next(r for r in leads if r["LastName"].isalpha())
    shouted = someone["Email"].upper()
    assert [r["Id"] for r in app.run_soql(f"SELECT Id FROM Lead WHERE Email = '{shouted}'", True)] == [someone["Id"]]
    assert app.run_soql(f"SELECT Id FROM Lead WHERE Id IN ('{someone['Id']}', '00Q000000000000AAA')", True) == [
        {"attributes": someone["attributes"], "Id": someone["Id"]}
    ]
    won = app.run_soql("SELECT Id, CloseDate FROM Opportunity WHERE IsWon = true AND CloseDate >= 2024-01-01")
    assert won and all(r["CloseDate"] >= "2024-01-01" for r in won)
    prefix = someone["LastName"][:2]
    assert all(
        r["LastName"].lower().startswith(prefix.lower())
        for r in app.run_soql(f"SELECT LastName FROM Lead WHERE LastName LIKE '{prefix}%'")
    )


def test_bad_queries_are_400_with_salesforce_error_lists(http: Any) -> None:
    cases = {
        "SELECT Id, Nope FROM Lead": "INVALID_FIELD",
        "SELECT Id FROM Lead WHERE SystemModstamp > '2024-01-01T00:00:00Z'": "INVALID_FIELD",
        "SELECT Id FROM Lead WHERE Email = 5": "INVALID_FIELD",
        "SELECT Id FROM Nope": "INVALID_TYPE",
        "SELECT Id FROM Lead WHERE IsDeleted = true OR IsConverted = true": "MALFORMED_QUERY",
    }
    for soql, code in cases.items():
        answer = http("GET", f"{API}/query/", params={"q": soql})
        assert answer.status_code == 400, soql
        assert answer.json()[0]["errorCode"] == code and answer.json()[0]["message"], soql


def test_query_pages_follow_next_records_url_and_honour_batch_size(app: SalesforceSandbox, http: Any) -> None:
    total = len(app.records("Lead"))
    headers = {"Sforce-Query-Options": "batchSize=100"}  # below the minimum: 200
    page = http("GET", f"{API}/query/", params={"q": "SELECT Id FROM Lead ORDER BY Id"}, headers=headers)
    seen, pages = [], 0
    while True:
        assert page.status_code == 200
        assert re.fullmatch(r"api-usage=\d+/1000000", page.headers["Sforce-Limit-Info"])
        body = page.json()
        pages += 1
        seen += [r["Id"] for r in body["records"]]
        assert body["totalSize"] == total
        if body["done"]:
            assert "nextRecordsUrl" not in body
            break
        assert len(body["records"]) == 200
        page = http("GET", body["nextRecordsUrl"], headers=headers)
    assert seen == sorted(r["Id"] for r in app.records("Lead")) and pages == -(-total // 200)

    gone = http("GET", f"{API}/query/01g5g0000999999-200")
    assert gone.status_code == 400 and gone.json()[0]["errorCode"] == "INVALID_QUERY_LOCATOR"


# ------------------------------------------------------------------------------------ auth, quota, faults


def test_auth_quota_and_faults(app: SalesforceSandbox, server: SandboxServer, http: Any) -> None:
    plain = requests.Session()
    plain.trust_env = False
    anonymous = plain.get(f"{server.url}{API}/sobjects", timeout=10)
    assert anonymous.status_code == 401 and anonymous.json()[0]["errorCode"] == "INVALID_SESSION_ID"

    refused = plain.post(
        f"{server.url}/services/oauth2/token",
        data={"grant_type": "client_credentials"},
        auth=(SANDBOX_CONSUMER_KEY, "wrong"),
        timeout=10,
    )
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_client"
    token = plain.post(
        f"{server.url}/services/oauth2/token",
        data={"grant_type": "client_credentials"},
        auth=(SANDBOX_CONSUMER_KEY, SANDBOX_CONSUMER_SECRET),
        timeout=10,
    ).json()
    assert token["instance_url"] == SANDBOX_INSTANCE_URL
    bearer = {"Authorization": f"Bearer {token['access_token']}"}
    assert plain.get(f"{server.url}{API}/limits", headers=bearer, timeout=10).status_code == 200
    app.expire_sessions()
    assert plain.get(f"{server.url}{API}/limits", headers=bearer, timeout=10).status_code == 401

    app.inject(rate_limited(retry_after=2))
    limited = http("GET", f"{API}/limits")
    assert limited.status_code == 429 and limited.headers["Retry-After"] == "2"
    assert limited.headers["Sforce-Limit-Info"].startswith("api-usage=")
    app.inject(request_limit_exceeded())
    assert http("GET", f"{API}/limits").json() == [
        {"errorCode": "REQUEST_LIMIT_EXCEEDED", "message": "TotalRequests Limit exceeded."}
    ]

    app.api_limit = app.api_used + 1
    assert http("GET", f"{API}/limits").json()["DailyApiRequests"]["Remaining"] == 0
    over = http("GET", f"{API}/limits")
    assert over.status_code == 403 and over.json()[0]["errorCode"] == "REQUEST_LIMIT_EXCEEDED"
    assert over.headers["Sforce-Limit-Info"] == f"api-usage={app.api_limit}/{app.api_limit}"


# ----------------------------------------------------------------------------------- sObject Collections


def test_collections_create_and_update_with_per_record_results(app: SalesforceSandbox, sf: Salesforce) -> None:
    created = sf.restful(
        "composite/sobjects",
        method="POST",
        json={
            "allOrNone": False,
            "records": [
                {"attributes": {"type": "Lead"}, "LastName": "Fresh", "Company": "Fresh Co", "Email": "f@fresh.io"},
                {"attributes": {"type": "Lead"}, "LastName": "No Company"},
                {"attributes": {"type": "Lead"}, "LastName": "Typo", "Company": "T", "Email": "not-an-email"},
            ],
        },
    )
    assert created[0]["success"] and created[0]["id"].startswith("00Q")
    assert [r["errors"][0]["statusCode"] for r in created[1:]] == ["REQUIRED_FIELD_MISSING", "INVALID_EMAIL_ADDRESS"]
    assert app.record("Lead", created[0]["id"])["Company"] == "Fresh Co"

    open_leads = [r for r in app.records("Lead") if not r["IsConverted"] and r["Status"] != "Working - Contacted"]
    lead_a, lead_b = open_leads[:2]
    app.reject([lead_b["Email"]])  # e.g. a validation rule on that record
    batch = [
        {"attributes": {"type": "Lead"}, "Id": lead_a["Id"], "Status": "Working - Contacted"},
        {"attributes": {"type": "Lead"}, "Id": lead_b["Id"], "Status": "Working - Contacted"},
    ]
    app.clock.advance(timedelta(minutes=1))

    all_or_none = sf.restful("composite/sobjects", method="PATCH", json={"allOrNone": True, "records": batch})
    assert [r["success"] for r in all_or_none] == [False, False]
    assert all_or_none[0]["errors"][0]["statusCode"] == "ALL_OR_NONE_OPERATION_ROLLED_BACK"
    assert all_or_none[1]["errors"][0]["statusCode"] == "FIELD_CUSTOM_VALIDATION_EXCEPTION"
    assert app.record("Lead", lead_a["Id"]) == lead_a  # nothing applied

    partial = sf.restful("composite/sobjects", method="PATCH", json={"allOrNone": False, "records": batch})
    assert [r["success"] for r in partial] == [True, False]
    updated = app.record("Lead", lead_a["Id"])
    assert updated["Status"] == "Working - Contacted" and updated["SystemModstamp"] > lead_a["SystemModstamp"]
    history = app.run_soql(f"SELECT Field, OldValue, NewValue FROM LeadHistory WHERE LeadId = '{lead_a['Id']}'")
    assert (history[-1]["Field"], history[-1]["OldValue"], history[-1]["NewValue"]) == (
        "Status",
        lead_a["Status"],
        "Working - Contacted",
    )

    readonly = sf.restful(
        "composite/sobjects",
        method="PATCH",
        json={"records": [{"attributes": {"type": "Lead"}, "Id": lead_a["Id"], "SystemModstamp": "2030-01-01"}]},
    )
    assert readonly[0]["errors"][0]["statusCode"] == "INVALID_FIELD_FOR_INSERT_UPDATE"

    too_many = [{"attributes": {"type": "Lead"}, "Id": lead_a["Id"], "Title": "x"}] * 201
    with pytest.raises(SalesforceMalformedRequest) as failure:
        sf.restful("composite/sobjects", method="PATCH", json={"records": too_many})
    assert failure.value.content[0]["errorCode"] == "EXCEEDED_ID_LIMIT"


def test_upsert_by_external_id(app: SalesforceSandbox, sf: Salesforce) -> None:
    existing = app.records("Contact")[0]
    records = [
        {"attributes": {"type": "Contact"}, "Person_Id__c": existing["Person_Id__c"], "Plan__c": "enterprise"},
        {"attributes": {"type": "Contact"}, "Person_Id__c": "per_99999", "LastName": "New", "Email": "n@new.io"},
    ]
    app.reject(["per_99999"], code="UNABLE_TO_LOCK_ROW", message="unable to obtain exclusive access", times=1)

    first = sf.restful("composite/sobjects/Contact/Person_Id__c", method="PATCH", json={"records": records})
    assert first[0] == {"id": existing["Id"], "success": True, "errors": [], "created": False}
    assert first[1]["errors"][0]["statusCode"] == "UNABLE_TO_LOCK_ROW"  # transient: fails once
    second = sf.restful("composite/sobjects/Contact/Person_Id__c", method="PATCH", json={"records": records})
    assert second[1]["success"] and second[1]["created"]
    assert app.record("Contact", existing["Id"])["Plan__c"] == "enterprise"
    assert app.record("Contact", second[1]["id"])["Email"] == "n@new.io"

    with pytest.raises(SalesforceMalformedRequest) as failure:
        sf.restful("composite/sobjects/Contact/Email", method="PATCH", json={"records": records})
    assert failure.value.content[0]["errorCode"] == "INVALID_FIELD"


def test_helpers_stamp_changes_on_the_sandbox_clock(app: SalesforceSandbox) -> None:
    lead = app.records("Lead")[0]
    app.clock.set(datetime(2024, 3, 1, 12, tzinfo=UTC))
    app.update_record("Lead", lead["Id"], Email="changed@example.org")
    assert app.record("Lead", lead["Id"])["SystemModstamp"] == "2024-03-01T12:00:00.000+0000"
    history = app.run_soql(f"SELECT Field, NewValue, CreatedDate FROM LeadHistory WHERE LeadId = '{lead['Id']}' "
                           "AND CreatedDate >= 2024-03-01T00:00:00Z")  # fmt: skip
    assert [(h["Field"], h["NewValue"]) for h in history] == [("Email", "changed@example.org")]

    app.delete_record("Lead", lead["Id"])
    assert app.record("Lead", lead["Id"])["SystemModstamp"] == "2024-03-01T12:00:00.001+0000"
    assert not app.run_soql(f"SELECT Id FROM Lead WHERE Id = '{lead['Id']}'")
    assert app.run_soql(f"SELECT Id FROM Lead WHERE Id = '{lead['Id']}'", include_deleted=True)
    with pytest.raises(ValueError, match="__c"):
        app.add_custom_field("Lead", "NoSuffix")
