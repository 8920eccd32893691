"""The Stripe source against the Stripe stand-in: the real SDK over HTTP on 127.0.0.1, real dlt into DuckDB."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import dlt
import pytest
from dlt.pipeline.exceptions import PipelineStepFailed

from cdp_assets.sandbox.http import SandboxServer
from cdp_assets.sandbox.stripe import StripeSandbox, rate_limit_fault, server_error_fault
from cdp_assets.sandbox.world import World
from cdp_assets.sources.policy import CallStats, RetriesExhausted
from cdp_assets.sources.stripe import (
    OBJECT_RESOURCES,
    StripeAuthError,
    StripeConfig,
    StripeConfigError,
    latest_snapshots,
    stripe_source,
)
from cdp_assets_tests.sources.helpers import duckdb_pipeline, find_cause, query

DATASET = "raw_stripe"
# The `people` of the fault tests' worlds: they need no more.
SMALL = 120


@pytest.fixture
def app(world: World) -> StripeSandbox:
    return StripeSandbox(world)


@pytest.fixture
def config(server: SandboxServer) -> StripeConfig:
    return StripeConfig.for_sandbox(server.url)


@pytest.fixture
def pipeline(tmp_path: Path) -> dlt.Pipeline:
    return duckdb_pipeline(tmp_path, DATASET)


def run(pipeline: dlt.Pipeline, config: StripeConfig, *resources: str, stats: CallStats | None = None) -> str:
    """One run with a fresh source (dagster-notes P1); returns its load id."""
    source = stripe_source(config, stats)
    if resources:
        source = source.with_resources(*resources)
    info = pipeline.run(source)
    info.raise_on_failed_jobs()
    return info.loads_ids[-1]


def ids(pipeline: dlt.Pipeline, table: str, where: str = "true") -> list[str]:
    return [r[0] for r in query(pipeline, f"select id from {DATASET}.{table} where {where} order by id")]


def resource_state(pipeline: dlt.Pipeline, resource: str) -> dict[str, Any]:
    return dict(pipeline.state["sources"]["stripe"]["resources"].get(resource, {}))


def list_calls(app: StripeSandbox, resource: str) -> list[dict[str, list[str]]]:
    return [r.query for r in app.requests("GET", rf"^/v1/{resource}$")]


# ------------------------------------------------------------------------------------------------ runs


def test_first_run_fills_the_tables_and_the_second_loads_exactly_the_changes(
    world: World, app: StripeSandbox, config: StripeConfig, pipeline: dlt.Pipeline
) -> None:
    stats = CallStats()
    run(pipeline, config, stats=stats)

    expected_calls = 0
    for resource in [*OBJECT_RESOURCES, "events"]:
        live = app.objects(resource)
        assert ids(pipeline, resource) == sorted(o["id"] for o in live), resource
        calls = list_calls(app, resource)
        # Exactly the pages the data needs, every one of them as full as Stripe allows.
        assert len(calls) == max(1, math.ceil(len(live) / 100)), resource
        assert all(q["limit"] == ["100"] for q in calls)
        expected_calls += len(calls)
    assert stats.calls == expected_calls == len(app.log)
    assert stats.retries == 0
    # The events feed is read once for all seven resources.
    assert len(list_calls(app, "events")) == math.ceil(len(app.objects("events")) / 100)
    assert all(q.get("status") == ["all"] for q in list_calls(app, "subscriptions"))

    # The rows carry the world: one customer per signed-up person, every plan, canceled ones too.
    customers = dict(query(pipeline, f"select metadata__user_id, email from {DATASET}.customers"))
    assert customers == {p.user_id: p.email for p in world.signed_up()}
    statuses = dict(query(pipeline, f"select status, count(*) from {DATASET}.subscriptions group by 1"))
    assert set(statuses) >= {"active", "canceled"}  # canceled ones come only with status=all
    item_prices = query(
        pipeline,
        f"select distinct i.price__lookup_key from {DATASET}.subscriptions s "
        f"join {DATASET}.subscriptions__items__data i on i._dlt_parent_id = s._dlt_id",
    )
    assert {r[0] for r in item_prices} == {"free_monthly", "pro_monthly", "enterprise_monthly"}
    event_data = query(pipeline, f"select data from {DATASET}.events where type = 'customer.created' limit 1")
    assert json.loads(event_data[0][0])["object"]["object"] == "customer"  # `data` is one JSON column

    # -- second run, after changes in Stripe -----------------------------------------------------
    before_events = set(ids(pipeline, "events"))
    cursors = {r: resource_state(pipeline, r)["created_cursor"] for r in OBJECT_RESOURCES}
    customers_cursor = cursors["customers"]
    events_cursor = max(e["created"] for e in app.objects("events"))

    app.advance(3600)
    existing = [c for c in app.objects("customers") if c["created"] < customers_cursor]
    changed, deleted = existing[10], existing[20]
    app.update_customer(changed["id"], email="renamed@example.org", metadata={"plan": "pro"})
    paying = next(s for s in app.objects("subscriptions") if s["status"] == "active" and s["metadata"]["plan"] == "pro")
    app.cancel_subscription(paying["id"])
    app.delete_customer(deleted["id"])
    app.advance(60)
    fresh = app.add_customer("new.person@example.org", name="New Person", user_id="usr_new")
    app.log.clear()

    load_id = run(pipeline, config)

    # Every call asked only for what is new since the first run.
    for resource in OBJECT_RESOURCES:
        [call] = list_calls(app, resource)
        assert call["created[gte]"] == [str(cursors[resource])], resource
    assert list_calls(app, "events") == [{"limit": ["100"], "created[gte]": [str(events_cursor)]}]

    # The exact rows of the second run: new and boundary-second objects listed, changed ones from events.
    # (Both windows are inclusive, so what happened in the last second of the first run is read again.)
    listed = {c["id"] for c in app.objects("customers") if c["created"] >= customers_cursor}
    touched = {
        e["data"]["object"]["id"]
        for e in app.objects("events")
        if e["created"] >= events_cursor and e["data"]["object"]["object"] == "customer"
    }
    assert touched >= {changed["id"], deleted["id"]} and fresh["id"] in listed
    assert set(ids(pipeline, "customers", f"_dlt_load_id = '{load_id}'")) == listed | touched
    assert query(pipeline, f"select email, metadata__plan from {DATASET}.customers where id = '{changed['id']}'") == [
        ("renamed@example.org", "pro")
    ]
    assert query(pipeline, f"select deleted from {DATASET}.customers where id = '{deleted['id']}'") == [(True,)]
    assert query(pipeline, f"select status from {DATASET}.subscriptions where id = '{paying['id']}'") == [("canceled",)]
    new_events = {e["id"] for e in app.objects("events")} - before_events
    assert set(ids(pipeline, "events", f"_dlt_load_id = '{load_id}'")) == new_events
    assert {e["type"] for e in app.objects("events") if e["id"] in new_events} >= {
        "customer.updated",
        "customer.subscription.deleted",
        "customer.deleted",
        "customer.created",
    }
    # One row per object, the deleted customer kept with its flag; no event twice.
    for resource in OBJECT_RESOURCES:
        rows = ids(pipeline, resource)
        assert len(rows) == len(set(rows)), resource
    assert len(ids(pipeline, "customers")) == len(app.objects("customers")) + 1
    assert ids(pipeline, "events") == sorted(e["id"] for e in app.objects("events"))


def test_latest_snapshot_wins_and_listed_objects_are_skipped() -> None:
    events = [  # newest first, as the feed returns them
        {"type": "customer.deleted", "data": {"object": {"id": "cus_1", "object": "customer", "email": "c"}}},
        {"type": "customer.updated", "data": {"object": {"id": "cus_1", "object": "customer", "email": "b"}}},
        {"type": "customer.updated", "data": {"object": {"id": "cus_2", "object": "customer", "email": "x"}}},
        {"type": "invoice.paid", "data": {"object": {"id": "in_1", "object": "invoice"}}},
    ]
    assert latest_snapshots(events, "customer", skip={"cus_2"}) == [
        {"id": "cus_1", "object": "customer", "email": "c", "deleted": True}
    ]
    assert latest_snapshots(events, "invoice") == [{"id": "in_1", "object": "invoice"}]


# ---------------------------------------------------------------------------------------------- faults


@pytest.mark.parametrize("people", [SMALL])
def test_429_is_retried_after_retry_after(app: StripeSandbox, config: StripeConfig, pipeline: dlt.Pipeline) -> None:
    # Without Stripe-Should-Retry, then with `true`: the SDK (no retries of its own) raises both times.
    app.inject(rate_limit_fault(times=1, retry_after=1, path="^/v1/customers$"))
    app.inject(rate_limit_fault(times=1, retry_after=0, should_retry=True, path="^/v1/customers$"))
    stats = CallStats()
    run(pipeline, config, "customers", stats=stats)

    first, second, third = app.requests("GET", "^/v1/customers$")[:3]
    # The SDK ignores Retry-After; the policy waits for it.
    assert second.at - first.at >= 1.0 and third.at - second.at < 1.0
    assert stats.retries == 2 and stats.errors == {"RateLimitError": 2}
    assert len(ids(pipeline, "customers")) == len(app.objects("customers"))


@pytest.mark.parametrize("people", [SMALL])
def test_429_that_stripe_says_not_to_retry_fails_at_once(
    app: StripeSandbox, config: StripeConfig, pipeline: dlt.Pipeline
) -> None:
    app.inject(rate_limit_fault(times=5, retry_after=0, should_retry=False, path="^/v1/customers$"))
    with pytest.raises(PipelineStepFailed) as failure:
        run(pipeline, config, "customers")
    assert "Request rate limit exceeded" in str(failure.value)
    assert len(app.requests("GET", "^/v1/customers$")) == 1


@pytest.mark.parametrize("people", [SMALL])
def test_5xx_is_retried_and_the_run_succeeds(app: StripeSandbox, config: StripeConfig, pipeline: dlt.Pipeline) -> None:
    app.inject(server_error_fault(times=1, status=500, path="^/v1/events$"))
    app.inject(server_error_fault(times=1, status=503, path="^/v1/prices$"))
    stats = CallStats()
    run(pipeline, config, "prices", "events", stats=stats)
    assert stats.retries == 2 and stats.errors == {"APIError": 2}
    assert ids(pipeline, "prices") == sorted(p["id"] for p in app.objects("prices"))
    assert len(ids(pipeline, "events")) == len(app.objects("events"))


@pytest.mark.parametrize("people", [SMALL])
def test_wrong_key_stops_with_a_clear_message_and_is_not_retried(
    server: SandboxServer, app: StripeSandbox, pipeline: dlt.Pipeline
) -> None:
    config = StripeConfig.for_sandbox(server.url, api_key="sk_test_wrong_key_9999")
    with pytest.raises(PipelineStepFailed) as failure:
        pipeline.extract(stripe_source(config).with_resources("customers"))
    cause = find_cause(failure.value, StripeAuthError)
    assert "rejected the API key" in str(cause) and "STRIPE_API_KEY" in str(cause)
    assert "sk_test_wrong_key_9999" not in str(cause)  # Stripe masks the key; so must we
    assert len(app.log) == 1


@pytest.mark.parametrize("people", [SMALL])
def test_retries_running_out_fail_the_run_without_moving_the_cursor(
    app: StripeSandbox, server: SandboxServer, pipeline: dlt.Pipeline
) -> None:
    config = StripeConfig.for_sandbox(server.url, max_attempts=3)
    run(pipeline, config, "customers", "events")
    state_before = resource_state(pipeline, "customers")
    events_state_before = resource_state(pipeline, "events")
    customers_before = query(pipeline, f"select id, email, _dlt_load_id from {DATASET}.customers order by id")
    events_before = ids(pipeline, "events")

    app.advance(600)
    target = app.objects("customers")[30]
    app.update_customer(target["id"], email="changed.once@example.org")
    fresh = app.add_customer("fresh@example.org", user_id="usr_fresh")
    app.inject(rate_limit_fault(times=3, retry_after=0, path="^/v1/customers$"))

    with pytest.raises(PipelineStepFailed) as failure:
        run(pipeline, config, "customers", "events")
    cause = find_cause(failure.value, RetriesExhausted)
    assert "stripe: still failing after 3 attempts" in str(cause)
    # Nothing of the failed run reached the warehouse and no cursor moved.
    assert resource_state(pipeline, "customers") == state_before
    assert resource_state(pipeline, "events") == events_state_before
    assert query(pipeline, f"select id, email, _dlt_load_id from {DATASET}.customers order by id") == customers_before
    assert ids(pipeline, "events") == events_before

    run(pipeline, config, "customers", "events")
    customer_ids = ids(pipeline, "customers")
    assert len(customer_ids) == len(set(customer_ids)) == len(app.objects("customers"))
    assert fresh["id"] in customer_ids
    assert query(pipeline, f"select email from {DATASET}.customers where id = '{target['id']}'") == [
        ("changed.once@example.org",)
    ]
    event_ids = ids(pipeline, "events")
    assert len(event_ids) == len(set(event_ids)) == len(app.objects("events"))


# ---------------------------------------------------------------------------------------------- config


def test_config_keeps_the_key_out_of_repr_and_reads_the_environment() -> None:
    config = StripeConfig.from_env({"STRIPE_API_KEY": "sk_live_secret_value"})
    assert config.api_key == "sk_live_secret_value" and config.base_url is None and not config.sandbox
    assert "sk_live_secret_value" not in repr(config)
    with pytest.raises(StripeConfigError, match="STRIPE_API_KEY is not set"):
        StripeConfig.from_env({})
    with pytest.raises(StripeConfigError, match="page_size"):
        StripeConfig(api_key="sk_test_x", page_size=101)
    sandbox = StripeConfig.for_sandbox("http://127.0.0.1:1")
    assert sandbox.sandbox and sandbox.base_url == "http://127.0.0.1:1"
