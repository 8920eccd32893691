"""The Facebook Ads extract: campaigns, ad sets, ads and daily ad-level insights, with the real SDK.

`facebook_ads_source(config)` is a dlt source named `facebook_ads` with four resources:

- `campaigns`, `adsets`, `ads`: merged on `id`, fetched incrementally by `updated_time`. Graph filters
  an edge server-side (`filtering` on `updated_time`), so a daily run reads only what changed: a rename,
  a status change, a new ad. Deleted and archived objects are asked for explicitly (Graph hides them by
  default), so a deletion arrives as a status change instead of the row silently going stale. Times are
  parsed into aware datetimes before dlt compares them: Graph writes them in the ad account's time zone
  (`-0800`), and such strings do not sort as times.
- `insights`: one row per ad and day (`level=ad`, `time_increment=1`), merged on `(ad_id, date_start)`,
  incremental on `date_start` with an attribution lookback. Facebook keeps attributing conversions to
  the day of the click for days afterwards (7 days for the default 7-day-click setting), so each run
  re-reads the last `attribution_window_days` before the cursor and the merge replaces those days. The
  cursor is a `date`, never a string (the public verified source compares an ISO datetime string with
  `date_start` and loses its first day, saas-apis.md §7.3).

The SDK is used without its globals: a `FacebookSession` whose `GRAPH` is set on the instance and a
`FacebookAdsApi` handed to every object, never `FacebookAdsApi.init()` (whose crash reporter would post
tracebacks to Graph). The SDK never retries, so every call goes through `ApiPolicy`: throttling codes
wait for `estimated_time_to_regain_access` in full (the wait Graph gives goes to the policy unchanged: a
wait above `max_throttle_wait_seconds`, 300 s by default, raises `RetryAfterTooLong` rather than retrying
early, which Graph would only throttle again), transient and 5xx errors back off, an invalid token (code
190) stops at once with a message that says what to do.

Insight rows keep Graph's names; the string numbers become integers and decimals, and `actions` becomes
the child table `insights__actions` (action_type, value), which every engine can join.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, TypeVar
from urllib.parse import quote, quote_plus, urlsplit

import dlt
import requests
from facebook_business.adobjects.adaccount import AdAccount
from facebook_business.adobjects.adreportrun import AdReportRun
from facebook_business.adobjects.user import User
from facebook_business.api import Cursor, FacebookAdsApi
from facebook_business.exceptions import FacebookRequestError
from facebook_business.session import FacebookSession

from cdp_assets.settings import SettingsError
from cdp_assets.sources.daily_reports import date_chunks, lookback_cursor, report_days
from cdp_assets.sources.facebook_graph import AD_FIELDS, ADSET_FIELDS, CAMPAIGN_FIELDS, INSIGHT_FIELDS, TIME_FORMAT
from cdp_assets.sources.policy import ApiPolicy, CallStats, Decision, Retry
from cdp_assets.sources.responses import BadResponse, parse_json

T = TypeVar("T")

GRAPH_URL = "https://graph.facebook.com"
API_VERSION = "v26.0"

# Graph's throttling codes (saas-apis.md §4.3): app, user, page, API-specific, and Business Use Case.
THROTTLE_CODES = frozenset({4, 17, 32, 613, *range(80000, 80015)})
# 1 "unknown error" and 2 "service temporarily unavailable" are Graph's way of saying "try again".
TRANSIENT_CODES = frozenset({1, 2})
AUTH_CODE = 190
PERMISSION_CODES = frozenset({10, 200, 294})

# Every effective status an edge can filter on, per kind: asking for all of them is how deleted and
# archived objects come back (an edge leaves them out by default).
_STATUSES = {
    "campaigns": ("ACTIVE", "PAUSED", "DELETED", "ARCHIVED", "IN_PROCESS", "WITH_ISSUES"),
    "adsets": ("ACTIVE", "PAUSED", "DELETED", "ARCHIVED", "IN_PROCESS", "WITH_ISSUES", "CAMPAIGN_PAUSED"),
    "ads": (
        "ACTIVE",
        "PAUSED",
        "DELETED",
        "ARCHIVED",
        "IN_PROCESS",
        "WITH_ISSUES",
        "CAMPAIGN_PAUSED",
        "ADSET_PAUSED",
        "DISAPPROVED",
        "PENDING_REVIEW",
        "PREAPPROVED",
        "PENDING_BILLING_INFO",
    ),
}
_REPORT_STATUS_FIELDS = ["async_status", "async_percent_completion", "error_code", "error_message"]
# The SDK's method for each edge.
_GETTERS = {"campaigns": "get_campaigns", "adsets": "get_ad_sets", "ads": "get_ads"}
_TIME_FIELDS = ("created_time", "updated_time", "start_time", "stop_time", "end_time")
_MONEY_FIELDS = ("daily_budget", "lifetime_budget")  # in the account currency's minor unit, as strings


class FacebookAdsError(RuntimeError):
    """A Graph error the extract cannot get past, with Graph's code and message."""


