"""The Customer.io source and Track client against the stand-in: real dlt into DuckDB, the real `customerio`
library over HTTP on 127.0.0.1."""

from __future__ import annotations

import base64
import math
from pathlib import Path
from typing import Any

import customerio
import dlt
import pytest
from dlt.pipeline.exceptions import PipelineStepFailed

from cdp_assets.sandbox.customerio import (
    SANDBOX_SITE_ID,
    SANDBOX_TRACK_API_KEY,
    CustomerIOSandbox,
    rate_limit_fault,
    server_error_fault,
)
from cdp_assets.sandbox.http import Fault, Response, SandboxServer
from cdp_assets.sandbox.world import World
from cdp_assets.sources.customerio import (
    CustomerIOAuthError,
    CustomerIOConfig,
    CustomerIOConfigError,
    CustomerIOPayloadError,
    SandboxTrackClient,
    customerio_source,
    track_client,
)
from cdp_assets.sources.policy import CallStats, RetriesExhausted
from cdp_assets_tests.sources.helpers import duckdb_pipeline, find_cause, query

DATASET = "raw_customerio"


@pytest.fixture
def app(world: World) -> CustomerIOSandbox:
    return CustomerIOSandbox(world)


@pytest.fixture
def config(server: SandboxServer) -> CustomerIOConfig:
    return CustomerIOConfig.for_sandbox(server.url)


@pytest.fixture
def pipeline(tmp_path: Path) -> dlt.Pipeline:
    return duckdb_pipeline(tmp_path, DATASET)


def run(pipeline: dlt.Pipeline, config: CustomerIOConfig, *resources: str, stats: CallStats | None = None) -> str:
    """One run with a fresh source (dagster-notes P1); returns its load id."""
    source = customerio_source(config, stats)
    if resources:
        source = source.with_resources(*resources)
    info = pipeline.run(source)
    info.raise_on_failed_jobs()
    return info.loads_ids[-1]


def column(pipeline: dlt.Pipeline, sql: str) -> list[Any]:
    return [row[0] for row in query(pipeline, sql)]


def resource_state(pipeline: dlt.Pipeline, resource: str) -> dict[str, Any]:
    return dict(pipeline.state["sources"]["customerio"]["resources"].get(resource, {}))


def unsubscribe_activities(app: CustomerIOSandbox) -> list[dict[str, Any]]:
    return [a for a in app.activities if a["type"] == "attribute_change" and a["name"] == "unsubscribed"]


# ------------------------------------------------------------------------------------------------ runs


