"""The Customer.io stand-in: its data follows the world, and its Track and App APIs behave as Customer.io's."""

from __future__ import annotations

import json
from typing import Any

import customerio
import pytest
import requests

from cdp_assets.sandbox.customerio import (
    SANDBOX_APP_API_KEY,
    SANDBOX_SITE_ID,
    SANDBOX_TRACK_API_KEY,
    SIX_MONTHS,
    SMS_SENDER,
    CustomerIOSandbox,
)
from cdp_assets.sandbox.http import SandboxServer
from cdp_assets.sandbox.world import World
from cdp_assets.sources.customerio import CustomerIOConfig, track_client


@pytest.fixture
def app(world: World) -> CustomerIOSandbox:
    return CustomerIOSandbox(world)


class App:
    """A thin App API caller (Bearer auth), as any HTTP client would call it."""

    def __init__(self, url: str, key: str = SANDBOX_APP_API_KEY) -> None:
        self.url, self.key = url, key

    def get(self, path: str, **params: Any) -> requests.Response:
        return requests.get(self.url + path, params=params, headers=self._headers(), timeout=10)

    def post(self, path: str, body: Any, **params: Any) -> requests.Response:
        return requests.post(self.url + path, params=params, json=body, headers=self._headers(), timeout=10)

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}


def track_post(url: str, path: str, body: Any, site: str = SANDBOX_SITE_ID) -> requests.Response:
    return requests.post(url + path, data=body, auth=(site, SANDBOX_TRACK_API_KEY), timeout=10)


def test_seed_follows_the_world(world: World, app: CustomerIOSandbox) -> None:
    for person in world.people:
        cio_changes = [c for c in person.consent_changes if c.system == "customerio"]
        known = person.lead_at or person.signed_up_at
        profile = app.person_for(person)
        assert (profile is not None) == bool(known or cio_changes), person.person_id
        if profile is None:
            continue
        assert profile.id == (person.user_id or person.email) and profile.email == person.email
        email_changes = [c for c in cio_changes if c.channel == "email"]
        if email_changes:
            assert profile.attributes["unsubscribed"] is (not email_changes[-1].subscribed)
        else:
            assert "unsubscribed" not in profile.attributes
        stopped = any(c.channel == "sms" and not c.subscribed for c in cio_changes)
        assert (profile.cio_id in app.sms_optouts) == stopped
        if person.customer_at:
            assert profile.attributes["lifecycle_stage"] == "customer" and profile.attributes["plan"] == person.plan
    # Unsubscribed people get no marketing message after they unsubscribed, and every bounce is suppressed.
    for message in app.messages:
        person = app.person(message["customer_id"])
        assert person is not None
        if person.unsubscribed:
            assert message["created"] <= person.timestamps["unsubscribed"]
        if "bounced" in message["metrics"]:
            assert message["recipient"] in app.esp_suppressions["bounces"]
    assert app.messages and all(len(app.esp_suppressions[k]) for k in ("bounces", "blocks", "invalid_emails"))