class FacebookAuthError(FacebookAdsError):
    """Graph rejected the access token (code 190): retrying cannot help."""


@dataclass(frozen=True)
class FacebookAdsConfig:
    """Where and what to extract. Secrets are kept out of repr (and so out of logs and metadata)."""

    access_token: str = field(repr=False)
    # "act_123" or "123"; empty: every account the token can see (GET /me/adaccounts).
    ad_account_ids: tuple[str, ...] = ()
    # The first day of insights on a first run; None: three years back (Graph keeps 37 months).
    start_date: date | None = None
    # The last day asked for; None: today (UTC). Today's numbers are partial: the lookback revisits them.
    end_date: date | None = None
    attribution_window_days: int = 7
    page_size: int = 100
    # Async reports (POST insights, poll, page) are what Graph recommends for anything but tiny ranges.
    insights_async: bool = True
    # One report per this many days, which bounds what one report has to produce on a first run.
    insights_chunk_days: int = 30
    report_poll_seconds: float = 5.0
    report_timeout_seconds: float = 900.0
    # The longest wait Graph may ask for (usage headers) that is honoured; a longer one fails the call with
    # RetryAfterTooLong (the policy's `max_retry_after`). It never shortens a wait.
    max_throttle_wait_seconds: float = ApiPolicy.max_retry_after
    max_attempts: int = 6
    backoff_base_seconds: float = 1.0
    rate_per_second: float = 4.0
    request_timeout_seconds: float = 120.0
    graph_url: str = GRAPH_URL
    api_version: str = API_VERSION
    sandbox: bool = False

    def __post_init__(self) -> None:
        if not self.access_token or not self.access_token.strip():
            raise SettingsError("Facebook Ads needs an access token (FACEBOOK_ACCESS_TOKEN)")
        object.__setattr__(self, "ad_account_ids", tuple(normalize_account_id(a) for a in self.ad_account_ids))
        if self.attribution_window_days < 0:
            raise SettingsError("attribution_window_days must be 0 or more")
        if not 1 <= self.page_size <= 5000:
            raise SettingsError("page_size must be between 1 and 5000")
        if self.insights_chunk_days < 1:
            raise SettingsError("insights_chunk_days must be at least 1")
        if self.max_throttle_wait_seconds < 0:
            raise SettingsError("max_throttle_wait_seconds must be 0 or more")
        if urlsplit(self.graph_url).scheme not in ("http", "https"):
            raise SettingsError(f"graph_url must be an http(s) URL, got {self.graph_url!r}")
        if self.start_date and self.end_date and self.start_date > self.end_date:
            raise SettingsError(f"start_date {self.start_date} is after end_date {self.end_date}")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> FacebookAdsConfig:
        """FACEBOOK_ACCESS_TOKEN (required), FACEBOOK_AD_ACCOUNT_ID (comma-separated; empty: all the
        token sees), FACEBOOK_START_DATE (YYYY-MM-DD), FACEBOOK_ATTRIBUTION_WINDOW_DAYS."""
        env = os.environ if environ is None else environ
        token = (env.get("FACEBOOK_ACCESS_TOKEN") or "").strip()
        if not token:
            raise SettingsError("FACEBOOK_ACCESS_TOKEN is not set")
        accounts = tuple(a.strip() for a in (env.get("FACEBOOK_AD_ACCOUNT_ID") or "").split(",") if a.strip())
        values: dict[str, Any] = {"access_token": token, "ad_account_ids": accounts}
        if env.get("FACEBOOK_START_DATE"):
            values["start_date"] = _env_date("FACEBOOK_START_DATE", env["FACEBOOK_START_DATE"])
        if env.get("FACEBOOK_ATTRIBUTION_WINDOW_DAYS"):
            values["attribution_window_days"] = _env_int(
                "FACEBOOK_ATTRIBUTION_WINDOW_DAYS", env["FACEBOOK_ATTRIBUTION_WINDOW_DAYS"]
            )
        return cls(**{**values, **overrides})

    @classmethod
    def for_sandbox(cls, url: str, **overrides: Any) -> FacebookAdsConfig:
        """The local stand-in at `url`: its token and accounts, its days, and waits short enough for tests."""
        from cdp_assets.sandbox.facebook import SANDBOX_ACCESS_TOKEN, SANDBOX_FIRST_DAY, SANDBOX_TODAY

        values: dict[str, Any] = {
            "access_token": SANDBOX_ACCESS_TOKEN,
            "graph_url": url,
            "start_date": SANDBOX_FIRST_DAY,
            "end_date": SANDBOX_TODAY,
            "report_poll_seconds": 0.05,
            "backoff_base_seconds": 0.01,
            "rate_per_second": 1000.0,
            "request_timeout_seconds": 10.0,
            "sandbox": True,
        }
        return cls(**{**values, **overrides})


