"""The Salesforce dlt source end to end: real simple-salesforce over HTTP to the stand-in, real dlt into DuckDB."""

from __future__ import annotations

import math
from datetime import timedelta
from pathlib import Path
from typing import Any

import dlt
import pytest
from dlt.pipeline.exceptions import PipelineStepFailed

from cdp_assets.sandbox.http import Fault, Response, SandboxServer
from cdp_assets.sandbox.salesforce import (
    SANDBOX_CONSUMER_SECRET,
    SANDBOX_SESSION_ID,
    SalesforceSandbox,
    rate_limited,
    server_error,
    slow,
)
from cdp_assets.sandbox.world import World, build_world
from cdp_assets.sources.http_adapters import SandboxRewriteAdapter, TimeoutAdapter
from cdp_assets.sources.policy import CallStats, QuotaExhausted, RetriesExhausted
from cdp_assets.sources.salesforce import (
    SALESFORCE_OBJECTS,
    SalesforceClient,
    SalesforceConfig,
    SalesforceConfigError,
    SalesforcePayloadError,
    build_session,
    salesforce_source,
)
from cdp_assets_tests.sources.helpers import cause_chain, duckdb_pipeline, find_cause, query

DATASET = "raw_salesforce"
TABLES = {spec.table: spec.sobject for spec in SALESFORCE_OBJECTS}


@pytest.fixture(scope="module")
def world() -> World:
    # Built once for the module: the tests change the stand-in, never the world.
    return build_world(7, people=300, companies=40)


@pytest.fixture
def app(world: World) -> SalesforceSandbox:
    return SalesforceSandbox(world)


@pytest.fixture
def config(server: SandboxServer) -> SalesforceConfig:
    return SalesforceConfig.for_sandbox(server.url, backoff_seconds=0.05, rate_per_second=100)


@pytest.fixture
def pipeline(tmp_path: Path) -> dlt.Pipeline:
    return duckdb_pipeline(tmp_path, DATASET)


def run(pipeline: dlt.Pipeline, config: SalesforceConfig, *tables: str, stats: CallStats | None = None) -> Any:
    """One run with a fresh source object (dagster-notes P1), optionally of some tables only."""
    source = salesforce_source(config, stats)
    if tables:
        source = source.with_resources(*tables)
    return pipeline.run(source)


def count(pipeline: dlt.Pipeline, table: str) -> int:
    return query(pipeline, f'select count(*) from raw_salesforce."{table}"')[0][0]


def columns(pipeline: dlt.Pipeline, table: str) -> dict[str, str]:
    rows = query(
        pipeline,
        "select column_name, data_type from information_schema.columns "
        f"where table_schema = 'raw_salesforce' and table_name = '{table}'",
    )
    return dict(rows)


def last_load_ids(pipeline: dlt.Pipeline, table: str) -> list[str]:
    """Ids of the rows the newest load wrote into `table`."""
    return [
        r[0]
        for r in query(
            pipeline,
            f'select id from raw_salesforce."{table}" '
            "where _dlt_load_id = (select max(load_id) from raw_salesforce._dlt_loads) order by id",
        )
    ]


def cursor(pipeline: dlt.Pipeline, table: str) -> str:
    spec = next(s for s in SALESFORCE_OBJECTS if s.table == table)
    return pipeline.state["sources"]["salesforce"]["resources"][table]["incremental"][spec.cursor]["last_value"]


# ------------------------------------------------------------------------------------- full runs


