"""The Google Ads extract: campaigns, ad groups and daily campaign metrics over gRPC, with the real client.

`google_ads_source(config)` is a dlt source named `google_ads` with three resources:

- `campaigns` and `ad_groups`: merged on `id`, read in full on every run. GAQL has no "modified since"
  on these resources (change_status is limited to 30 days and is its own query), an account has at most
  a few thousand of them, and removed ones stay queryable with status REMOVED, so a full read is one
  cheap stream per customer and never misses a change.
- `campaign_metrics`: one row per customer, campaign and day (`segments.date`), merged on
  `(customer_id, campaign_id, date)` and incremental on `date` with a lookback. Google credits a
  conversion to the day of the click, up to the conversion window later (30 days by default), so each
  run re-reads the last `lookback_days` before the cursor and the merge replaces those days.

Ids are int64 in the API and stay integers here: the rows are read field by field from the proto-plus
messages, never through proto-JSON (which turns int64 into strings, saas-apis.md §7.4) or floats.

Two ways to connect, both with the library's `GoogleAdsServiceClient`:
- production: `GoogleAdsClient(credentials=..., developer_token=..., endpoint=...)` and `get_service`,
  the library's own TLS channel and interceptors (OAuth credentials from config: refresh token with
  client id/secret, or a ready access token);
- the sandbox (`insecure_channel=True`, loopback only): a plaintext channel wrapped in the same
  `MetadataInterceptor` and `ExceptionInterceptor` that `get_service` adds (saas-apis.md §5.2 route B).

The library does not retry. Every stream goes through `ApiPolicy`: RESOURCE_EXHAUSTED, INTERNAL,
UNAVAILABLE and DEADLINE_EXCEEDED back off (a "retry in N seconds" quota error waits that long in full: the
delay goes to the policy unchanged, and one above `max_quota_wait_seconds`, 300 s by default, raises
`RetryAfterTooLong` rather than retrying early, which the API would only refuse again);
an exhausted quota (the developer token's daily operations) stops the extract with `QuotaExhausted`;
any other API error (authentication, permission, a bad query) fails at once with Google's error code.
A stream is read to its end inside the retried call, so a stream that breaks half-way is read again
whole rather than leaving half a batch behind.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any, TypeVar

import dlt

from cdp_assets.settings import SettingsError
from cdp_assets.sources.daily_reports import date_chunks, lookback_cursor, report_days
from cdp_assets.sources.policy import ApiPolicy, CallStats, Decision

T = TypeVar("T")

API_VERSION = "v26"
DEFAULT_ENDPOINT = "googleads.googleapis.com:443"
_LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}


class GoogleAdsError(RuntimeError):
    """A Google Ads API error the extract cannot get past, with Google's error code and request id."""