def normalize_account_id(account_id: str | int) -> str:
    text = str(account_id).strip()
    digits = text.removeprefix("act_")
    if not digits.isdigit():
        raise SettingsError(f"a Facebook ad account id is digits, optionally prefixed act_; got {account_id!r}")
    return f"act_{digits}"


def _env_date(name: str, raw: str) -> date:
    try:
        return date.fromisoformat(raw.strip())
    except ValueError as exc:
        raise SettingsError(f"{name} must be a date (YYYY-MM-DD), got {raw!r}") from exc


def _env_int(name: str, raw: str) -> int:
    try:
        return int(raw)
    except ValueError as exc:
        raise SettingsError(f"{name} must be an integer, got {raw!r}") from exc


# -------------------------------------------------------------------------------------------- retries


def throttle_wait_seconds(headers: Mapping[str, str] | None) -> float | None:
    """Seconds until Graph lets us back in, from its usage headers; None when they do not say.

    `x-business-use-case-usage` gives `estimated_time_to_regain_access` in minutes per business and use
    case; `x-ad-account-usage` gives `reset_time_duration` in seconds. The longest wait wins: retrying
    before the slowest bucket refills only earns another throttle.
    """
    if not headers:
        return None
    waits: list[float] = []
    raw = headers.get("x-business-use-case-usage")
    if raw:
        try:
            usage = json.loads(raw)
            for entries in usage.values():
                for entry in entries if isinstance(entries, list) else [entries]:
                    minutes = entry.get("estimated_time_to_regain_access")
                    if minutes:
                        waits.append(float(minutes) * 60)
        except (ValueError, AttributeError, TypeError):
            pass
    raw = headers.get("x-ad-account-usage")
    if raw:
        try:
            seconds = json.loads(raw).get("reset_time_duration")
            if seconds:
                waits.append(float(seconds))
        except (ValueError, AttributeError, TypeError):
            pass
    return max(waits) if waits else None


def classify() -> Callable[[BaseException], Decision]:
    def decide(exc: BaseException) -> Decision:
        if isinstance(exc, FacebookRequestError):
            code = exc.api_error_code()
            if code in THROTTLE_CODES:
                # Graph's own estimate, unshortened: the policy waits it in full or, beyond its ceiling,
                # refuses (a retry before the bucket refills only earns another throttle). No estimate:
                # the policy's own exponential backoff.
                return Retry(throttle_wait_seconds(exc.http_headers()))
            if code == AUTH_CODE or code in PERMISSION_CODES:
                return None
            if code in TRANSIENT_CODES or exc.api_transient_error() or (exc.http_status() or 0) >= 500:
                return Retry()
            return None
        if isinstance(exc, requests.ConnectionError | requests.Timeout | BadResponse):
            return Retry()
        return None

    return decide