def test_first_run_fills_every_table_and_the_second_loads_exactly_the_changes(
    app: SalesforceSandbox, config: SalesforceConfig, pipeline: dlt.Pipeline, tmp_path: Path
) -> None:
    run(pipeline, config)

    for table, sobject in TABLES.items():
        assert count(pipeline, table) == len(app.records(sobject, include_deleted=True)), table
    # Signed in through the real client's OAuth call, which the adapter sent to the stand-in.
    (login,) = app.requests("POST", r"^/services/oauth2/token$")
    assert login.headers["X-Forwarded-Host"] == "cdp-sandbox.my.salesforce.com"
    assert "client_credentials" in login.body.decode()
    lead_columns = columns(pipeline, "lead")
    assert lead_columns["system_modstamp"] == "TIMESTAMP WITH TIME ZONE"
    assert lead_columns["has_opted_out_of_email"] == "BOOLEAN"
    assert {"person_id__c", "lifecycle_stage__c", "country", "city"} <= lead_columns.keys()
    assert "address" not in lead_columns  # the compound field is skipped, its components are columns
    assert "billing_address" not in columns(pipeline, "account")
    assert columns(pipeline, "opportunity")["amount"] == "DECIMAL(18,2)"
    assert columns(pipeline, "lead_history")["new_value"] == "VARCHAR"  # anyType as one text column
    # The secret is in no pipeline file (state, schema, trace) and not in the warehouse.
    for path in [tmp_path / "warehouse.duckdb", *(tmp_path / "pipelines").rglob("*")]:
        assert not path.is_file() or SANDBOX_CONSUMER_SECRET.encode() not in path.read_bytes(), path

    leads = [r["Id"] for r in app.records("Lead") if not r["IsConverted"]][:2]
    opportunity = next(r["Id"] for r in app.records("Opportunity") if not r["IsClosed"])
    app.clock.advance(timedelta(hours=1))
    app.update_record("Lead", leads[0], Status="Closed - Not Converted")
    app.update_record("Lead", leads[1], Title="Chief Data Officer")
    app.update_record("Opportunity", opportunity, StageName="Negotiation/Review")
    new_contact = app.add_record("Contact", LastName="Newcomer", Email="new.comer@example.org")
    before = {table: count(pipeline, table) for table in TABLES}

    run(pipeline, config)

    assert last_load_ids(pipeline, "lead") == sorted(leads)
    assert last_load_ids(pipeline, "opportunity") == [opportunity]
    assert last_load_ids(pipeline, "contact") == [new_contact]
    for table in ("account", "user", "campaign", "campaign_member"):
        assert last_load_ids(pipeline, table) == [], table
    assert count(pipeline, "lead") == before["lead"]  # merged, not appended
    assert count(pipeline, "contact") == before["contact"] + 1
    status = query(pipeline, f"select status, title from raw_salesforce.lead where id = '{leads[0]}'")
    assert status[0][0] == "Closed - Not Converted"
    # History is appended: one Status row and one Title row for the leads, one StageName row.
    history = query(
        pipeline,
        "select lead_id, field, new_value from raw_salesforce.lead_history "
        "where _dlt_load_id = (select max(load_id) from raw_salesforce._dlt_loads) order by field",
    )
    assert history == [(leads[0], "Status", "Closed - Not Converted"), (leads[1], "Title", "Chief Data Officer")]
    assert count(pipeline, "lead_history") == before["lead_history"] + 2
    assert count(pipeline, "opportunity_field_history") > before["opportunity_field_history"]


def test_a_new_custom_field_becomes_a_column_on_the_next_run(
    app: SalesforceSandbox, config: SalesforceConfig, pipeline: dlt.Pipeline
) -> None:
    run(pipeline, config, "lead")
    assert "fit_score__c" not in columns(pipeline, "lead")
    scored = [r["Id"] for r in app.records("Lead")][:3]

    app.add_custom_field("Lead", "Fit_Score__c", "double", values={scored[0]: 87.5, scored[1]: 12})
    run(pipeline, config, "lead")

    assert columns(pipeline, "lead")["fit_score__c"] == "DOUBLE"
    values = dict(query(pipeline, "select id, fit_score__c from raw_salesforce.lead where fit_score__c is not null"))
    assert values == {scored[0]: 87.5, scored[1]: 12.0}
    assert count(pipeline, "lead") == len(app.records("Lead", include_deleted=True))


