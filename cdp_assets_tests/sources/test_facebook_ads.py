"""The Facebook Ads source: the real facebook-business SDK over HTTP to the Graph stand-in, real dlt into DuckDB."""

from __future__ import annotations

import base64
import dataclasses
import json
import math
import sys
import traceback
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import dlt
import pytest
from dlt.pipeline.exceptions import PipelineStepFailed

from cdp_assets.sandbox.facebook import (
    FacebookSandbox,
    SandboxServer,
    server_error_fault,
    throttle_fault,
)
from cdp_assets.sandbox.facebook import _cursor as graph_cursor
from cdp_assets.sandbox.http import Fault, Response
from cdp_assets.settings import SettingsError
from cdp_assets.sources.facebook_ads import (
    FacebookAdsConfig,
    FacebookAdsError,
    FacebookAuthError,
    facebook_ads_source,
    throttle_wait_seconds,
)
from cdp_assets.sources.policy import CallStats, RetriesExhausted, RetryAfterTooLong
from cdp_assets_tests.sources.helpers import cause_chain, duckdb_pipeline, find_cause, query

DATASET = "raw_facebook_ads"
DAY = date.fromisoformat
FIRST_DAY, RUN1_END, RUN2_END = DAY("2024-01-01"), DAY("2024-01-10"), DAY("2024-01-14")
# The first day a second run re-reads: the cursor (RUN1_END) less the 7-day attribution window.
RUN2_SINCE = DAY("2024-01-03")


@pytest.fixture
def graph() -> Iterator[tuple[FacebookSandbox, SandboxServer]]:
    # Two ad accounts: the source finds them itself (no account ids configured) and reads both.
    app = FacebookSandbox(seed=7, accounts=2, today=RUN1_END)
    with SandboxServer(app) as server:
        yield app, server


@pytest.fixture
def pipeline(tmp_path: Path) -> dlt.Pipeline:
    return duckdb_pipeline(tmp_path, DATASET)


def _config(server: SandboxServer, **overrides: Any) -> FacebookAdsConfig:
    return FacebookAdsConfig.for_sandbox(server.url, **{"end_date": RUN1_END, "page_size": 50, **overrides})


def _run(pipeline: dlt.Pipeline, config: FacebookAdsConfig, stats: CallStats | None = None, *only: str) -> None:
    source = facebook_ads_source(config, stats)  # a fresh source object for every run (dagster-notes P1)
    pipeline.run(source.with_resources(*only) if only else source)


def _insights(pipeline: dlt.Pipeline) -> dict[tuple[str, date], dict[str, Any]]:
    """The loaded insights with their actions, keyed like the merge: (ad_id, date_start)."""
    loaded: dict[tuple[str, date], dict[str, Any]] = {}
    for ad_id, day, impressions, reach, clicks, spend in query(
        pipeline, f"SELECT ad_id, date_start, impressions, reach, clicks, spend FROM {DATASET}.insights"
    ):
        assert (ad_id, day) not in loaded, f"duplicate insights row {ad_id} {day}"
        loaded[(ad_id, day)] = {
            "impressions": impressions,
            "reach": reach,
            "clicks": clicks,
            "spend": spend,
            "actions": {},
        }
    for ad_id, day, action_type, value in query(
        pipeline,
        f"SELECT i.ad_id, i.date_start, a.action_type, a.value FROM {DATASET}.insights i "
        f"JOIN {DATASET}.insights__actions a ON a._dlt_parent_id = i._dlt_id",
    ):
        loaded[(ad_id, day)]["actions"][action_type] = value
    return loaded


def _truth(app: FacebookSandbox, since: date, until: date) -> dict[tuple[str, date], dict[str, Any]]:
    return {
        (r["ad_id"], r["date_start"]): {k: r[k] for k in ("impressions", "reach", "clicks", "spend", "actions")}
        for r in app.insight_rows(since, until)
    }


def _campaign_names(pipeline: dlt.Pipeline) -> dict[str, str]:
    return dict(query(pipeline, f"SELECT id, name FROM {DATASET}.campaigns"))


def _cursor(pipeline: dlt.Pipeline) -> date:
    state = pipeline.state["sources"]["facebook_ads"]["resources"]["insights"]["incremental"]["date_start"]
    return state["last_value"]