@dataclass(frozen=True)
class GoogleAdsConfig:
    """Where and what to extract. Secrets are kept out of repr (and so out of logs and metadata)."""

    customer_ids: tuple[str, ...]
    developer_token: str = field(repr=False)
    login_customer_id: str | None = None
    # OAuth: a refresh token with the OAuth client's id and secret (production), or a ready access token.
    refresh_token: str | None = field(default=None, repr=False)
    client_id: str | None = None
    client_secret: str | None = field(default=None, repr=False)
    oauth_token: str | None = field(default=None, repr=False)
    endpoint: str | None = None  # host:port; None: the API's own endpoint
    # Plaintext gRPC with the library's interceptors: for the local stand-in only (loopback endpoints).
    insecure_channel: bool = False
    start_date: date | None = None  # the first day of metrics on a first run; None: two years back
    end_date: date | None = None  # the last day asked for; None: today (UTC)
    lookback_days: int = 30
    metrics_chunk_days: int = 90
    # The longest "retry in N seconds" that is honoured; a longer one fails the call with RetryAfterTooLong
    # (the policy's `max_retry_after`). It never shortens a wait.
    max_quota_wait_seconds: float = ApiPolicy.max_retry_after
    max_attempts: int = 6
    backoff_base_seconds: float = 1.0
    rate_per_second: float = 5.0
    stream_timeout_seconds: float = 600.0
    sandbox: bool = False

    def __post_init__(self) -> None:
        if not self.developer_token or not self.developer_token.strip():
            raise SettingsError("Google Ads needs a developer token (GOOGLE_ADS_DEVELOPER_TOKEN)")
        customers = tuple(normalize_customer_id(c) for c in self.customer_ids)
        if not customers:
            raise SettingsError("Google Ads needs at least one customer id (GOOGLE_ADS_CUSTOMER_ID)")
        object.__setattr__(self, "customer_ids", customers)
        if self.login_customer_id:
            object.__setattr__(self, "login_customer_id", normalize_customer_id(self.login_customer_id))
        if self.insecure_channel:
            host = (self.endpoint or "").rsplit(":", 1)[0]
            # A plaintext channel would send the developer token in the clear: only to this machine.
            if host not in _LOOPBACK:
                raise SettingsError(f"insecure_channel is for a local stand-in only, not {self.endpoint!r}")
        elif not (self.oauth_token or (self.refresh_token and self.client_id and self.client_secret)):
            raise SettingsError(
                "Google Ads needs OAuth credentials: GOOGLE_ADS_REFRESH_TOKEN with GOOGLE_ADS_CLIENT_ID and "
                "GOOGLE_ADS_CLIENT_SECRET (or an access token in GOOGLE_ADS_OAUTH_TOKEN)"
            )
        if self.lookback_days < 0:
            raise SettingsError("lookback_days must be 0 or more")
        if self.metrics_chunk_days < 1:
            raise SettingsError("metrics_chunk_days must be at least 1")
        if self.max_quota_wait_seconds < 0:
            raise SettingsError("max_quota_wait_seconds must be 0 or more")
        if self.start_date and self.end_date and self.start_date > self.end_date:
            raise SettingsError(f"start_date {self.start_date} is after end_date {self.end_date}")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> GoogleAdsConfig:
        """The google-ads library's own variable names: GOOGLE_ADS_DEVELOPER_TOKEN, GOOGLE_ADS_CLIENT_ID,
        GOOGLE_ADS_CLIENT_SECRET, GOOGLE_ADS_REFRESH_TOKEN, GOOGLE_ADS_LOGIN_CUSTOMER_ID,
        GOOGLE_ADS_ENDPOINT; plus GOOGLE_ADS_CUSTOMER_ID (comma-separated), GOOGLE_ADS_OAUTH_TOKEN,
        GOOGLE_ADS_START_DATE (YYYY-MM-DD) and GOOGLE_ADS_LOOKBACK_DAYS."""
        env = os.environ if environ is None else environ

        def get(name: str) -> str | None:
            value = (env.get(name) or "").strip()
            return value or None

        values: dict[str, Any] = {
            "customer_ids": tuple(c.strip() for c in (get("GOOGLE_ADS_CUSTOMER_ID") or "").split(",") if c.strip()),
            "developer_token": get("GOOGLE_ADS_DEVELOPER_TOKEN") or "",
            "login_customer_id": get("GOOGLE_ADS_LOGIN_CUSTOMER_ID"),
            "refresh_token": get("GOOGLE_ADS_REFRESH_TOKEN"),
            "client_id": get("GOOGLE_ADS_CLIENT_ID"),
            "client_secret": get("GOOGLE_ADS_CLIENT_SECRET"),
            "oauth_token": get("GOOGLE_ADS_OAUTH_TOKEN"),
            "endpoint": get("GOOGLE_ADS_ENDPOINT"),
        }
        if get("GOOGLE_ADS_START_DATE"):
            try:
                values["start_date"] = date.fromisoformat(get("GOOGLE_ADS_START_DATE") or "")
            except ValueError as exc:
                raise SettingsError("GOOGLE_ADS_START_DATE must be a date (YYYY-MM-DD)") from exc
        if get("GOOGLE_ADS_LOOKBACK_DAYS"):
            try:
                values["lookback_days"] = int(get("GOOGLE_ADS_LOOKBACK_DAYS") or "")
            except ValueError as exc:
                raise SettingsError("GOOGLE_ADS_LOOKBACK_DAYS must be an integer") from exc
        return cls(**{**values, **overrides})

    @classmethod
    def for_sandbox(cls, port: int, **overrides: Any) -> GoogleAdsConfig:
        """The local stand-in on 127.0.0.1:`port`: its customer and tokens, its days, short waits."""
        from cdp_assets.sandbox.google_ads_account import (
            SANDBOX_CUSTOMER_ID,
            SANDBOX_DEVELOPER_TOKEN,
            SANDBOX_FIRST_DAY,
            SANDBOX_LOGIN_CUSTOMER_ID,
            SANDBOX_TODAY,
        )

        values: dict[str, Any] = {
            "customer_ids": (SANDBOX_CUSTOMER_ID,),
            "developer_token": SANDBOX_DEVELOPER_TOKEN,
            "login_customer_id": SANDBOX_LOGIN_CUSTOMER_ID,
            "endpoint": f"127.0.0.1:{port}",
            "insecure_channel": True,
            "start_date": SANDBOX_FIRST_DAY,
            "end_date": SANDBOX_TODAY,
            "backoff_base_seconds": 0.01,
            "rate_per_second": 1000.0,
            "stream_timeout_seconds": 30.0,
            "sandbox": True,
        }
        return cls(**{**values, **overrides})