def test_deleted_records_are_kept_and_flagged(
    app: SalesforceSandbox, config: SalesforceConfig, pipeline: dlt.Pipeline
) -> None:
    run(pipeline, config, "lead")
    seeded_deleted = {r["Id"] for r in app.records("Lead", include_deleted=True) if r["IsDeleted"]}
    assert seeded_deleted, "the world should have some deleted test leads"
    flagged = {r[0] for r in query(pipeline, "select id from raw_salesforce.lead where is_deleted")}
    assert flagged == seeded_deleted
    rows = count(pipeline, "lead")

    victim = next(r["Id"] for r in app.records("Lead"))
    app.delete_record("Lead", victim)
    run(pipeline, config, "lead")

    assert count(pipeline, "lead") == rows
    assert query(pipeline, f"select is_deleted from raw_salesforce.lead where id = '{victim}'") == [(True,)]
    assert last_load_ids(pipeline, "lead") == [victim]


def test_pages_follow_next_records_url_with_one_call_per_2000_records(
    app: SalesforceSandbox, config: SalesforceConfig, pipeline: dlt.Pipeline
) -> None:
    for n in range(2000):
        app.add_record("Lead", LastName=f"Bulk {n}", Company="Bulk Co", Email=f"bulk{n}@bulk.example")
    total = len(app.records("Lead", include_deleted=True))
    assert total > 2000

    run(pipeline, config, "lead")

    calls = app.query_requests("Lead")
    assert len(calls) == math.ceil(total / 2000) == 2
    first, second = calls
    assert first.path == "/services/data/v59.0/queryAll/" and "FROM Lead" in (first.arg("q") or "")
    # identifier_is_url=True: the nextRecordsUrl path as given, not glued onto the query URL.
    assert second.path.startswith("/services/data/v59.0/queryAll/01g") and second.path.endswith("-2000")
    assert count(pipeline, "lead") == total


def test_429_5xx_and_timeouts_are_retried_and_the_run_succeeds(
    app: SalesforceSandbox, server: SandboxServer, pipeline: dlt.Pipeline
) -> None:
    config = SalesforceConfig.for_sandbox(server.url, backoff_seconds=0.05, timeout_seconds=0.5)
    app.inject(slow(delay=1.0, path=r"/sobjects/Lead/describe"))
    app.inject(server_error(503, path=r"/sobjects/Lead/describe"))
    app.inject(rate_limited(retry_after=1, path=r"/queryAll"))
    stats = CallStats()

    run(pipeline, config, "lead", stats=stats)

    assert count(pipeline, "lead") == len(app.records("Lead", include_deleted=True))
    assert stats.retries == 3
    assert set(stats.errors) == {"ReadTimeout", "SalesforceGeneralError"}
    assert len(app.requests("GET", r"/sobjects/Lead/describe$")) == 3
    limited, retried = app.requests("GET", r"/queryAll")
    assert retried.at - limited.at >= 1.0  # Retry-After honoured
    assert stats.waited_seconds >= 1.0


def test_quota_exhausted_stops_the_run_keeps_the_cursor_and_a_rerun_loads_no_duplicates(
    app: SalesforceSandbox, config: SalesforceConfig, pipeline: dlt.Pipeline
) -> None:
    tables = ("lead", "lead_history", "opportunity", "opportunity_field_history")
    run(pipeline, config, *tables)
    cursors = {t: cursor(pipeline, t) for t in tables}
    counts = {t: count(pipeline, t) for t in tables}
    loads = count(pipeline, "_dlt_loads")

    changed = [r["Id"] for r in app.records("Lead")][:5]
    app.clock.advance(timedelta(minutes=5))
    for lead_id in changed:
        app.update_record("Lead", lead_id, Rating="Hot", Status="Working - Contacted")
    # Quota for four more calls: the run reads the changed leads, then dies midway.
    app.api_limit = app.api_used + 4
    logged = len(app.log)
    with pytest.raises(PipelineStepFailed) as failure:
        run(pipeline, config, *tables)

    quota = next(e for e in cause_chain(failure.value) if isinstance(e, QuotaExhausted))
    assert "403 REQUEST_LIMIT_EXCEEDED" in str(quota) and "daily API request limit" in str(quota)
    served = [r for r in app.log[logged:] if r.path.startswith("/services/data/")][:4]
    assert any("FROM Lead " in (r.arg("q") or "") for r in served)  # the changes were read, not committed
    assert {t: cursor(pipeline, t) for t in tables} == cursors
    assert {t: count(pipeline, t) for t in tables} == counts
    assert count(pipeline, "_dlt_loads") == loads

    app.api_limit = 1_000_000
    run(pipeline, config, *tables)

    assert count(pipeline, "lead") == counts["lead"]
    assert last_load_ids(pipeline, "lead") == sorted(changed)
    for table in ("lead", "lead_history", "opportunity_field_history"):
        (total, distinct) = query(pipeline, f"select count(*), count(distinct id) from raw_salesforce.{table}")[0]
        assert total == distinct, table
    new_history = [r for r in app.records("LeadHistory") if r["CreatedDate"] > cursors["lead_history"]]
    assert new_history and count(pipeline, "lead_history") == counts["lead_history"] + len(new_history)
    assert cursor(pipeline, "lead") > cursors["lead"]