def _report_posts(app: FacebookSandbox) -> list[dict[str, Any]]:
    return [{k: v[-1] for k, v in parse_qs(r.body.decode()).items()} for r in app.requests("POST", r"/insights$")]


def test_first_run_loads_everything_and_the_next_run_brings_late_conversions_renames_and_new_days(
    graph: tuple[FacebookSandbox, SandboxServer], pipeline: dlt.Pipeline
) -> None:
    app, server = graph
    hook = sys.excepthook
    stats = CallStats()
    _run(pipeline, _config(server), stats)

    # Dimensions: every campaign, ad set and ad of both accounts, the archived campaign included
    # (Graph hides it unless asked), with Graph's account-local times read as instants.
    campaigns = query(pipeline, f"SELECT id, name, effective_status, updated_time FROM {DATASET}.campaigns")
    assert sorted(campaigns) == sorted(
        (c.id, c.name, app.effective_status(c), c.updated_time) for c in app.objects("campaign")
    )
    assert {r[2] for r in campaigns} == {"ACTIVE", "ARCHIVED"}
    assert sorted(r[0] for r in query(pipeline, f"SELECT id FROM {DATASET}.adsets")) == sorted(
        o.id for o in app.objects("adset")
    )
    ads = query(pipeline, f"SELECT id, adset_id, campaign_id, creative_id FROM {DATASET}.ads")
    assert len(ads) == len(app.ads()) == 32 and all(row[3] for row in ads)

    # Insights: exactly the stand-in's rows, the very first day included (a string cursor compared
    # with date_start would have dropped it, saas-apis.md §7.3), numbers typed.
    first = _truth(app, FIRST_DAY, RUN1_END)
    assert _insights(pipeline) == first
    assert min(day for _ad, day in first) == FIRST_DAY
    assert _cursor(pipeline) == RUN1_END

    # Calls: exactly what the data needs. Per account: one page per edge (16 ads < 50), one report
    # (POST, one poll: the report is done on the first poll), and ceil(rows / 50) pages of rows.
    assert len(app.requests("GET", r"/me/adaccounts$")) == 1
    for account_id in app.accounts:
        assert len(app.requests("GET", rf"/act_{account_id}/(campaigns|adsets|ads)$")) == 3
        assert len(app.requests("POST", rf"/act_{account_id}/insights$")) == 1
    polls = app.requests("GET", r"/v26\.0/\d+/$")  # the SDK polls with a trailing slash
    pages = app.requests("GET", r"/v26\.0/\d+/insights$")
    assert len(polls) == 2
    expected_pages = sum(math.ceil(len(app.insight_rows(FIRST_DAY, RUN1_END, a)) / 50) for a in app.accounts)
    assert len(pages) == expected_pages
    assert stats.calls == len(app.log) and stats.retries == 0
    # The token travels as a query parameter, and the SDK's crash reporter was never installed.
    assert all(r.arg("access_token") == app.access_token for r in app.log)
    assert sys.excepthook is hook
    sent = _report_posts(app)[0]
    assert json.loads(sent["time_range"]) == {"since": "2024-01-01", "until": "2024-01-10"}
    assert sent["level"] == "ad" and sent["time_increment"] == "1"

    # The world moves on: four new days, a rename, and conversions credited to past days: one inside
    # the attribution window of the next run, one before it.
    ad = app.ads()[0]
    renamed = app.objects("campaign")[1]
    app.advance_to(RUN2_END)
    app.rename(renamed.id, "retargeting-site-visitors-v2")
    app.add_late_conversions(ad.id, DAY("2024-01-05"), count=4)
    app.add_late_conversions(ad.id, DAY("2024-01-02"), count=9)
    before = len(app.log)

    _run(pipeline, _config(server, end_date=RUN2_END))

    second = app.log[before:]
    sent = _report_posts(app)[-1]
    assert json.loads(sent["time_range"]) == {"since": RUN2_SINCE.isoformat(), "until": RUN2_END.isoformat()}
    # Days before the window keep what the first run saw (the late conversion on Jan 2 is past the
    # window, the trade-off of a 7-day lookback); the window holds today's truth.
    expected = {k: v for k, v in first.items() if k[1] < RUN2_SINCE} | _truth(app, RUN2_SINCE, RUN2_END)
    loaded = _insights(pipeline)
    assert loaded == expected
    assert (
        loaded[(ad.id, DAY("2024-01-05"))]["actions"]["lead"]
        == first[(ad.id, DAY("2024-01-05"))]["actions"].get("lead", 0) + 4
    )
    assert loaded[(ad.id, DAY("2024-01-02"))] == first[(ad.id, DAY("2024-01-02"))]
    assert _cursor(pipeline) == RUN2_END

    # Dimensions were asked only for what changed since the last run, and only the rename came back.
    edge_calls = [r for r in second if r.path.endswith(("/campaigns", "/adsets", "/ads"))]
    assert len(edge_calls) == 6 and all("updated_time" in (r.arg("filtering") or "") for r in edge_calls)
    names = _campaign_names(pipeline)
    assert names == {c.id: c.name for c in app.objects("campaign")}
    assert names[renamed.id] == "retargeting-site-visitors-v2"
    assert query(pipeline, f"SELECT count(*), count(DISTINCT id) FROM {DATASET}.campaigns") == [(8, 8)]


