"""The Google Ads source: the real google-ads client over gRPC to the stand-in, real dlt into DuckDB."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import dlt
import grpc
import pytest
from dlt.pipeline.exceptions import PipelineStepFailed
from google.ads.googleads.errors import GoogleAdsException
from google.api_core.exceptions import ResourceExhausted

from cdp_assets.sandbox.google_ads import (
    BIG_CAMPAIGN_ID,
    GoogleAdsSandbox,
    GoogleAdsSandboxServer,
    authentication_fault,
    internal_fault,
    quota_fault,
    resource_exhausted_fault,
)
from cdp_assets.settings import SettingsError
from cdp_assets.sources.google_ads import GoogleAdsConfig, GoogleAdsError, google_ads_source
from cdp_assets.sources.google_ads_client import build_google_ads_client
from cdp_assets.sources.policy import CallStats, QuotaExhausted, RetryAfterTooLong
from cdp_assets_tests.sources.helpers import duckdb_pipeline, find_cause, query

DATASET = "raw_google_ads"
DAY = date.fromisoformat
FIRST_DAY, RUN1_END, RUN2_END = DAY("2024-01-01"), DAY("2024-01-10"), DAY("2024-01-14")
LOOKBACK = 7
RUN2_SINCE = DAY("2024-01-03")  # the cursor (RUN1_END) less the lookback
METRICS = r"FROM campaign WHERE segments\.date"


@pytest.fixture
def ads() -> Iterator[tuple[GoogleAdsSandbox, GoogleAdsSandboxServer]]:
    # Batches of 7 rows: every query of the test streams several messages.
    app = GoogleAdsSandbox(seed=7, today=RUN1_END, batch_size=7)
    with GoogleAdsSandboxServer(app) as server:
        yield app, server


@pytest.fixture
def pipeline(tmp_path: Path) -> dlt.Pipeline:
    return duckdb_pipeline(tmp_path, DATASET)


def _config(server: GoogleAdsSandboxServer, **overrides: Any) -> GoogleAdsConfig:
    return GoogleAdsConfig.for_sandbox(
        server.port, **{"end_date": RUN1_END, "lookback_days": LOOKBACK, "metrics_chunk_days": 4, **overrides}
    )


def _run(pipeline: dlt.Pipeline, config: GoogleAdsConfig, stats: CallStats | None = None) -> None:
    pipeline.run(google_ads_source(config, stats))  # a fresh source object for every run (dagster-notes P1)


_METRIC_COLUMNS = ("impressions", "clicks", "cost_micros", "conversions", "conversions_value")


def _metrics(pipeline: dlt.Pipeline) -> dict[tuple[int, int, date], tuple[Any, ...]]:
    loaded: dict[tuple[int, int, date], tuple[Any, ...]] = {}
    for row in query(
        pipeline, f"SELECT customer_id, campaign_id, date, {', '.join(_METRIC_COLUMNS)} FROM {DATASET}.campaign_metrics"
    ):
        assert row[:3] not in loaded, f"duplicate metrics row {row[:3]}"
        loaded[row[:3]] = row[3:]
    return loaded


def _truth(app: GoogleAdsSandbox, since: date, until: date) -> dict[tuple[int, int, date], tuple[Any, ...]]:
    return {
        (r["customer_id"], r["campaign_id"], r["date"]): tuple(r[c] for c in _METRIC_COLUMNS)
        for r in app.daily_metrics(since, until)
    }


def _campaign_names(pipeline: dlt.Pipeline) -> dict[int, str]:
    return dict(query(pipeline, f"SELECT id, name FROM {DATASET}.campaigns"))


def _cursor(pipeline: dlt.Pipeline) -> date:
    return pipeline.state["sources"]["google_ads"]["resources"]["campaign_metrics"]["incremental"]["date"]["last_value"]


def _ranges(app: GoogleAdsSandbox, since_index: int = 0) -> list[tuple[str, str]]:
    return [
        re.search(r"BETWEEN '([\d-]+)' AND '([\d-]+)'", r.query).groups()  # type: ignore[union-attr,misc]
        for r in app.requests("campaign")[since_index:]
        if "segments.date" in r.query
    ]


def test_first_run_loads_everything_and_the_next_run_brings_late_conversions_renames_and_new_days(
    ads: tuple[GoogleAdsSandbox, GoogleAdsSandboxServer], pipeline: dlt.Pipeline
) -> None:
    app, server = ads
    stats = CallStats()
    _run(pipeline, _config(server), stats)

    # Dimensions in full, the removed campaign included; ids are BIGINT and exact even above 2**53.
    assert sorted(
        query(pipeline, f"SELECT id, customer_id, name, status, advertising_channel_type FROM {DATASET}.campaigns")
    ) == sorted((c.id, c.customer_id, c.name, c.status, c.channel) for c in app.campaigns())
    assert sorted(query(pipeline, f"SELECT id, campaign_id, name, status, type FROM {DATASET}.ad_groups")) == sorted(
        (g.id, g.campaign_id, g.name, g.status, g.type) for g in app.ad_groups()
    )
    types = dict(
        query(
            pipeline,
            "SELECT column_name, data_type FROM information_schema.columns "
            f"WHERE table_schema = '{DATASET}' AND table_name = 'campaign_metrics'",
        )
    )
    assert types["customer_id"] == types["campaign_id"] == types["cost_micros"] == "BIGINT"
    assert types["date"] == "DATE"
    first = _truth(app, FIRST_DAY, RUN1_END)
    assert _metrics(pipeline) == first
    assert any(key[1] == BIG_CAMPAIGN_ID for key in first)
    assert _cursor(pipeline) == RUN1_END

    # One stream per dimension and one per 4-day chunk of metrics; each call carried the developer
    # token and the manager id (and no OAuth header: the sandbox channel has no call credentials).
    assert len(app.requests("ad_group")) == 1
    assert _ranges(app) == [("2024-01-01", "2024-01-04"), ("2024-01-05", "2024-01-08"), ("2024-01-09", "2024-01-10")]
    assert len(app.log) == stats.calls == 5 and stats.retries == 0
    for request in app.log:
        assert request.customer_id == "1234567890"
        assert request.metadata["developer-token"] == app.developer_token
        assert request.metadata["login-customer-id"] == "1112223333"
        assert "authorization" not in request.metadata

    # Later: four more days, a rename, conversions credited to a day inside the lookback and to one before it.
    app.advance_to(RUN2_END)
    app.rename_campaign(BIG_CAMPAIGN_ID, "segment-alternative-2024")
    brand = next(c for c in app.campaigns() if c.name == "cdp-brand")
    app.add_late_conversions(BIG_CAMPAIGN_ID, DAY("2024-01-06"), 2.5)
    app.add_late_conversions(brand.id, DAY("2024-01-02"), 3.0)
    before = len(app.log)

    _run(pipeline, _config(server, end_date=RUN2_END))

    assert _ranges(app, before) == [
        ("2024-01-03", "2024-01-06"),
        ("2024-01-07", "2024-01-10"),
        ("2024-01-11", "2024-01-14"),
    ]
    expected = {k: v for k, v in first.items() if k[2] < RUN2_SINCE} | _truth(app, RUN2_SINCE, RUN2_END)
    loaded = _metrics(pipeline)
    assert loaded == expected
    key = (1234567890, BIG_CAMPAIGN_ID, DAY("2024-01-06"))
    assert loaded[key][3] == first[key][3] + 2.5
    # Jan 2 lies before this run's lookback: it keeps what the first run saw.
    assert loaded[(1234567890, brand.id, DAY("2024-01-02"))] == first[(1234567890, brand.id, DAY("2024-01-02"))]
    assert _campaign_names(pipeline)[BIG_CAMPAIGN_ID] == "segment-alternative-2024"
    assert query(pipeline, f"SELECT count(*), count(DISTINCT id) FROM {DATASET}.campaigns") == [(5, 5)]
    assert _cursor(pipeline) == RUN2_END


def test_resource_exhausted_internal_and_rate_quota_are_retried_and_nothing_is_duplicated(
    ads: tuple[GoogleAdsSandbox, GoogleAdsSandboxServer], pipeline: dlt.Pipeline
) -> None:
    app, server = ads
    app.inject(resource_exhausted_fault(query=r"FROM campaign$"))
    # A stream that breaks after one batch of seven rows: the retry reads it again whole.
    app.inject(internal_fault(after_batches=1, query=METRICS))
    app.inject(quota_fault("RESOURCE_TEMPORARILY_EXHAUSTED", retry_seconds=0.3, query="FROM ad_group"))
    stats = CallStats()
    _run(pipeline, _config(server, metrics_chunk_days=90), stats)

    assert _metrics(pipeline) == _truth(app, FIRST_DAY, RUN1_END)
    assert query(pipeline, f"SELECT count(*) FROM {DATASET}.campaign_metrics") == [
        (len(_truth(app, FIRST_DAY, RUN1_END)),)
    ]
    assert stats.retries == 3 and stats.calls == len(app.log) == 6
    assert stats.errors == {"ResourceExhausted": 2, "InternalServerError": 1}
    # The quota error's retry delay was waited in full; the other two backed off (0.01 s base).
    assert 0.3 <= stats.waited_seconds < 1.0


def test_a_quota_retry_delay_is_waited_in_full_not_cut_to_a_cap_of_our_own(
    ads: tuple[GoogleAdsSandbox, GoogleAdsSandboxServer], pipeline: dlt.Pipeline
) -> None:
    app, server = ads
    app.inject(quota_fault("RESOURCE_TEMPORARILY_EXHAUSTED", retry_seconds=0.4, query="FROM ad_group"))
    stats = CallStats()
    # A small backoff of our own must not shorten the API's delay (it used to be min(delay, cap)).
    _run(pipeline, _config(server, backoff_base_seconds=0.01), stats)
    assert stats.retries == 1
    assert stats.waited_seconds >= 0.4
    assert len(app.requests("ad_group")) == 2


def test_a_quota_retry_delay_beyond_the_ceiling_fails_without_retrying_early(
    ads: tuple[GoogleAdsSandbox, GoogleAdsSandboxServer], pipeline: dlt.Pipeline
) -> None:
    app, server = ads
    app.inject(quota_fault("RESOURCE_TEMPORARILY_EXHAUSTED", retry_seconds=400, query="FROM ad_group"))
    stats = CallStats()
    with pytest.raises(PipelineStepFailed) as failed:
        _run(pipeline, _config(server), stats)
    error = find_cause(failed.value, RetryAfterTooLong)
    assert "asked to wait 400 s" in str(error) and "longer than the 300 s" in str(error)
    # One call, no retry, nothing slept: it used to be retried at once after a wait cut to the cap.
    assert len(app.requests("ad_group")) == 1
    assert stats.retries == 0 and stats.waited_seconds < 0.1
    # The ceiling is the config's, for an account known to ask for longer waits.
    with pytest.raises(SettingsError, match="max_quota_wait_seconds"):
        _config(server, max_quota_wait_seconds=-1)


@pytest.mark.parametrize(
    ("status", "raised"),
    [
        # google-ads 34 turns a failure into GoogleAdsException for every status but INTERNAL and
        # RESOURCE_EXHAUSTED; a quota error on RESOURCE_EXHAUSTED comes as api_core's ResourceExhausted
        # with the GoogleAdsFailure left in the trailers. The source reads it in both shapes.
        (grpc.StatusCode.RESOURCE_EXHAUSTED, ResourceExhausted),
        (grpc.StatusCode.PERMISSION_DENIED, GoogleAdsException),
    ],
    ids=["as ResourceExhausted with the failure in its trailers", "as GoogleAdsException"],
)
def test_an_exhausted_quota_stops_keeps_the_cursor_and_the_rerun_leaves_no_duplicates(
    ads: tuple[GoogleAdsSandbox, GoogleAdsSandboxServer],
    pipeline: dlt.Pipeline,
    status: grpc.StatusCode,
    raised: type[Exception],
) -> None:
    app, server = ads
    _run(pipeline, _config(server))
    first = _truth(app, FIRST_DAY, RUN1_END)

    app.advance_to(RUN2_END)
    app.rename_campaign(BIG_CAMPAIGN_ID, "renamed-while-over-quota")
    app.add_late_conversions(BIG_CAMPAIGN_ID, DAY("2024-01-09"), 1.0)
    # The developer token's daily operations run out on the second chunk of metrics.
    app.inject(quota_fault("RESOURCE_EXHAUSTED", status=status, query=r"BETWEEN '2024-01-07'"))
    stats = CallStats()
    with pytest.raises(PipelineStepFailed) as failed:
        _run(pipeline, _config(server, end_date=RUN2_END), stats)
    stop = find_cause(failed.value, QuotaExhausted)
    assert "quota is exhausted" in str(stop) and "cursor did not move" in str(stop)
    assert isinstance(stop.__cause__, raised)
    assert app.developer_token not in str(failed.value)
    assert stats.retries == 0

    assert _cursor(pipeline) == RUN1_END
    assert _metrics(pipeline) == first
    assert _campaign_names(pipeline)[BIG_CAMPAIGN_ID] == "segment-alternative"

    _run(pipeline, _config(server, end_date=RUN2_END))
    assert _metrics(pipeline) == {k: v for k, v in first.items() if k[2] < RUN2_SINCE} | _truth(
        app, RUN2_SINCE, RUN2_END
    )
    assert _campaign_names(pipeline)[BIG_CAMPAIGN_ID] == "renamed-while-over-quota"
    assert _cursor(pipeline) == RUN2_END


def test_authentication_errors_fail_at_once_with_google_s_error_code(
    ads: tuple[GoogleAdsSandbox, GoogleAdsSandboxServer], pipeline: dlt.Pipeline
) -> None:
    app, server = ads
    app.inject(authentication_fault("OAUTH_TOKEN_EXPIRED"))
    stats = CallStats()
    with pytest.raises(PipelineStepFailed) as failed:
        _run(pipeline, _config(server), stats)
    error = find_cause(failed.value, GoogleAdsError)
    assert "authentication_error.OAUTH_TOKEN_EXPIRED" in str(error) and "GOOGLE_ADS_REFRESH_TOKEN" in str(error)
    assert stats.retries == 0

    # A wrong developer token is refused by the stand-in itself, the way the API does.
    with pytest.raises(PipelineStepFailed) as failed:
        _run(pipeline, _config(server, developer_token="not-the-token"))
    error = find_cause(failed.value, GoogleAdsError)
    assert "DEVELOPER_TOKEN_INVALID" in str(error)
    assert "not-the-token" not in str(failed.value)


def test_production_client_is_built_from_config_without_touching_the_network() -> None:
    config = GoogleAdsConfig(
        customer_ids=("123-456-7890",),
        developer_token="dev-token-secret",
        login_customer_id="111-222-3333",
        refresh_token="refresh-secret",
        client_id="client-id.apps.googleusercontent.com",
        client_secret="client-secret",
    )
    client = build_google_ads_client(config)
    assert client.developer_token == "dev-token-secret"
    assert client.login_customer_id == "1112223333" and config.customer_ids == ("1234567890",)
    assert client.endpoint is None and client.use_proto_plus  # the library's own endpoint, over TLS
    assert client.credentials.refresh_token == "refresh-secret" and client.credentials.token is None
    for secret in ("dev-token-secret", "refresh-secret", "client-secret"):
        assert secret not in repr(config)


def test_config_from_env_and_its_guards() -> None:
    config = GoogleAdsConfig.from_env(
        {
            "GOOGLE_ADS_CUSTOMER_ID": "123-456-7890,9876543210",
            "GOOGLE_ADS_DEVELOPER_TOKEN": "dev",
            "GOOGLE_ADS_OAUTH_TOKEN": "ya29.token",
            "GOOGLE_ADS_LOOKBACK_DAYS": "14",
        }
    )
    assert config.customer_ids == ("1234567890", "9876543210") and config.lookback_days == 14
    assert "ya29.token" not in repr(config)
    with pytest.raises(SettingsError, match="customer id"):
        GoogleAdsConfig.from_env({"GOOGLE_ADS_DEVELOPER_TOKEN": "dev", "GOOGLE_ADS_OAUTH_TOKEN": "t"})
    with pytest.raises(SettingsError, match="OAuth"):
        GoogleAdsConfig.from_env({"GOOGLE_ADS_DEVELOPER_TOKEN": "dev", "GOOGLE_ADS_CUSTOMER_ID": "1"})
    # A plaintext channel would send the developer token in the clear: loopback only.
    with pytest.raises(SettingsError, match="local stand-in only"):
        GoogleAdsConfig(
            customer_ids=("1",), developer_token="dev", endpoint="ads.example.com:80", insecure_channel=True
        )