# ---------------------------------------------------------------------------------- auth and config


@pytest.mark.parametrize("auth", ["client_credentials", "password", "session"])
def test_every_sign_in_reaches_only_the_stand_in(app: SalesforceSandbox, server: SandboxServer, auth: str) -> None:
    client = SalesforceClient(SalesforceConfig.for_sandbox(server.url, auth=auth))  # type: ignore[arg-type]

    fields = client.describe("Lead")

    assert any(f["name"] == "Person_Id__c" for f in fields)
    login_paths = {"client_credentials": r"/services/oauth2/token", "password": r"/services/Soap/u/59.0"}
    if auth in login_paths:
        (login,) = app.requests("POST", login_paths[auth])
        assert login.headers["X-Forwarded-Host"] == "cdp-sandbox.my.salesforce.com"
    assert client.api_usage() == (app.api_used, app.api_limit)


def test_secrets_stay_out_of_repr_and_error_messages(server: SandboxServer) -> None:
    config = SalesforceConfig.for_sandbox(server.url)
    assert SANDBOX_CONSUMER_SECRET not in repr(config)
    assert SANDBOX_SESSION_ID not in repr(SalesforceConfig.for_sandbox(server.url, auth="session"))

    wrong = SalesforceConfig.for_sandbox(server.url, consumer_secret="s3cr3t-value")
    with pytest.raises(Exception) as failure:
        SalesforceClient(wrong).describe("Lead")
    assert "invalid client credentials" in str(failure.value)
    assert all("s3cr3t-value" not in str(e) for e in cause_chain(failure.value))


def test_from_env_reads_each_sign_in_and_names_what_is_missing() -> None:
    client_credentials = SalesforceConfig.from_env(
        {"SALESFORCE_DOMAIN": "acme.my", "SALESFORCE_CONSUMER_KEY": "ck", "SALESFORCE_CONSUMER_SECRET": "cs"}
    )
    assert client_credentials.auth_mode == "client_credentials" and not client_credentials.is_sandbox
    password = SalesforceConfig.from_env(
        {"SALESFORCE_USERNAME": "u", "SALESFORCE_PASSWORD": "p", "SALESFORCE_SECURITY_TOKEN": "t"}
    )
    assert password.auth_mode == "password"
    session = SalesforceConfig.from_env(
        {"SALESFORCE_INSTANCE_URL": "https://acme.my.salesforce.com", "SALESFORCE_SESSION_ID": "00D!x"}
    )
    assert session.auth_mode == "session"

    with pytest.raises(SalesforceConfigError) as failure:
        SalesforceConfig.from_env({"SALESFORCE_DOMAIN": "acme.my", "SALESFORCE_CONSUMER_KEY": "ck"})
    message = str(failure.value)
    assert "missing: SALESFORCE_CONSUMER_SECRET" in message
    assert "SALESFORCE_USERNAME, SALESFORCE_PASSWORD, SALESFORCE_SECURITY_TOKEN" in message
    assert "ck" not in message.replace("SALESFORCE_CONSUMER_KEY", "")
    with pytest.raises(SalesforceConfigError, match="My Domain"):
        SalesforceConfig.from_env({"SALESFORCE_DOMAIN": "login", "SALESFORCE_CONSUMER_KEY": "ck",
                                   "SALESFORCE_CONSUMER_SECRET": "cs"})  # fmt: skip