def test_throttling_and_server_errors_are_retried_and_the_data_is_complete(
    graph: tuple[FacebookSandbox, SandboxServer], pipeline: dlt.Pipeline
) -> None:
    app, server = graph
    # A user-level throttle on starting a report, an ad-account (BUC) throttle on an edge, and a bad
    # backend moment twice while paging report rows.
    # (Waits of a fraction of a minute keep the test fast; Graph sends whole minutes.)
    app.inject(throttle_fault(code=17, minutes=0.004, method="POST", path=r"/insights$"))
    app.inject(throttle_fault(code=80000, minutes=0.002, path=r"/campaigns$"))
    app.inject(server_error_fault(times=2, path=r"/\d+/insights$"))
    stats = CallStats()
    _run(pipeline, _config(server), stats)

    assert _insights(pipeline) == _truth(app, FIRST_DAY, RUN1_END)
    assert stats.retries == 4
    assert stats.errors == {"FacebookRequestError": 4}
    # Each throttle waited Graph's estimate in full (0.24 s + 0.12 s); the 5xx backed off (0.01 s base).
    assert 0.36 <= stats.waited_seconds < 1.0
    assert stats.calls == len(app.log)


def test_a_throttle_longer_than_the_ceiling_fails_without_retrying_early(
    graph: tuple[FacebookSandbox, SandboxServer], pipeline: dlt.Pipeline
) -> None:
    app, server = graph
    app.inject(throttle_fault(code=80000, minutes=6, path=r"/campaigns$"))
    stats = CallStats()
    with pytest.raises(PipelineStepFailed) as failed:
        _run(pipeline, _config(server), stats, "campaigns")
    error = find_cause(failed.value, RetryAfterTooLong)
    assert "asked to wait 360 s" in str(error) and "longer than the 300 s" in str(error)
    # No retry and no sleep: it used to be retried after a wait cut to max_throttle_wait_seconds.
    assert len(app.requests("GET", r"/campaigns$")) == 1
    assert stats.retries == 0 and stats.waited_seconds < 0.1
    # An account known to ask for longer waits can raise the ceiling; a negative one is refused.
    assert _config(server, max_throttle_wait_seconds=900).max_throttle_wait_seconds == 900
    with pytest.raises(SettingsError, match="max_throttle_wait_seconds"):
        _config(server, max_throttle_wait_seconds=-1)


def test_every_throttling_code_is_retried(graph: tuple[FacebookSandbox, SandboxServer], pipeline: dlt.Pipeline) -> None:
    app, server = graph
    codes = (4, 17, 32, 613, 80000, 80004)
    for code in codes:  # one after the other on the same edge: six throttles, six retries
        app.inject(throttle_fault(code=code, minutes=0.001, path=r"/campaigns$"))
    stats = CallStats()
    _run(pipeline, _config(server, max_attempts=len(codes) + 1), stats, "campaigns")
    assert stats.retries == len(codes)
    assert len(query(pipeline, f"SELECT id FROM {DATASET}.campaigns")) == len(app.objects("campaign"))


