"""The Graph stand-in's wire contract: what the facebook-business SDK sends, and what Graph answers."""

from __future__ import annotations

import json
from datetime import date
from typing import Any

import pytest
import requests
from facebook_business.adobjects.adaccount import AdAccount
from facebook_business.adobjects.adreportrun import AdReportRun
from facebook_business.api import FacebookAdsApi
from facebook_business.exceptions import FacebookRequestError
from facebook_business.session import FacebookSession

from cdp_assets.sandbox.facebook import (
    SANDBOX_ACCESS_TOKEN,
    FacebookSandbox,
    SandboxServer,
    graph_time,
    throttle_fault,
)


@pytest.fixture
def app() -> FacebookSandbox:
    return FacebookSandbox(seed=3)


def _get(server: SandboxServer, path: str, token: str = SANDBOX_ACCESS_TOKEN, **params: Any) -> requests.Response:
    session = requests.Session()
    session.trust_env = False  # no proxy for 127.0.0.1, whatever the environment says
    return session.get(f"{server.url}/v26.0/{path}", params={"access_token": token, **params})


def _account(server: SandboxServer) -> str:
    return next(iter(server.app.accounts))  # type: ignore[attr-defined]


def test_the_same_seed_gives_the_same_world() -> None:
    one, two = FacebookSandbox(seed=5), FacebookSandbox(seed=5)
    assert [(o.id, o.name) for o in one.objects("ad")] == [(o.id, o.name) for o in two.objects("ad")]
    day = date(2024, 1, 4)
    assert one.insight_rows(day, day) == two.insight_rows(day, day)
    assert FacebookSandbox(seed=6).insight_rows(day, day) != one.insight_rows(day, day)
    # One campaign per account is named like a utm_campaign of the event generator.
    assert "warehouse-first-q1" in {c.name for c in one.objects("campaign")}


def test_fields_arrive_in_either_encoding_and_paging_next_only_when_there_is_more(server: SandboxServer) -> None:
    account = _account(server)
    joined = _get(server, f"act_{account}/ads", fields="id,name,updated_time", limit=10).json()
    listed = _get(server, f"act_{account}/ads", fields=json.dumps(["id", "name", "updated_time"]), limit=10).json()
    assert joined == listed
    assert set(joined["data"][0]) == {"id", "name", "updated_time"}
    assert joined["data"][0]["updated_time"].endswith("-0800")  # the account's own time zone
    assert "next" in joined["paging"]
    # Archived objects are left out unless asked for: 12 of 16 ads here.
    rest = _get(server, f"act_{account}/ads", fields="id", limit=10, after=joined["paging"]["cursors"]["after"]).json()
    assert len(joined["data"]) + len(rest["data"]) == 12 and "next" not in rest["paging"]
    everything = _get(server, f"act_{account}/ads", fields="id", limit=100, effective_status='["ACTIVE","ARCHIVED"]')
    assert len(everything.json()["data"]) == 16


def test_updated_time_filtering_returns_only_changes(server: SandboxServer) -> None:
    app: FacebookSandbox = server.app  # type: ignore[assignment]
    account = _account(server)
    campaign = app.objects("campaign")[0]
    stamp = int(app.rename(campaign.id, "renamed").updated_time.timestamp())
    rule = [{"field": "updated_time", "operator": "GREATER_THAN", "value": stamp - 1}]
    body = _get(server, f"act_{account}/campaigns", fields="id,name", filtering=json.dumps(rule)).json()
    assert body["data"] == [{"id": campaign.id, "name": "renamed"}]
    assert graph_time(app.objects("campaign")[0].updated_time).endswith("-0800")


def test_errors_have_graph_s_shape(server: SandboxServer) -> None:
    account = _account(server)
    wrong = _get(server, f"act_{account}/ads", token="nope")
    assert wrong.status_code == 400 and wrong.json()["error"]["code"] == 190
    unknown = _get(server, f"act_{account}/ads", fields="id,colour").json()["error"]
    assert unknown["code"] == 100 and "colour" in unknown["message"] and unknown["fbtrace_id"]
    server.app.inject(throttle_fault(code=80000, minutes=4))
    throttled = _get(server, f"act_{account}/ads")
    assert throttled.status_code == 400 and throttled.json()["error"]["code"] == 80000
    usage = json.loads(throttled.headers["x-business-use-case-usage"])
    assert next(iter(usage.values()))[0]["estimated_time_to_regain_access"] == 4


def test_the_sdk_runs_an_async_report_and_reads_string_numbers(server: SandboxServer) -> None:
    session = FacebookSession(access_token=SANDBOX_ACCESS_TOKEN)
    session.GRAPH = server.url
    api = FacebookAdsApi(session, api_version="v26.0")
    account = AdAccount(f"act_{_account(server)}", api=api)
    params = {"level": "ad", "time_increment": 1, "time_range": {"since": "2024-01-02", "until": "2024-01-03"}}
    run = account.get_insights(fields=["ad_id", "impressions", "spend", "actions"], params=params, is_async=True)
    report = AdReportRun(run["report_run_id"], api=api)
    assert report.api_get()["async_status"] == "Job Completed"
    rows = [r.export_all_data() for r in report.get_insights(params={"limit": 100})]
    app: FacebookSandbox = server.app  # type: ignore[assignment]
    expected = app.insight_rows(date(2024, 1, 2), date(2024, 1, 3))
    assert len(rows) == len(expected) and {r["date_start"] for r in rows} == {"2024-01-02", "2024-01-03"}
    assert all(isinstance(r["impressions"], str) and r["date_start"] == r["date_stop"] for r in rows)
    # A sync call over a range the stand-in does not accept is Graph's error, raised by the SDK.
    with pytest.raises(FacebookRequestError) as failed:
        account.get_insights(fields=["ad_id"], params={"level": "ad", "time_increment": 1})
    assert failed.value.api_error_code() == 100