def test_app_api_pages_with_next_tokens(server: SandboxServer, app: CustomerIOSandbox) -> None:
    api = App(server.url)
    seen: list[str] = []
    start = ""
    while True:
        page = api.get("/v1/messages", limit=100, start=start).json()
        seen += [m["id"] for m in page["messages"]]
        start = page["next"]
        if not start:
            break
    assert seen == [m["id"] for m in reversed(app.messages)]  # newest first, each once
    created = [m["created"] for m in app.messages]
    window = api.get("/v1/messages", limit=1000, start_ts=created[len(created) // 2]).json()["messages"]
    assert all(m["created"] >= created[len(created) // 2] for m in window)
    members = api.get("/v1/segments/2/membership", limit=10).json()
    assert len(members["ids"]) == 10 and members["next"]
    assert {i["cio_id"] for i in members["identifiers"]} <= {p.cio_id for p in app.segment_members(2)}


def test_messages_default_to_the_last_six_months(server: SandboxServer, app: CustomerIOSandbox) -> None:
    app.advance(SIX_MONTHS + 30 * 86_400)
    api = App(server.url)
    assert api.get("/v1/messages", limit=1000).json()["messages"] == []
    assert len(api.get("/v1/messages", limit=1000, start_ts=0).json()["messages"]) == len(app.messages)


def test_filter_search_and_attributes(server: SandboxServer, app: CustomerIOSandbox) -> None:
    api = App(server.url)
    body = {
        "filter": {"and": [{"segment": {"id": 2}}, {"attribute": {"field": "plan", "operator": "eq", "value": "pro"}}]}
    }
    found = api.post("/v1/customers", body, limit=1000).json()
    expected = [
        p.id
        for p in app.people.values()
        if p.attributes.get("lifecycle_stage") == "customer" and p.attributes.get("plan") == "pro"
    ]
    assert found["ids"] == expected and found["next"] == ""
    no_filter = api.post("/v1/customers", {})
    assert no_filter.status_code == 400 and no_filter.json() == {"meta": {"error": "a filter is required"}}

    customers = api.post("/v1/customers/attributes", {"ids": [*expected[:3], "missing"]}).json()["customers"]
    assert [c["id"] for c in customers] == expected[:3]
    first = customers[0]
    assert first["attributes"]["plan"] == "pro" and isinstance(first["attributes"]["created_at"], str)
    assert api.post("/v1/customers/attributes", {"ids": [str(i) for i in range(101)]}).status_code == 400
    one = api.get(f"/v1/customers/{expected[0]}/attributes").json()["customer"]
    assert one["identifiers"]["cio_id"] == app.people[expected[0]].cio_id
    assert api.get("/v1/customers/nobody/attributes").status_code == 404
    assert App(server.url, key="wrong").get("/v1/campaigns").json() == {"meta": {"error": "Unauthorized request"}}


def test_track_api_state_changes_show_in_the_app_api(server: SandboxServer, app: CustomerIOSandbox) -> None:
    track = track_client(CustomerIOConfig.for_sandbox(server.url))
    api = App(server.url)
    person = next(p for p in app.people.values() if p.attributes.get("plan") == "free")
    now = app.advance(60)

    track.identify(person.id, plan="pro", unsubscribed=True)
    assert person.id not in {p.id for p in app.segment_members(4)}  # dynamic segments follow attributes
    assert person.id in {p.id for p in app.segment_members(5)}
    changes = api.get("/v1/activities", type="attribute_change", limit=2).json()["activities"]
    assert {(a["name"], a["timestamp"]) for a in changes} == {("plan", now), ("unsubscribed", now)}
    assert changes[0]["data"][changes[0]["name"]]["to"] in ("pro", "true")

    assert track_post(server.url, "/api/v1/segments/6/add_customers", json.dumps({"ids": [person.id]})).ok
    assert person.cio_id in app.segments[6].members
    assert track_post(server.url, "/api/v1/segments/6/remove_customers", json.dumps({"ids": [person.id]})).ok
    assert person.cio_id not in app.segments[6].members
    assert (
        track_post(server.url, "/api/v1/segments/4/add_customers", json.dumps({"ids": [person.id]})).status_code == 400
    )

    # An email in the path is the person with that email (RudderStack sends `userId || email`).
    assert person.email is not None
    track.identify(person.email, title="Head of Data")
    assert person.attributes["title"] == "Head of Data" and app.person(person.email) is None

    track.delete(person.id)
    assert api.get(f"/v1/customers/{person.id}/attributes").status_code == 404
    deleted = api.get("/v1/activities", type="profile_delete", deleted="true").json()["activities"]
    assert deleted[0]["customer_id"] == person.id
    assert not [a for a in api.get("/v1/activities", limit=100).json()["activities"] if a["customer_id"] == person.id]

    primary, secondary = [p for p in app.people.values() if p.email][:2]
    secondary.attributes["only_on_secondary"] = "kept"
    track.merge_customers("id", primary.id, "email", secondary.email)
    assert app.person(secondary.id) is None and primary.attributes["only_on_secondary"] == "kept"
    with pytest.raises(customerio.CustomerIOException, match="^400"):
        track.merge_customers("id", primary.id, "email", "nobody@example.org")


def test_batch_limits_and_partial_errors(server: SandboxServer, app: CustomerIOSandbox) -> None:
    def batch(operations: list[Any]) -> requests.Response:
        return track_post(server.url, "/api/v2/batch", json.dumps({"batch": operations}))

    ok = batch([{"type": "person", "action": "identify", "identifiers": {"id": "u1"}, "attributes": {"a": 1}}])
    assert ok.status_code == 200 and ok.json() == {}
    assert batch([{"type": "person", "action": "delete", "identifiers": {"id": "x"}}] * 1001).status_code == 400
    filler = "x" * 20_000
    big = [
        {"type": "person", "action": "identify", "identifiers": {"id": f"b{i}"}, "attributes": {"f": filler}}
        for i in range(30)
    ]
    assert batch(big).status_code == 400  # over 500 KB in all
    huge = {"type": "person", "action": "identify", "identifiers": {"id": "h"}, "attributes": {"f": "x" * 40_000}}
    partial = batch(
        [huge, {"type": "object", "action": "identify", "identifiers": {"object_type_id": "1", "object_id": "acme"}}]
    )
    assert partial.status_code == 207 and [e["batch_index"] for e in partial.json()["errors"]] == [0]
    assert app.objects[("1", "acme")] == {}
    link = {"type": "person", "action": "add_relationships", "identifiers": {"id": "u1"}}
    link["cio_relationships"] = [{"identifiers": {"object_type_id": "1", "object_id": "acme"}}]
    assert batch([link]).status_code == 200
    u1 = app.person("u1")
    assert u1 is not None and ("1", "acme", u1.cio_id) in app.relationships
    assert track_post(server.url, "/api/v2/batch", "{}", site="wrong").status_code == 401


def test_esp_suppressions_and_sms_optouts(server: SandboxServer, app: CustomerIOSandbox) -> None:
    api = App(server.url)
    bounces = api.get("/v1/esp/suppression/bounces", limit=1000).json()
    assert {r["email"] for r in bounces["suppressions"]} == set(app.esp_suppressions["bounces"])
    first = api.get("/v1/esp/suppression/bounces", limit=1, offset=1).json()["suppressions"]
    assert first == bounces["suppressions"][1:2]
    assert api.get("/v1/esp/suppression/unknown").status_code == 400
    email = bounces["suppressions"][0]["email"]
    assert api.get(f"/v1/esp/search_suppression/{email}").json()["suppressions"][0]["type"] == "bounces"
    optouts = api.get("/v1/optouts", limit=1000).json()
    assert {o["cio_id"] for o in optouts["optouts"]} == set(app.sms_optouts)
    assert all(o["optouts"] == [{"channel": "sms", "from": SMS_SENDER}] for o in optouts["optouts"])