def test_throttle_wait_comes_from_the_usage_headers() -> None:
    buc = json.dumps({"123": [{"type": "ads_insights", "estimated_time_to_regain_access": 3}]})
    assert throttle_wait_seconds({"x-business-use-case-usage": buc}) == 180
    assert throttle_wait_seconds({"x-ad-account-usage": json.dumps({"reset_time_duration": 240})}) == 240
    assert (
        throttle_wait_seconds({"x-business-use-case-usage": buc, "x-ad-account-usage": '{"reset_time_duration": 9}'})
        == 180
    )
    # No estimate (or an unreadable one): the caller falls back to its own backoff.
    assert throttle_wait_seconds({"x-business-use-case-usage": "not json"}) is None
    assert throttle_wait_seconds({}) is None


def test_an_invalid_token_stops_at_once_with_a_clear_message(
    graph: tuple[FacebookSandbox, SandboxServer], pipeline: dlt.Pipeline
) -> None:
    app, server = graph
    stats = CallStats()
    secret = "EAAB-not-the-right-token-0123456789"
    with pytest.raises(PipelineStepFailed) as failed:
        _run(pipeline, _config(server, access_token=secret), stats)
    error = find_cause(failed.value, FacebookAuthError)
    assert "code 190" in str(error) and "FACEBOOK_ACCESS_TOKEN" in str(error)
    # Graph quoted the token back ("Malformed access token EAAB..."): it appears nowhere, traceback included.
    assert "Malformed access token" in str(error)
    assert secret not in "".join(traceback.format_exception(failed.value))
    assert all(secret not in str(e) for e in cause_chain(failed.value))  # dlt's trace file keeps every link
    # One call per resource that got as far as asking; none of them was retried.
    assert stats.retries == 0 and stats.calls == len(app.log) <= 4


def test_a_failed_run_moves_no_cursor_and_the_rerun_leaves_no_duplicates(
    graph: tuple[FacebookSandbox, SandboxServer], pipeline: dlt.Pipeline
) -> None:
    app, server = graph
    _run(pipeline, _config(server))
    first = _truth(app, FIRST_DAY, RUN1_END)
    campaign = app.objects("campaign")[0]
    old_name = campaign.name

    app.advance_to(RUN2_END)
    app.rename(campaign.id, "warehouse-first-q1-renamed")
    app.add_late_conversions(app.ads()[3].id, DAY("2024-01-08"), count=2)
    # Report rows keep failing past every retry.
    app.inject(server_error_fault(times=1000, path=r"/\d+/insights$"))
    with pytest.raises(PipelineStepFailed) as failed:
        _run(pipeline, _config(server, end_date=RUN2_END, max_attempts=3))
    find_cause(failed.value, RetriesExhausted)  # fails the test unless the retries ran out

    # Nothing of the failed run was loaded, and the cursor is where the first run left it.
    assert _cursor(pipeline) == RUN1_END
    assert _insights(pipeline) == first
    assert _campaign_names(pipeline)[campaign.id] == old_name

    app.clear_faults()
    _run(pipeline, _config(server, end_date=RUN2_END))
    assert _insights(pipeline) == {k: v for k, v in first.items() if k[1] < RUN2_SINCE} | _truth(
        app, RUN2_SINCE, RUN2_END
    )
    assert query(pipeline, f"SELECT count(*) FROM {DATASET}.insights") == [(len(_insights(pipeline)),)]
    assert _campaign_names(pipeline)[campaign.id] == "warehouse-first-q1-renamed"
    assert _cursor(pipeline) == RUN2_END


def test_a_failed_report_fails_the_run_with_graph_s_reason(
    graph: tuple[FacebookSandbox, SandboxServer], pipeline: dlt.Pipeline
) -> None:
    app, server = graph
    app.fail_reports(1)
    with pytest.raises(PipelineStepFailed) as failed:
        _run(pipeline, _config(server), None, "insights")
    error = find_cause(failed.value, FacebookAdsError)
    assert "Job Failed" in str(error) and "reduce the amount of data" in str(error)
    assert len(app.requests("GET", r"/v26\.0/\d+/$")) == 1  # one poll: a failed report is not waited on
    assert pipeline.state.get("sources", {}).get("facebook_ads") is None  # no cursor was written


