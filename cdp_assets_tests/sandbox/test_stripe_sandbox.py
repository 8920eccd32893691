"""The Stripe stand-in: its data follows the world, and it answers the real SDK as Stripe does."""

from __future__ import annotations

from typing import Any

import pytest
import requests
import stripe

from cdp_assets.sandbox.http import SandboxServer
from cdp_assets.sandbox.stripe import SANDBOX_API_KEY, StripeSandbox, rate_limit_fault, server_error_fault
from cdp_assets.sandbox.world import World


@pytest.fixture
def app(world: World) -> StripeSandbox:
    return StripeSandbox(world)


@pytest.fixture
def client(server: SandboxServer) -> stripe.StripeClient:
    return stripe.StripeClient(SANDBOX_API_KEY, base_addresses={"api": server.url}, max_network_retries=0)


def get(server: SandboxServer, path: str, key: str = SANDBOX_API_KEY, **params: object) -> requests.Response:
    return requests.get(server.url + path, params=params, headers={"Authorization": f"Bearer {key}"}, timeout=10)


def test_seed_follows_the_world(world: World, app: StripeSandbox) -> None:
    assert {c["metadata"]["user_id"]: c["email"] for c in app.objects("customers")} == {
        p.user_id: p.email for p in world.signed_up()
    }
    subscriptions: dict[str, list[dict[str, Any]]] = {}
    for sub in app.objects("subscriptions"):
        subscriptions.setdefault(sub["customer"], []).append(sub)
    for person in world.signed_up():
        assert person.user_id is not None
        customer = app.customer_for_user(person.user_id)
        subs = subscriptions[customer["id"]]
        plans = sorted(s["metadata"]["plan"] for s in subs)
        if person.plan in ("pro", "enterprise"):
            # The free plan was canceled at the upgrade; the paid one was invoiced and charged.
            assert plans == sorted(["free", person.plan])
            free = next(s for s in subs if s["metadata"]["plan"] == "free")
            paid = next(s for s in subs if s["metadata"]["plan"] != "free")
            assert free["status"] == "canceled" and paid["status"] in ("active", "past_due", "canceled")
            assert paid["created"] == app.unix(person.customer_at)  # type: ignore[arg-type]
            invoice = app.get("invoices", paid["latest_invoice"])
            if paid["status"] != "canceled":  # a failed payment leaves the invoice open
                assert invoice["status"] == ("open" if paid["status"] == "past_due" else "paid")
        else:
            assert plans == ["free"] and subs[0]["status"] == "active"
        assert customer["created"] == app.unix(person.signed_up_at)  # type: ignore[arg-type]
    assert {s["status"] for s in app.objects("subscriptions")} >= {"active", "canceled"}
    assert {i["status"] for i in app.objects("invoices")} == {"paid", "open"}


def test_every_change_has_its_event_with_a_snapshot(app: StripeSandbox) -> None:
    events = app.objects("events")
    created = [e for e in events if e["type"] == "customer.created"]
    assert len(created) == len(app.objects("customers"))
    by_type = {e["type"] for e in events}
    assert {"customer.subscription.deleted", "invoice.paid", "charge.succeeded", "charge.failed"} <= by_type
    for event in events:
        assert event["data"]["object"]["created"] <= event["created"]
    # Events are written in time order, so the newest-first list is also sorted by created.
    assert [e["created"] for e in events] == sorted((e["created"] for e in events), reverse=True)


def test_list_pages_newest_first_with_both_cursors(app: StripeSandbox, client: stripe.StripeClient) -> None:
    everything = [c["id"] for c in app.objects("customers")]
    page = client.v1.customers.list(params={"limit": 3})
    assert [c.id for c in page.data] == everything[:3] and page.has_more
    after = client.v1.customers.list(params={"limit": 3, "starting_after": everything[2]})
    assert [c.id for c in after.data] == everything[3:6]
    before = client.v1.customers.list(params={"limit": 2, "ending_before": everything[3]})
    assert [c.id for c in before.data] == everything[1:3] and before.has_more
    assert [c.id for c in client.v1.customers.list(params={"limit": 100}).auto_paging_iter()] == everything
    last = client.v1.customers.list(params={"limit": 100, "starting_after": everything[-101]})
    assert len(last.data) == 100 and not last.has_more