def normalize_customer_id(customer_id: str | int) -> str:
    """`123-456-7890` or `1234567890` as the API wants it: ten digits, no dashes."""
    digits = str(customer_id).strip().replace("-", "")
    if not digits.isdigit():
        raise SettingsError(f"a Google Ads customer id is digits (dashes allowed); got {customer_id!r}")
    return digits


# ---------------------------------------------------------------------------------------------- shaping


@dataclass(frozen=True)
class Column:
    name: str
    path: str  # the GAQL field, e.g. campaign.id
    convert: Callable[[Any], Any] | None = None


def _enum(value: Any) -> str:
    return getattr(value, "name", str(value))


def _read(row: Any, path: str) -> Any:
    node = row
    for part in path.split("."):
        # proto-plus renames fields that clash with Python names: ad_group.type is `type_`.
        node = getattr(node, part) if part != "type" else node.type_
    return node


def _rows(rows: Sequence[Any], columns: Sequence[Column]) -> list[dict[str, Any]]:
    out = []
    for row in rows:
        record = {}
        for column in columns:
            value = _read(row, column.path)
            record[column.name] = column.convert(value) if column.convert else value
        out.append(record)
    return out


def gaql(columns: Sequence[Column], resource: str, where: str = "") -> str:
    query = f"SELECT {', '.join(c.path for c in columns)} FROM {resource}"
    return f"{query} WHERE {where}" if where else query


CAMPAIGN_COLUMNS = (
    Column("id", "campaign.id"),
    Column("customer_id", "customer.id"),
    Column("name", "campaign.name"),
    Column("status", "campaign.status", _enum),
    Column("advertising_channel_type", "campaign.advertising_channel_type", _enum),
    Column("start_date_time", "campaign.start_date_time"),
    Column("end_date_time", "campaign.end_date_time"),
    Column("resource_name", "campaign.resource_name"),
)
AD_GROUP_COLUMNS = (
    Column("id", "ad_group.id"),
    Column("customer_id", "customer.id"),
    Column("campaign_id", "campaign.id"),
    Column("name", "ad_group.name"),
    Column("status", "ad_group.status", _enum),
    Column("type", "ad_group.type", _enum),
    Column("cpc_bid_micros", "ad_group.cpc_bid_micros"),
    Column("resource_name", "ad_group.resource_name"),
)
METRIC_COLUMNS = (
    Column("customer_id", "customer.id"),
    Column("campaign_id", "campaign.id"),
    Column("date", "segments.date", date.fromisoformat),
    Column("impressions", "metrics.impressions"),
    Column("clicks", "metrics.clicks"),
    Column("cost_micros", "metrics.cost_micros"),
    Column("conversions", "metrics.conversions"),
    Column("conversions_value", "metrics.conversions_value"),
)