def test_synchronous_insights_page_with_one_call_per_page(
    graph: tuple[FacebookSandbox, SandboxServer], pipeline: dlt.Pipeline
) -> None:
    app, server = graph
    account = next(iter(app.accounts))
    config = _config(server, insights_async=False, page_size=7, ad_account_ids=(account,), insights_chunk_days=4)
    _run(pipeline, config, None, "insights")

    assert _insights(pipeline) == {
        (r["ad_id"], r["date_start"]): {k: r[k] for k in ("impressions", "reach", "clicks", "spend", "actions")}
        for r in app.insight_rows(FIRST_DAY, RUN1_END, account)
    }
    # Three chunks (Jan 1-4, 5-8, 9-10), each paged by 7 rows; no request after a last page.
    calls = app.requests("GET", rf"/act_{account}/insights$")
    chunks = [
        (DAY("2024-01-01"), DAY("2024-01-04")),
        (DAY("2024-01-05"), DAY("2024-01-08")),
        (DAY("2024-01-09"), DAY("2024-01-10")),
    ]
    assert len(calls) == sum(math.ceil(len(app.insight_rows(a, b, account)) / 7) for a, b in chunks)
    assert not app.requests("GET", r"/me/adaccounts$")


def test_config_keeps_secrets_out_of_repr_and_reads_the_environment() -> None:
    config = FacebookAdsConfig.from_env(
        {
            "FACEBOOK_ACCESS_TOKEN": "EAAB-secret",
            "FACEBOOK_AD_ACCOUNT_ID": "123, act_456",
            "FACEBOOK_START_DATE": "2025-02-01",
            "FACEBOOK_ATTRIBUTION_WINDOW_DAYS": "28",
        }
    )
    assert config.ad_account_ids == ("act_123", "act_456")
    assert config.start_date == date(2025, 2, 1) and config.attribution_window_days == 28
    assert config.graph_url == "https://graph.facebook.com" and not config.sandbox
    assert "EAAB-secret" not in repr(config)
    with pytest.raises(SettingsError, match="FACEBOOK_ACCESS_TOKEN"):
        FacebookAdsConfig.from_env({})
    with pytest.raises(SettingsError, match="ad account id"):
        FacebookAdsConfig(access_token="x", ad_account_ids=("act_12a",))
    with pytest.raises(SettingsError, match="FACEBOOK_START_DATE"):
        FacebookAdsConfig.from_env({"FACEBOOK_ACCESS_TOKEN": "x", "FACEBOOK_START_DATE": "01/02/2025"})
    assert dataclasses.replace(config, attribution_window_days=0).attribution_window_days == 0


def test_an_empty_page_with_a_next_cursor_does_not_end_the_edge(
    graph: tuple[FacebookSandbox, SandboxServer], pipeline: dlt.Pipeline
) -> None:
    app, server = graph
    # Graph answers an empty page, with a next cursor, where a page's worth of objects was filtered out
    # server-side. Here the second page of each account: empty, pointing on to the same position (spelt
    # differently, as a new cursor is).
    empty = {
        "data": [],
        "paging": {"cursors": {"before": graph_cursor(2), "after": _equivalent_cursor(2)}, "next": "x"},
    }
    app.inject(Fault(Response.json(empty), times=2, path=r"/campaigns$", args={"after": graph_cursor(2)}))
    _run(pipeline, _config(server, page_size=2), None, "campaigns")
    # Every campaign: the empty page used to stop the paging, silently leaving the rest out.
    assert sorted(_campaign_names(pipeline)) == sorted(c.id for c in app.objects("campaign"))
    assert len(app.requests("GET", r"/campaigns$")) == 2 * 3  # per account: two pages and the empty one


def _equivalent_cursor(position: int) -> str:
    """Another cursor string for the stand-in's `position` (it reads "pos:02" as 2)."""
    return base64.urlsafe_b64encode(f"pos:0{position}".encode()).decode().rstrip("=")