def test_created_filters_and_default_limit(app: StripeSandbox, client: stripe.StripeClient) -> None:
    customers = app.objects("customers")
    pivot = customers[40]["created"]
    gte = client.v1.customers.list(params={"limit": 100, "created": {"gte": pivot}})
    assert [c.id for c in gte.data] == [c["id"] for c in customers if c["created"] >= pivot]
    gt_lte = client.v1.customers.list(params={"limit": 100, "created": {"gt": pivot - 3600, "lte": pivot}})
    assert all(pivot - 3600 < c.created <= pivot for c in gt_lte.data)
    assert len(client.v1.customers.list().data) == 10  # Stripe's default page


def test_subscriptions_leave_canceled_out_unless_asked(app: StripeSandbox, client: stripe.StripeClient) -> None:
    late_payer = app.add_customer("late@example.org")
    app.add_invoice(app.add_subscription(late_payer["id"], "pro")["id"], paid=False)

    def every(params: dict[str, object]) -> list[str]:
        return [s.status for s in client.v1.subscriptions.list(params={"limit": 100, **params}).auto_paging_iter()]

    assert "canceled" not in every({})
    assert sorted(every({"status": "all"})) == sorted(s["status"] for s in app.objects("subscriptions"))
    assert set(every({"status": "past_due"})) == {"past_due"}


def test_events_filter_by_type_with_a_wildcard(client: stripe.StripeClient) -> None:
    invoices = client.v1.events.list(params={"limit": 100, "type": "invoice.*"}).data
    assert invoices and {e.type.split(".")[0] for e in invoices} == {"invoice"}
    paid = client.v1.events.list(params={"limit": 5, "types": ["invoice.paid"]}).data
    assert {e.type for e in paid} == {"invoice.paid"}


def test_helpers_change_objects_and_write_events(app: StripeSandbox, client: stripe.StripeClient) -> None:
    customer = app.objects("customers")[-1]
    now = app.advance(120)
    app.update_customer(customer["id"], email="moved@example.org", metadata={"team": "data"})
    event = app.objects("events")[0]
    assert event["type"] == "customer.updated" and event["created"] == now
    assert event["data"]["object"]["email"] == "moved@example.org"
    assert event["data"]["previous_attributes"] == {"email": customer["email"], "metadata": {"team": None}}
    assert client.v1.customers.retrieve(customer["id"]).metadata["team"] == "data"

    app.delete_customer(customer["id"])
    assert client.v1.customers.retrieve(customer["id"])["deleted"] is True
    assert customer["id"] not in [c["id"] for c in app.objects("customers")]

    fresh = app.add_customer("new@example.org", user_id="usr_x")
    sub = app.add_subscription(fresh["id"], "pro")
    invoice = app.add_invoice(sub["id"], paid=False)
    assert invoice["status"] == "open" and app.get("subscriptions", sub["id"])["status"] == "past_due"
    paid = app.add_invoice(sub["id"], paid=True)
    assert paid["status"] == "paid" and app.get("subscriptions", sub["id"])["status"] == "active"
    types = [e["type"] for e in app.objects("events")[:12]]
    assert {"charge.failed", "invoice.payment_failed", "charge.succeeded", "invoice.paid"} <= set(types)


def test_errors_come_in_stripes_shape(server: SandboxServer, client: stripe.StripeClient) -> None:
    wrong = get(server, "/v1/customers", key="sk_test_nope")
    assert wrong.status_code == 401 and wrong.json()["error"]["type"] == "invalid_request_error"
    with pytest.raises(stripe.AuthenticationError):
        stripe.StripeClient("sk_test_nope", base_addresses={"api": server.url}).v1.customers.list()
    too_many = get(server, "/v1/customers", limit=101)
    assert too_many.status_code == 400 and too_many.json()["error"]["param"] == "limit"
    with pytest.raises(stripe.InvalidRequestError, match="No such customer"):
        client.v1.customers.list(params={"starting_after": "cus_missing"})
    with pytest.raises(stripe.InvalidRequestError, match="No such customer"):
        client.v1.customers.retrieve("cus_missing")


def test_faults_reach_the_sdk_as_stripe_errors(app: StripeSandbox, client: stripe.StripeClient) -> None:
    app.inject(rate_limit_fault(times=1, retry_after=2, should_retry=False))
    with pytest.raises(stripe.RateLimitError) as limited:
        client.v1.customers.list()
    assert limited.value.headers is not None
    assert limited.value.headers["Retry-After"] == "2" and limited.value.headers["Stripe-Should-Retry"] == "false"
    app.inject(server_error_fault(times=1, status=502, path="/v1/charges"))
    client.v1.customers.list()  # the fault matches charges only
    with pytest.raises(stripe.APIError) as failed:
        client.v1.charges.list()
    assert failed.value.http_status == 502
    assert len(client.v1.charges.list().data) == 10  # the fault was used up
