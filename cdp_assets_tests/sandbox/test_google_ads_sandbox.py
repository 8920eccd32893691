"""The Google Ads stand-in: its GAQL subset and its errors, through the real client on route B."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any

import pytest
from google.ads.googleads.errors import GoogleAdsException

from cdp_assets.sandbox.google_ads import (
    GoogleAdsSandbox,
    GoogleAdsSandboxServer,
    QueryError,
    parse_gaql,
)
from cdp_assets.sources.google_ads import GoogleAdsConfig
from cdp_assets.sources.google_ads_client import open_service

CUSTOMER = "1234567890"


@pytest.fixture
def stand_in() -> Iterator[tuple[GoogleAdsSandbox, Any]]:
    app = GoogleAdsSandbox(seed=3, batch_size=4)
    with GoogleAdsSandboxServer(app) as server:
        service, close = open_service(GoogleAdsConfig.for_sandbox(server.port))
        try:
            yield app, service
        finally:
            close()


def _search(service: Any, query: str) -> list[Any]:
    return [row for batch in service.search_stream(customer_id=CUSTOMER, query=query) for row in batch.results]


def test_parser_reads_the_subset() -> None:
    query = parse_gaql(
        "select campaign.id, metrics.clicks FROM campaign WHERE segments.date BETWEEN '2024-01-01' AND "
        "'2024-01-05' AND campaign.status IN ('ENABLED', PAUSED) ORDER BY metrics.clicks DESC LIMIT 3"
    )
    assert query.fields == ["campaign.id", "metrics.clicks"] and query.resource == "campaign"
    assert [(c.field, c.op, c.values) for c in query.conditions] == [
        ("segments.date", "BETWEEN", ["2024-01-01", "2024-01-05"]),
        ("campaign.status", "IN", ["ENABLED", "PAUSED"]),
    ]
    assert query.order_by == [("metrics.clicks", True)] and query.limit == 3
    with pytest.raises(QueryError):
        parse_gaql("SELECT campaign.id FROM campaign WHERE segments.date BETWEEN '2024-01-01'")


def test_daily_rows_stream_in_batches_with_int64_ids(stand_in: tuple[GoogleAdsSandbox, Any]) -> None:
    app, service = stand_in
    rows = _search(
        service,
        "SELECT campaign.id, segments.date, metrics.impressions FROM campaign "
        "WHERE segments.date BETWEEN '2024-01-01' AND '2024-01-03'",
    )
    expected = app.daily_metrics(date(2024, 1, 1), date(2024, 1, 3))
    assert sorted((r.campaign.id, r.segments.date, r.metrics.impressions) for r in rows) == sorted(
        (e["campaign_id"], e["date"].isoformat(), e["impressions"]) for e in expected
    )
    assert any(r.campaign.id > 2**53 for r in rows)


def test_during_last_n_days_ends_yesterday_and_filters_order_and_limit_apply(
    stand_in: tuple[GoogleAdsSandbox, Any],
) -> None:
    app, service = stand_in
    rows = _search(service, "SELECT segments.date, metrics.clicks FROM campaign WHERE segments.date DURING LAST_7_DAYS")
    days = {r.segments.date for r in rows}
    assert max(days) == (app.today - timedelta(days=1)).isoformat() and len(days) == 7
    enabled = _search(service, "SELECT campaign.name FROM campaign WHERE campaign.status = 'ENABLED'")
    assert {r.campaign.name for r in enabled} == {c.name for c in app.campaigns() if c.status == "ENABLED"}
    top = _search(
        service,
        "SELECT campaign.id, metrics.clicks FROM campaign WHERE segments.date DURING LAST_30_DAYS "
        "ORDER BY metrics.clicks DESC LIMIT 2",
    )
    assert len(top) == 2 and top[0].metrics.clicks >= top[1].metrics.clicks


def test_query_errors_come_back_as_google_ads_failures(stand_in: tuple[GoogleAdsSandbox, Any]) -> None:
    _app, service = stand_in
    with pytest.raises(GoogleAdsException) as unknown:
        _search(service, "SELECT campaign.colour FROM campaign")
    assert unknown.value.failure.errors[0].error_code.query_error.name == "UNRECOGNIZED_FIELD"
    with pytest.raises(GoogleAdsException) as unbounded:
        _search(service, "SELECT segments.date, metrics.clicks FROM campaign")
    assert unbounded.value.failure.errors[0].error_code.query_error.name == "EXPECTED_FILTERS_ON_DATE_RANGE"