def test_the_production_session_keeps_real_urls_and_the_environment() -> None:
    prod = build_session(SalesforceConfig(domain="acme.my", consumer_key="ck", consumer_secret="cs"))
    assert prod.trust_env is True
    assert type(prod.get_adapter("https://acme.my.salesforce.com")) is TimeoutAdapter

    sandbox = build_session(SalesforceConfig.for_sandbox("http://127.0.0.1:9"))
    assert sandbox.trust_env is False
    for url in ("https://login.salesforce.com", "http://example.com"):
        adapter = sandbox.get_adapter(url)
        assert isinstance(adapter, SandboxRewriteAdapter) and adapter.netloc == "127.0.0.1:9"


@pytest.mark.parametrize(
    "answer",
    [
        Response(200, "<html><body>Down for maintenance, error</body></html>", {"Content-Type": "text/html"}),
        Response(200, b'{"totalSize": 5, "done": true, "records": [{"Id": "00Q', {"Content-Type": "application/json"}),
    ],
    ids=["an HTML page", "JSON cut short"],
)
def test_a_query_answer_that_is_not_json_is_retried_and_then_named_clearly(
    app: SalesforceSandbox, config: SalesforceConfig, pipeline: dlt.Pipeline, answer: Response
) -> None:
    app.inject(Fault(answer, path=r"/queryAll/?$"))
    stats = CallStats()
    run(pipeline, config, "lead", stats=stats)
    assert stats.errors == {"BadResponse": 1} and stats.retries == 1
    assert count(pipeline, "lead") == len(app.records("Lead", include_deleted=True))

    app.inject(Fault(answer, path=r"/queryAll/?$", times=10))
    with pytest.raises(PipelineStepFailed) as failed:
        run(pipeline, SalesforceConfig.for_sandbox(app_url(config), max_attempts=2, backoff_seconds=0.01), "lead")
    # It used to be json's bare "Expecting value: line 1 column 1 (char 0)", not retried.
    error = str(find_cause(failed.value, RetriesExhausted))
    assert "Salesforce answered GET /services/data/v59.0/queryAll/ with HTTP 200 and a body that is not JSON" in error


@pytest.mark.parametrize(
    ("page", "says"),
    [
        ({"totalSize": 0, "done": True, "records": None}, "has no list of records"),
        ({"totalSize": 900, "done": False, "records": []}, "is not the last (done: False) but names no nextRecordsUrl"),
        (
            {
                "totalSize": 900,
                "done": False,
                "records": [],
                "nextRecordsUrl": "/services/data/v59.0/queryAll/01gX-200",
            },
            "names /services/data/v59.0/queryAll/01gX-200 as the next page a second time",
        ),
    ],
    ids=["records null", "not done without a next page", "a next page naming itself"],
)
def test_a_query_page_of_the_wrong_shape_fails_with_what_is_wrong(
    app: SalesforceSandbox, config: SalesforceConfig, pipeline: dlt.Pipeline, page: dict[str, Any], says: str
) -> None:
    app.inject(Fault(Response.json(page), path=r"/queryAll/?$"))
    app.inject(Fault(Response.json(page), path=r"/queryAll/01gX-200$", times=100))  # a loop, if followed
    with pytest.raises(PipelineStepFailed) as failed:
        run(pipeline, config, "lead")
    error = find_cause(failed.value, SalesforcePayloadError)
    # It used to be a TypeError, KeyError 'nextRecordsUrl', or the same page read until the fault ran out.
    assert f"a page of the Lead query {says}" in str(error)
    assert len(app.requests("GET", r"/queryAll/01gX-200$")) <= 1
    assert pipeline.state.get("sources", {}).get("salesforce") is None  # nothing committed, no cursor


def app_url(config: SalesforceConfig) -> str:
    return f"http://{config.sandbox_netloc}"