def _typed(data_type: str) -> dict[str, Any]:
    # A new dict for every column: dlt writes the column's name into the hint it is given.
    return {"data_type": data_type}


# ----------------------------------------------------------------------------------------------- source

# The client library is imported when an extract first calls the API, not when the source is built (the
# code location builds every source to list its assets): see google_ads_client.


def _classify() -> Callable[[BaseException], Decision]:
    def decide(exc: BaseException) -> Decision:
        from cdp_assets.sources.google_ads_client import classify

        return classify()(exc)

    return decide


def _ads(config: GoogleAdsConfig, policy: ApiPolicy) -> Any:
    from cdp_assets.sources.google_ads_client import Ads

    return Ads(config, policy)


@dlt.source(name="google_ads")
def google_ads_source(config: GoogleAdsConfig, stats: CallStats | None = None) -> Any:
    """Campaigns, ad groups and daily campaign metrics of the configured customers.

    Build a fresh source for every run (dagster-notes P1); `stats` collects calls, retries and waits.
    """
    policy = ApiPolicy(
        name="google_ads",
        classify=_classify(),
        rate_per_second=config.rate_per_second,
        max_attempts=config.max_attempts,
        base_delay=config.backoff_base_seconds,
        # The policy honours an API-given wait up to the larger of these two, so our own backoff's cap
        # stays at or below the configured ceiling (the default 60 s otherwise).
        max_delay=min(ApiPolicy.max_delay, config.max_quota_wait_seconds),
        max_retry_after=config.max_quota_wait_seconds,
        stats=stats if stats is not None else CallStats(),
    )
    start_date, end_date = report_days(config.start_date, config.end_date, days_back=2 * 365)

    def dimension(name: str, columns: Sequence[Column], resource: str) -> Any:
        @dlt.resource(
            name=name,
            primary_key="id",
            write_disposition="merge",
            columns={c.name: _typed("bigint") for c in columns if c.name in ("id", "customer_id", "campaign_id")},
        )
        def fetch() -> Iterator[list[dict[str, Any]]]:
            with _ads(config, policy) as ads:
                for customer_id in config.customer_ids:
                    rows = _rows(ads.search(customer_id, gaql(columns, resource)), columns)
                    if rows:
                        yield rows

        return fetch

    @dlt.resource(
        name="campaign_metrics",
        primary_key=("customer_id", "campaign_id", "date"),
        write_disposition="merge",
        columns={
            "customer_id": _typed("bigint"),
            "campaign_id": _typed("bigint"),
            "date": _typed("date"),
            "impressions": _typed("bigint"),
            "clicks": _typed("bigint"),
            "cost_micros": _typed("bigint"),
            "conversions": _typed("double"),
            "conversions_value": _typed("double"),
        },
    )
    def campaign_metrics(
        day: dlt.sources.incremental[date] = lookback_cursor("date", start_date, config.lookback_days),
    ) -> Iterator[list[dict[str, Any]]]:
        since = day.start_value or start_date
        if since > end_date:
            return
        with _ads(config, policy) as ads:
            for customer_id in config.customer_ids:
                for chunk_start, chunk_end in date_chunks(since, end_date, config.metrics_chunk_days):
                    where = f"segments.date BETWEEN '{chunk_start.isoformat()}' AND '{chunk_end.isoformat()}'"
                    rows = _rows(ads.search(customer_id, gaql(METRIC_COLUMNS, "campaign", where)), METRIC_COLUMNS)
                    if rows:
                        yield rows

    return [
        dimension("campaigns", CAMPAIGN_COLUMNS, "campaign"),
        dimension("ad_groups", AD_GROUP_COLUMNS, "ad_group"),
        campaign_metrics,
    ]