def _require_json(response: requests.Response, *args: Any, **kwargs: Any) -> None:
    """A response hook: Graph answers everything, errors included, in JSON. Anything else (a proxy's HTML
    page, a body cut short) raises BadResponse before the SDK reads it: the SDK turns such a body into a
    `TypeError` ("string indices must be integers") or, for a page, into objects built from a string."""
    parse_json("Graph", response)


def _redact(text: str, token: str) -> str:
    """`text` with the access token (as written, or URL-encoded as in a request URL) left out."""
    for form in {token, quote(token, safe=""), quote_plus(token)}:
        text = text.replace(form, "[access token]")
    return text


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """The error and every error it was raised from or while handling (what dlt and Dagster record)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _mentions(exc: BaseException, token: str) -> bool:
    return any(_redact(str(e), token) != str(e) for e in _chain(exc))


def _scrubbed(exc: BaseException, token: str) -> BaseException:
    """An error of the same kind saying the same, the token left out of it and of what caused it."""
    message = _redact(str(exc), token)
    for cause in list(_chain(exc))[1:]:
        text = _redact(str(cause), token)
        if text not in message:  # a wrapper usually quotes what it wraps: say it once
            message += f" (caused by {type(cause).__name__}: {text})"
    try:
        scrubbed = type(exc)(message)
    except Exception:  # a class that takes other arguments: the source's own error says it
        return FacebookAdsError(f"{type(exc).__name__}: {message}")
    return scrubbed if str(scrubbed) == message else FacebookAdsError(f"{type(exc).__name__}: {message}")


def _clear_error(exc: FacebookRequestError, token: str) -> FacebookAdsError:
    code, subcode = exc.api_error_code(), exc.api_error_subcode()
    # Graph quotes a malformed token back in its message: never let it through.
    message = _redact(exc.api_error_message() or exc.get_message() or "", token)
    detail = f"code {code}" + (f", subcode {subcode}" if subcode else "")
    if code == AUTH_CODE:
        return FacebookAuthError(
            f"Facebook rejected the access token ({detail}): {message}. Create a new token for the system user "
            "(with ads_read) and set FACEBOOK_ACCESS_TOKEN; the extract did not retry."
        )
    if code in PERMISSION_CODES:
        return FacebookAdsError(
            f"the access token lacks a permission ({detail}): {message}. Grant the system user ads_read on the "
            "ad account."
        )
    call = exc.request_context() or {}
    return FacebookAdsError(f"Graph error ({detail}) on {call.get('method')} {call.get('path')}: {message}")


# --------------------------------------------------------------------------------------------- client


class _Graph:
    """The SDK objects and the call policy of one extract."""

    def __init__(self, config: FacebookAdsConfig, stats: CallStats) -> None:
        self.config = config
        session = FacebookSession(access_token=config.access_token, timeout=config.request_timeout_seconds)
        # On the instance, not the class: other code in the process keeps talking to its own Graph.
        session.GRAPH = config.graph_url.rstrip("/")
        session.requests.hooks["response"].append(_require_json)
        self.api = FacebookAdsApi(session, api_version=config.api_version)
        self.policy = ApiPolicy(
            name="facebook_ads",
            classify=classify(),
            rate_per_second=config.rate_per_second,
            max_attempts=config.max_attempts,
            base_delay=config.backoff_base_seconds,
            # The policy honours an API-given wait up to the larger of these two, so our own backoff's cap
            # stays at or below the configured ceiling (the default 60 s otherwise).
            max_delay=min(ApiPolicy.max_delay, config.max_throttle_wait_seconds),
            max_retry_after=config.max_throttle_wait_seconds,
            stats=stats,
        )
        self._accounts: list[str] | None = None

    def call(self, fn: Callable[[], T]) -> T:
        token = self.config.access_token
        try:
            return self.policy.call(fn)
        except FacebookRequestError as exc:
            failure: BaseException = _clear_error(exc, token)
            # The SDK's error prints Graph's answer verbatim (a 190 quotes the token back).
            if not isinstance(failure, FacebookAuthError) and not _mentions(exc, token):
                raise failure from exc
        except Exception as exc:
            # The token travels in the query string, so a connection error's text (urllib3 names the URL)
            # and the RetriesExhausted built from it carry it.
            if not _mentions(exc, token):
                raise
            failure = _scrubbed(exc, token)
        # Raised here, outside the handler, so the original is neither its cause nor its context: dlt
        # walks even a suppressed context into its trace file, and Dagster and tracebacks print causes.
        raise failure

    def pages(self, first: Callable[[], Cursor]) -> Iterator[list[Any]]:
        """Every page of an edge, each fetch under the policy.

        The SDK's Cursor fetches lazily inside iteration, where a retry could not reach it; driving it
        by hand puts each page's request under the policy. `load_next_page` changes nothing when its
        request fails, so calling it again is a clean retry. It stops when Graph sends no `paging.next`,
        so there is one request per page and none after the last.

        An empty page is not the end: Graph sends one with a `paging.next` when a page's worth of
        objects was filtered out server-side, and `load_next_page` returns False for it as it does
        after the last page. Only the SDK's "no next" flag ends the edge.
        """
        cursor = self.call(first)
        seen: set[str] = set()
        while True:
            yield [cursor[i] for i in range(len(cursor))]
            finished = getattr(cursor, "_finished_iteration", None)
            if finished:
                return
            # The SDK asks for the page after `params["after"]`, the cursor the last page gave. A cursor
            # given twice would have it read the same pages forever: fail, saying so.
            after = str(cursor.params.get("after"))
            if after in seen:
                raise FacebookAdsError(
                    f"Graph sent the paging cursor {after!r} twice on {cursor._path[-1]} of {cursor._path[0]}: "
                    f"it would page forever. Stopped after {len(seen) + 1} pages; the run can be retried."
                )
            seen.add(after)
            loaded = self.call(cursor.load_next_page)
            if finished is None and not loaded:
                return  # an SDK without the flag: its return value is all there is to go by

    def account_ids(self) -> list[str]:
        if self._accounts is None:
            if self.config.ad_account_ids:
                self._accounts = list(self.config.ad_account_ids)
            else:
                me = User("me", api=self.api)
                found: list[str] = []
                for page in self.pages(
                    lambda: me.get_ad_accounts(fields=["id", "account_id"], params={"limit": self.config.page_size})
                ):
                    found.extend(normalize_account_id(a["id"]) for a in page)
                self._accounts = found
        return self._accounts

    def account(self, account_id: str) -> AdAccount:
        return AdAccount(account_id, api=self.api)

    def insights(self, account_id: str, since: date, until: date) -> Iterator[list[Any]]:
        params = {
            "level": "ad",
            "time_increment": 1,
            "time_range": {"since": since.isoformat(), "until": until.isoformat()},
            "limit": self.config.page_size,
        }
        account = self.account(account_id)
        if not self.config.insights_async:
            yield from self.pages(lambda: account.get_insights(fields=list(INSIGHT_FIELDS), params=params))
            return
        # POSTing twice (a retry after a lost answer) only starts a second report; nothing is duplicated.
        started = self.call(lambda: account.get_insights(fields=list(INSIGHT_FIELDS), params=params, is_async=True))
        run_id = started.get("report_run_id") or started.get("id")
        report = AdReportRun(run_id, api=self.api)
        self._wait_for(report, account_id, since, until)
        yield from self.pages(lambda: report.get_insights(params={"limit": self.config.page_size}))

    def _wait_for(self, report: AdReportRun, account_id: str, since: date, until: date) -> None:
        deadline = time.monotonic() + self.config.report_timeout_seconds
        delay = self.config.report_poll_seconds
        while True:
            # Poll first, sleep after: a report often completes at once (the stand-in always does).
            status = self.call(lambda: report.api_get(fields=_REPORT_STATUS_FIELDS))
            state = status.get("async_status")
            if state == "Job Completed":
                return
            if state in ("Job Failed", "Job Skipped"):
                raise FacebookAdsError(
                    f"the insights report {report.get('id')} for {account_id} {since}..{until} ended as {state!r}"
                    f" ({status.get('error_message') or 'no reason given'}); the run can be retried"
                )
            if time.monotonic() + delay > deadline:
                raise FacebookAdsError(
                    f"the insights report {report.get('id')} for {account_id} {since}..{until} was still "
                    f"{state!r} after {self.config.report_timeout_seconds:.0f} s"
                )
            time.sleep(delay)
            delay = min(delay * 2, 60.0)


# ------------------------------------------------------------------------------------------- shaping


def parse_graph_time(value: str | None) -> datetime | None:
    """Graph's `2024-01-05T09:15:00-0800` as an aware datetime (UTC)."""
    if not value:
        return None
    return datetime.strptime(value, TIME_FORMAT).astimezone(UTC)