def test_first_run_fills_the_tables_and_the_second_loads_exactly_the_changes(
    app: CustomerIOSandbox, config: CustomerIOConfig, pipeline: dlt.Pipeline
) -> None:
    stats = CallStats()
    run(pipeline, config, stats=stats)

    people = sorted(app.people)
    assert column(pipeline, f"select id from {DATASET}.customers order by id") == people
    assert sorted(column(pipeline, f"select id from {DATASET}.customers where unsubscribed")) == sorted(
        p.id for p in app.people.values() if p.unsubscribed
    )
    # Everyone found with one search call, attributes fetched 100 ids at a time.
    assert len(app.requests("POST", "^/v1/customers$")) == 1
    attribute_calls = app.requests("POST", "^/v1/customers/attributes$")
    assert len(attribute_calls) == math.ceil(len(people) / 100)
    assert all(len(r.json()["ids"]) <= 100 for r in attribute_calls)
    assert column(pipeline, f"select count(*) from {DATASET}.campaigns") == [len(app.campaigns)]
    assert column(pipeline, f"select count(*) from {DATASET}.segments") == [len(app.segments)]
    members = query(pipeline, f"select segment_id, count(*) from {DATASET}.segment_members group by 1 order by 1")
    assert members == [(s, len(app.segment_members(s))) for s in sorted(app.segments)]
    assert sorted(column(pipeline, f"select id from {DATASET}.messages")) == sorted(m["id"] for m in app.messages)
    esp = sum(len(rows) for rows in app.esp_suppressions.values())
    assert column(pipeline, f"select count(*) from {DATASET}.suppressions") == [esp]
    assert column(pipeline, f"select count(*) from {DATASET}.optouts") == [len(app.sms_optouts)]
    assert sorted(column(pipeline, f"select id from {DATASET}.unsubscribes")) == sorted(
        a["id"] for a in unsubscribe_activities(app)
    )
    assert stats.calls == len(app.log) and stats.retries == 0

    # -- second run, after reverse-ETL-like changes through the real Track client ----------------
    cursor = resource_state(pipeline, "customers")["activity_cursor"]
    messages_cursor = max(m["created"] for m in app.messages)
    app.advance(3600)
    existing = list(app.people.values())
    updated, suppressed, deleted, renamed = existing[5], existing[6], existing[7], existing[8]
    track = track_client(config)
    track.identify("usr_new", email="new.person@example.org", plan="free", lifecycle_stage="signed_up")
    track.identify(updated.id, plan="enterprise", unsubscribed=True)
    track.suppress(suppressed.id)
    track.batch(
        [
            {"type": "person", "action": "delete", "identifiers": {"id": deleted.id}},
            {"type": "person", "action": "identify", "identifiers": {"id": renamed.id}, "attributes": {"title": "CTO"}},
        ]
    )
    message = app.add_message(updated.id, 1, delivered=app.now() + 5)
    app.add_esp_suppression("bounces", "gone@example.org")
    app.log.clear()

    load_id = run(pipeline, config)

    # The activities named exactly who to re-read (plus whoever changed in the first run's last second).
    kinds = {("profile_create", False), ("attribute_change", False), ("profile_delete", True)}
    touched = {
        a["customer_id"] for a in app.activities if a["timestamp"] >= cursor and (a["type"], a["_deleted"]) in kinds
    }
    assert {"usr_new", updated.id, suppressed.id, deleted.id, renamed.id} <= touched
    [attributes_call] = app.requests("POST", "^/v1/customers/attributes$")
    assert sorted(attributes_call.json()["ids"]) == sorted(touched)
    assert not app.requests("POST", "^/v1/customers$")  # no full listing on an incremental run
    [messages_call] = app.requests("GET", "^/v1/messages$")
    assert messages_call.query["start_ts"] == [str(messages_cursor)]

    loaded = f"_dlt_load_id = '{load_id}'"
    assert sorted(column(pipeline, f"select id from {DATASET}.customers where {loaded}")) == sorted(
        touched - {suppressed.id, deleted.id}
    )
    # The suppressed and deleted people are gone from the table; the rest is exactly Customer.io's people.
    assert column(pipeline, f"select id from {DATASET}.customers order by id") == sorted(app.people)
    row = query(
        pipeline,
        f"select unsubscribed, attributes__plan, unsubscribed_at from {DATASET}.customers where id = '{updated.id}'",
    )
    assert row == [(True, "enterprise", app.now())]
    assert column(pipeline, f"select attributes__title from {DATASET}.customers where id = '{renamed.id}'") == ["CTO"]
    assert column(pipeline, f"select attributes__email from {DATASET}.customers where id = 'usr_new'") == [
        "new.person@example.org"
    ]
    assert column(pipeline, f"select id from {DATASET}.messages where {loaded}") == [message["id"]]
    assert column(pipeline, f"select customer_id, unsubscribed from {DATASET}.unsubscribes where {loaded}") == [
        updated.id
    ]
    assert "gone@example.org" in column(pipeline, f"select email from {DATASET}.suppressions where type = 'bounces'")
    for table in ("messages", "unsubscribes"):
        ids = column(pipeline, f"select id from {DATASET}.{table}")
        assert len(ids) == len(set(ids)), table


# ---------------------------------------------------------------------------------------------- faults


@pytest.mark.parametrize("people", [120])
def test_app_api_429_and_5xx_are_retried(
    app: CustomerIOSandbox, config: CustomerIOConfig, pipeline: dlt.Pipeline
) -> None:
    app.inject(rate_limit_fault(times=1, retry_after=1, path="^/v1/campaigns$"))
    app.inject(server_error_fault(times=1, status=500, path="^/v1/messages$"))
    stats = CallStats()
    run(pipeline, config, "campaigns", "messages", stats=stats)

    first, second = app.requests("GET", "^/v1/campaigns$")
    assert second.at - first.at >= 1.0  # Retry-After honoured
    assert stats.retries == 2 and stats.errors == {"HTTPError": 2}
    assert column(pipeline, f"select count(*) from {DATASET}.messages") == [len(app.messages)]