def test_a_repeated_paging_cursor_fails_the_run_instead_of_paging_forever(
    graph: tuple[FacebookSandbox, SandboxServer], pipeline: dlt.Pipeline
) -> None:
    app, server = graph
    # The page after cursor 2 keeps pointing back at cursor 2 (times: enough to be "forever" here).
    repeated = {"data": [], "paging": {"cursors": {"after": graph_cursor(2)}, "next": "x"}}
    app.inject(Fault(Response.json(repeated), times=500, path=r"/campaigns$", args={"after": graph_cursor(2)}))
    with pytest.raises(PipelineStepFailed) as failed:
        _run(pipeline, _config(server, page_size=2), None, "campaigns")
    error = find_cause(failed.value, FacebookAdsError)
    assert "sent the paging cursor" in str(error) and "twice on campaigns" in str(error)
    # It stopped at the first repeat, before asking a third time (it used to ask 500 times, and forever
    # against a real loop).
    assert len(app.requests("GET", r"/campaigns$")) == 2
    assert pipeline.state.get("sources", {}).get("facebook_ads") is None  # nothing committed, no cursor


def test_the_access_token_in_a_failed_request_s_url_reaches_no_error_log_or_trace_file(
    pipeline: dlt.Pipeline, tmp_path: Path
) -> None:
    # Graph takes the token as a query parameter, and urllib3 names the URL when it cannot connect: a
    # port nothing listens on (a stand-in started, then closed).
    closed = SandboxServer(FacebookSandbox())
    port = closed.port
    closed.httpd.server_close()
    secret = "EAAB-a-real-looking-token-0123456789"
    config = FacebookAdsConfig.for_sandbox(
        f"http://127.0.0.1:{port}", end_date=RUN1_END, access_token=secret, max_attempts=2
    )
    with pytest.raises(PipelineStepFailed) as failed:
        _run(pipeline, config, None, "campaigns")
    error = find_cause(failed.value, RetriesExhausted)
    # Still says what happened and where, with the token left out.
    assert "Connection refused" in str(error) and "access_token=[access token]" in str(error)
    assert secret not in "".join(traceback.format_exception(failed.value))
    assert all(secret not in str(e) for e in cause_chain(failed.value))  # dlt walks every link
    assert secret not in str(pipeline.last_trace)
    for path in tmp_path.rglob("*"):  # dlt's trace file keeps the whole chain
        assert not path.is_file() or secret.encode() not in path.read_bytes(), path


@pytest.mark.parametrize(
    "answer",
    [
        Response(
            502, "<html><body><h1>502 Bad Gateway</h1>An error occurred.</body></html>", {"Content-Type": "text/html"}
        ),
        Response(200, b'{"data": [{"id": "1", "na', {"Content-Type": "application/json"}),
        Response(200, b'{"data": [], "name": "\xff\xfe"}', {"Content-Type": "application/json"}),
    ],
    ids=["an HTML error page", "JSON cut short", "not UTF-8"],
)
def test_an_answer_that_is_not_json_is_retried_and_then_named_clearly(
    graph: tuple[FacebookSandbox, SandboxServer], pipeline: dlt.Pipeline, answer: Response
) -> None:
    app, server = graph
    # Once: retried like a 5xx, and the data is complete.
    app.inject(Fault(answer, path=r"/campaigns$"))
    stats = CallStats()
    _run(pipeline, _config(server), stats, "campaigns")
    assert stats.errors == {"BadResponse": 1} and stats.retries == 1
    assert sorted(_campaign_names(pipeline)) == sorted(c.id for c in app.objects("campaign"))

    # Every time: the run fails saying what came back (it used to be the SDK's "string indices must be
    # integers", not retried), and the token stays out of it.
    app.inject(Fault(answer, path=r"/campaigns$", times=10))
    with pytest.raises(PipelineStepFailed) as failed:
        _run(pipeline, _config(server, max_attempts=2), None, "campaigns")
    error = str(find_cause(failed.value, RetriesExhausted))
    assert f"Graph answered GET /v26.0/act_{next(iter(app.accounts))}/campaigns with HTTP {answer.status}" in error
    assert "a body that is not JSON" in error and app.access_token not in error