def _dimension_row(obj: Any) -> dict[str, Any]:
    row = dict(obj.export_all_data())
    for name in _TIME_FIELDS:
        if name in row:
            row[name] = parse_graph_time(row[name])
    for name in _MONEY_FIELDS:
        if row.get(name) not in (None, ""):
            row[name] = int(row[name])
    creative = row.pop("creative", None)
    if isinstance(creative, Mapping):
        row["creative_id"] = creative.get("id")
    return row


def _insight_row(obj: Any) -> dict[str, Any]:
    row = dict(obj.export_all_data())
    row["date_start"] = date.fromisoformat(row["date_start"])
    row["date_stop"] = date.fromisoformat(row["date_stop"])
    for name in ("impressions", "reach", "clicks"):
        if name in row:
            row[name] = int(row[name])
    if "spend" in row:
        row["spend"] = Decimal(row["spend"])
    row["actions"] = [
        {"action_type": a["action_type"], "value": Decimal(str(a["value"]))} for a in row.get("actions") or []
    ]
    return row


# -------------------------------------------------------------------------------------------- source


@dlt.source(name="facebook_ads", max_table_nesting=1)
def facebook_ads_source(config: FacebookAdsConfig, stats: CallStats | None = None) -> Any:
    """Campaigns, ad sets, ads and daily ad insights of the configured ad accounts.

    Build a fresh source for every run (dagster-notes P1); `stats` collects calls, retries and waits.
    """
    graph = _Graph(config, stats if stats is not None else CallStats())
    start_date, end_date = report_days(config.start_date, config.end_date, days_back=3 * 365)

    def dimension(edge: str, fields: tuple[str, ...]) -> Any:
        @dlt.resource(
            name=edge,
            primary_key="id",
            write_disposition="merge",
            columns={"updated_time": {"data_type": "timestamp"}, "created_time": {"data_type": "timestamp"}},
        )
        def fetch(
            # primary_key=(): no boundary deduplication; an object read twice is merged twice, harmlessly.
            updated_time: dlt.sources.incremental[datetime] = dlt.sources.incremental("updated_time", primary_key=()),
        ) -> Iterator[list[dict[str, Any]]]:
            params: dict[str, Any] = {"limit": config.page_size, "effective_status": list(_STATUSES[edge])}
            if updated_time.start_value is not None:
                # Strictly after the last change seen, less a second: Graph's times have whole seconds,
                # and a change in the same second as the last one must not be skipped (merge absorbs
                # the one object read twice).
                after = int(updated_time.start_value.timestamp()) - 1
                params["filtering"] = [{"field": "updated_time", "operator": "GREATER_THAN", "value": after}]
            for account_id in graph.account_ids():
                account = graph.account(account_id)
                getter = getattr(account, _GETTERS[edge])
                for page in graph.pages(lambda getter=getter: getter(fields=list(fields), params=dict(params))):
                    if page:
                        yield [_dimension_row(obj) for obj in page]

        return fetch

    @dlt.resource(
        name="insights",
        primary_key=("ad_id", "date_start"),
        write_disposition="merge",
        columns={
            "date_start": {"data_type": "date"},
            "date_stop": {"data_type": "date"},
            "spend": {"data_type": "decimal"},
        },
    )
    def insights(
        date_start: dlt.sources.incremental[date] = lookback_cursor(
            "date_start", start_date, config.attribution_window_days
        ),
    ) -> Iterator[list[dict[str, Any]]]:
        since = date_start.start_value or start_date
        if since > end_date:
            return
        for account_id in graph.account_ids():
            for chunk_start, chunk_end in date_chunks(since, end_date, config.insights_chunk_days):
                for page in graph.insights(account_id, chunk_start, chunk_end):
                    if page:
                        yield [_insight_row(obj) for obj in page]

    return [
        dimension("campaigns", CAMPAIGN_FIELDS),
        dimension("adsets", ADSET_FIELDS),
        dimension("ads", AD_FIELDS),
        insights,
    ]