@pytest.mark.parametrize("people", [120])
def test_wrong_app_key_stops_with_a_clear_message(
    server: SandboxServer, app: CustomerIOSandbox, pipeline: dlt.Pipeline
) -> None:
    config = CustomerIOConfig.for_sandbox(server.url, app_api_key="not-the-key")
    with pytest.raises(PipelineStepFailed) as failure:
        pipeline.extract(customerio_source(config).with_resources("campaigns"))
    cause = find_cause(failure.value, CustomerIOAuthError)
    assert "CUSTOMERIO_APP_API_KEY" in str(cause) and "not-the-key" not in str(cause)
    assert len(app.log) == 1  # not retried


@pytest.mark.parametrize("people", [120])
def test_retries_running_out_fail_the_run_without_moving_cursors(
    app: CustomerIOSandbox, server: SandboxServer, pipeline: dlt.Pipeline
) -> None:
    config = CustomerIOConfig.for_sandbox(server.url, max_attempts=2)
    resources = ("customers", "unsubscribes", "messages")
    run(pipeline, config, *resources)
    states = {r: resource_state(pipeline, r) for r in resources}
    tables = {r: query(pipeline, f"select * from {DATASET}.{r} order by id") for r in resources}

    app.advance(600)
    person = next(iter(app.people.values()))
    app.identify(person.id, unsubscribed=True, plan="pro")
    app.add_message(person.id, 3)
    app.inject(rate_limit_fault(times=2, retry_after=0, path="^/v1/activities$"))

    with pytest.raises(PipelineStepFailed) as failure:
        run(pipeline, config, *resources)
    assert "customerio: still failing after 2 attempts" in str(find_cause(failure.value, RetriesExhausted))
    assert {r: resource_state(pipeline, r) for r in resources} == states
    assert {r: query(pipeline, f"select * from {DATASET}.{r} order by id") for r in resources} == tables

    run(pipeline, config, *resources)
    for table in resources:
        ids = column(pipeline, f"select id from {DATASET}.{table}")
        assert len(ids) == len(set(ids)), table
    assert len(column(pipeline, f"select id from {DATASET}.messages")) == len(app.messages)
    assert len(column(pipeline, f"select id from {DATASET}.unsubscribes")) == len(unsubscribe_activities(app))
    assert query(
        pipeline, f"select unsubscribed, attributes__plan from {DATASET}.customers where id = '{person.id}'"
    ) == [(True, "pro")]


# ----------------------------------------------------------------------------------------- Track API


@pytest.mark.parametrize("people", [120])
def test_track_client_reaches_the_stand_in_and_changes_its_state(
    app: CustomerIOSandbox, server: SandboxServer, config: CustomerIOConfig
) -> None:
    track = track_client(config)
    assert isinstance(track, SandboxTrackClient) and track.base_url.startswith("https://track.customer.io")
    email = "jane.doe@example.org"
    track.identify(email, email=email, first_name="Jane", unsubscribed=False)
    [put] = app.requests("PUT")
    assert put.path == "/api/v1/customers/jane.doe%40example.org"  # the library quotes ids, the stand-in unquotes
    expected_auth = base64.b64encode(f"{SANDBOX_SITE_ID}:{SANDBOX_TRACK_API_KEY}".encode()).decode()
    assert put.headers["Authorization"] == f"Basic {expected_auth}"
    person = app.person(email)
    assert person is not None and person.attributes["first_name"] == "Jane"

    track.track(email, "trial_started", {"plan": "pro"})
    assert app.person_events[-1]["name"] == "trial_started"

    track.suppress(email)
    assert app.person(email) is None and app.is_suppressed(email)
    track.identify(email, email=email, first_name="Again")  # accepted and dropped while suppressed
    assert app.person(email) is None
    track.unsuppress(email)
    track.identify(email, email=email, first_name="Again")
    person = app.person(email)
    assert person is not None and "unsubscribed" not in person.attributes  # suppression erased the profile

    response = track.batch(
        [
            {"type": "person", "action": "identify", "identifiers": {"id": "usr_b1"}, "attributes": {"plan": "pro"}},
            {"type": "person", "action": "teleport", "identifiers": {"id": "usr_b2"}},
        ]
    )
    assert response.status_code == 207
    assert response.json()["errors"] == [
        {"batch_index": 1, "reason": "invalid", "field": "action", "message": "unknown person action 'teleport'"}
    ]
    assert app.person("usr_b1") is not None and app.person("usr_b2") is None
    with pytest.raises(customerio.CustomerIOException, match="^400"):
        track.batch([{"type": "person", "action": "delete", "identifiers": {"id": f"u{i}"}} for i in range(1001)])
    wrong = track_client(CustomerIOConfig.for_sandbox(server.url, track_api_key="wrong"))
    with pytest.raises(customerio.CustomerIOException, match="^401.*Unauthorized request"):
        wrong.identify("usr_x", plan="free")


@pytest.mark.parametrize("people", [120])
def test_track_client_retries_429_and_5xx_with_the_librarys_policy(
    app: CustomerIOSandbox, config: CustomerIOConfig
) -> None:
    track = track_client(config)
    app.inject(rate_limit_fault(times=1, retry_after=1, path="^/api/v1/customers/"))
    track.identify("usr_retry", plan="free")
    first, second = app.requests("PUT")
    assert second.at - first.at >= 1.0 and app.person("usr_retry") is not None

    app.inject(server_error_fault(times=2, status=503, path="^/api/v2/batch$"))
    track.batch([{"type": "person", "action": "identify", "identifiers": {"id": "usr_503"}, "attributes": {}}])
    assert len(app.requests("POST", "^/api/v2/batch$")) == 3 and app.person("usr_503") is not None


# ---------------------------------------------------------------------------------------------- config


def test_config_keeps_secrets_out_of_repr_and_reads_the_environment() -> None:
    env = {
        "CUSTOMERIO_SITE_ID": "site-secret",
        "CUSTOMERIO_TRACK_API_KEY": "track-secret",
        "CUSTOMERIO_APP_API_KEY": "app-secret",
        "CUSTOMERIO_REGION": "EU",
    }
    config = CustomerIOConfig.from_env(env)
    assert config.region == "eu" and config.app_base_url == "https://api-eu.customer.io" and not config.sandbox
    assert not any(secret in repr(config) for secret in ("site-secret", "track-secret", "app-secret"))
    production = track_client(config)
    assert type(production) is customerio.CustomerIO and production.host == "track-eu.customer.io"
    with pytest.raises(CustomerIOConfigError, match="CUSTOMERIO_APP_API_KEY"):
        CustomerIOConfig.from_env({})
    with pytest.raises(CustomerIOConfigError, match="CUSTOMERIO_SITE_ID"):
        track_client(CustomerIOConfig(app_api_key="app-only"))
    with pytest.raises(CustomerIOConfigError, match="App API key"):
        customerio_source(CustomerIOConfig(site_id="s", track_api_key="t"))


@pytest.mark.parametrize(
    "answer",
    [
        Response(200, "<html><body>Maintenance: an error occurred</body></html>", {"Content-Type": "text/html"}),
        Response(200, b'{"messages": [{"id": "1"', {"Content-Type": "application/json"}),
    ],
    ids=["an HTML page", "JSON cut short"],
)
def test_an_answer_that_is_not_json_is_retried_and_then_named_clearly(
    app: CustomerIOSandbox, config: CustomerIOConfig, pipeline: dlt.Pipeline, answer: Response
) -> None:
    app.inject(Fault(answer, path=r"/v1/messages$"))
    stats = CallStats()
    run(pipeline, config, "messages", stats=stats)
    assert stats.errors == {"BadResponse": 1} and stats.retries == 1
    assert query(pipeline, f"SELECT count(*) FROM {DATASET}.messages") == [(len(app.messages),)]

    app.inject(Fault(answer, path=r"/v1/messages$", times=10))
    with pytest.raises(PipelineStepFailed) as failed:
        run(pipeline, CustomerIOConfig.for_sandbox(config.app_base_url, max_attempts=2), "messages")
    # It used to be json's bare "Expecting value: line 1 column 1 (char 0)", not retried.
    error = str(find_cause(failed.value, RetriesExhausted))
    assert "Customer.io answered GET /v1/messages with HTTP 200 and a body that is not JSON" in error


def test_a_repeated_cursor_fails_the_run_instead_of_paging_forever(
    app: CustomerIOSandbox, config: CustomerIOConfig, pipeline: dlt.Pipeline
) -> None:
    page = {"messages": [{"id": "dup-1", "created": 1700000000}], "next": "SAME"}
    app.inject(Fault(Response.json(page), path=r"/v1/messages$", times=100))  # "forever", as far as a test goes
    with pytest.raises(PipelineStepFailed) as failed:
        run(pipeline, config, "messages")
    error = find_cause(failed.value, CustomerIOPayloadError)
    assert "sent the cursor 'SAME' twice on GET /v1/messages" in str(error)
    # Stopped at the first repeat; it used to ask until the answers changed.
    assert len(app.requests("GET", r"/v1/messages$")) == 2
