"""A stand-in for the Google Ads API: `GoogleAdsService/SearchStream` over gRPC on 127.0.0.1.

The google-ads package ships message classes and clients but no servicer base classes, so the server
registers a generic handler for `google.ads.googleads.v26.services.GoogleAdsService` / `SearchStream`
(unary-stream). Requests are read with the library's own `SearchGoogleAdsStreamRequest` and answered
with its `SearchGoogleAdsStreamResponse` batches of `GoogleAdsRow`, so the client library decodes exactly
what the real API would send (saas-apis.md §5).

A small GAQL interpreter covers what the project's source asks, and a bit more:
`SELECT <fields> FROM customer|campaign|ad_group [WHERE <cond> [AND <cond>]...] [ORDER BY f [ASC|DESC]]
[LIMIT n]`, with conditions `=`, `!=`, `<`, `<=`, `>`, `>=`, `IN (...)`, `NOT IN (...)`,
`BETWEEN 'a' AND 'b'` and `DURING LAST_N_DAYS|YESTERDAY|TODAY` (days relative to the stand-in's `today`).
Selecting `segments.date` needs a finite date range, as on the real API; metrics without `segments.date`
are summed over the range; rows whose metrics are all zero are left out, as the API does.

Like the HTTP stand-ins it keeps a request log (method, customer id, query, metadata such as
`developer-token` and `login-customer-id`) and a queue of faults for the next matching calls: a gRPC
status (`RESOURCE_EXHAUSTED`, `INTERNAL`, ...), optionally with a `GoogleAdsFailure` in the trailing
metadata (`google.ads.googleads.v26.errors.googleadsfailure-bin`), before the first batch or mid-stream.

Campaign names "cdp-brand" and "segment-alternative" are the event generator's google/cpc utm
campaigns, so spend joins to sessions. One campaign id is above 2**53: a client that lets an int64
pass through a float (or JSON number) gets it wrong.
"""

from __future__ import annotations

import random
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent import futures
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import grpc
from google.ads.googleads.v26.errors.types.authentication_error import AuthenticationErrorEnum
from google.ads.googleads.v26.errors.types.authorization_error import AuthorizationErrorEnum
from google.ads.googleads.v26.errors.types.errors import (
    ErrorCode,
    ErrorDetails,
    GoogleAdsError,
    GoogleAdsFailure,
    QuotaErrorDetails,
)
from google.ads.googleads.v26.errors.types.internal_error import InternalErrorEnum
from google.ads.googleads.v26.errors.types.query_error import QueryErrorEnum
from google.ads.googleads.v26.errors.types.quota_error import QuotaErrorEnum
from google.ads.googleads.v26.services.types.google_ads_service import (
    GoogleAdsRow,
    SearchGoogleAdsStreamRequest,
    SearchGoogleAdsStreamResponse,
)
from google.protobuf import duration_pb2, field_mask_pb2

from cdp_assets.sandbox.google_ads_account import (
    SANDBOX_CUSTOMER_ID,
    SANDBOX_DEVELOPER_TOKEN,
    SANDBOX_FIRST_DAY,
    SANDBOX_LOGIN_CUSTOMER_ID,
    SANDBOX_TODAY,
)
from cdp_assets.sandbox.http import FaultQueue

API_VERSION = "v26"
SERVICE = f"google.ads.googleads.{API_VERSION}.services.GoogleAdsService"
SEARCH_STREAM = f"/{SERVICE}/SearchStream"
FAILURE_KEY = f"google.ads.googleads.{API_VERSION}.errors.googleadsfailure-bin"


# (name, channel, status, first delivery day offset, days of delivery or None, daily impressions scale)
_CAMPAIGN_PLANS: tuple[tuple[str, str, str, int, int | None, float], ...] = (
    ("cdp-brand", "SEARCH", "ENABLED", 0, None, 1.0),
    ("segment-alternative", "SEARCH", "ENABLED", 0, None, 0.6),
    ("retargeting-display", "DISPLAY", "ENABLED", 2, None, 3.0),
    ("youtube-awareness", "VIDEO", "PAUSED", 0, 5, 5.0),
    ("old-competitor-terms", "SEARCH", "REMOVED", -40, 10, 0.5),
)
_AD_GROUP_TYPES = {"SEARCH": "SEARCH_STANDARD", "DISPLAY": "DISPLAY_STANDARD", "VIDEO": "VIDEO_TRUE_VIEW_IN_STREAM"}
# 2**53 + 1: the smallest integer a double cannot hold.
BIG_CAMPAIGN_ID = 9_007_199_254_740_993


@dataclass
class Campaign:
    customer_id: int
    id: int
    name: str
    status: str
    channel: str
    first_day: date
    last_day: date | None
    scale: float

    @property
    def resource_name(self) -> str:
        return f"customers/{self.customer_id}/campaigns/{self.id}"


@dataclass
class AdGroup:
    customer_id: int
    id: int
    campaign_id: int
    name: str
    status: str
    type: str
    cpc_bid_micros: int

    @property
    def resource_name(self) -> str:
        return f"customers/{self.customer_id}/adGroups/{self.id}"


@dataclass
class Customer:
    id: int
    name: str
    currency: str = "USD"
    time_zone: str = "America/New_York"
    campaigns: dict[int, Campaign] = field(default_factory=dict)
    ad_groups: dict[int, AdGroup] = field(default_factory=dict)


@dataclass
class GrpcRequest:
    """One call as the stand-in saw it."""

    method: str
    customer_id: str
    query: str
    metadata: dict[str, str]
    at: float = field(default_factory=time.time)

    @property
    def resource(self) -> str:
        match = re.search(r"\bFROM\s+(\w+)", self.query, re.IGNORECASE)
        return match.group(1).lower() if match else ""


@dataclass
class GrpcFault:
    """What the next `times` matching calls get: `code` (with `failure` in the trailers, if given),
    after `after_batches` batches have been streamed (0: before any)."""

    code: grpc.StatusCode
    message: str
    times: int = 1
    failure: GoogleAdsFailure | None = None
    after_batches: int = 0
    query: str | None = None  # a regex searched in the query, e.g. r"FROM campaign\b.*segments.date"

    def matches(self, request: GrpcRequest) -> bool:
        return self.query is None or re.search(self.query, request.query, re.IGNORECASE | re.DOTALL) is not None


def _failure(message: str, **error_code: Any) -> GoogleAdsFailure:
    return GoogleAdsFailure(errors=[GoogleAdsError(error_code=ErrorCode(**error_code), message=message)])


def resource_exhausted_fault(times: int = 1, query: str | None = None) -> GrpcFault:
    """A bare RESOURCE_EXHAUSTED (no failure details): the client library raises ResourceExhausted."""
    return GrpcFault(
        grpc.StatusCode.RESOURCE_EXHAUSTED, "Resource has been exhausted (e.g. check quota).", times, query=query
    )


def internal_fault(times: int = 1, after_batches: int = 0, query: str | None = None) -> GrpcFault:
    failure = _failure("An internal error has occurred.", internal_error=InternalErrorEnum.InternalError.INTERNAL_ERROR)
    return GrpcFault(grpc.StatusCode.INTERNAL, "Internal error encountered.", times, failure, after_batches, query)


def quota_fault(
    kind: str = "RESOURCE_EXHAUSTED",
    status: grpc.StatusCode = grpc.StatusCode.RESOURCE_EXHAUSTED,
    retry_seconds: float | None = None,  # the API sends whole seconds; a fraction lets a test wait less
    times: int = 1,
    query: str | None = None,
) -> GrpcFault:
    """A quota error with its GoogleAdsFailure: `RESOURCE_EXHAUSTED` is the developer token's daily
    operations, `RESOURCE_TEMPORARILY_EXHAUSTED` the per-customer rate ("Retry in N seconds")."""
    if kind == "RESOURCE_TEMPORARILY_EXHAUSTED":
        message = f"Too many requests. Retry in {retry_seconds or 30:g} seconds."
        rate_scope, rate_name = QuotaErrorDetails.QuotaRateScope.ACCOUNT, "Requests per customer account"
    else:
        message = "Number of operations for basic access has been exceeded. Retry after the daily quota resets."
        rate_scope, rate_name = QuotaErrorDetails.QuotaRateScope.DEVELOPER, "Daily operations for the developer token"
    details = QuotaErrorDetails(rate_scope=rate_scope, rate_name=rate_name)
    if retry_seconds is not None:
        whole = int(retry_seconds)
        details.retry_delay = duration_pb2.Duration(seconds=whole, nanos=round((retry_seconds - whole) * 1e9))
    failure = GoogleAdsFailure(
        errors=[
            GoogleAdsError(
                error_code=ErrorCode(quota_error=QuotaErrorEnum.QuotaError[kind]),
                message=message,
                details=ErrorDetails(quota_error_details=details),
            )
        ]
    )
    return GrpcFault(status, message, times, failure, query=query)


def authentication_fault(kind: str = "OAUTH_TOKEN_EXPIRED", times: int = 1) -> GrpcFault:
    failure = _failure(
        "Authentication of the request failed.",
        authentication_error=AuthenticationErrorEnum.AuthenticationError[kind],
    )
    return GrpcFault(
        grpc.StatusCode.UNAUTHENTICATED, "Request is missing required authentication credential.", times, failure
    )


class QueryError(Exception):
    def __init__(self, message: str, kind: str = "QUERY_ERROR"):
        super().__init__(message)
        self.kind = kind


# ---------------------------------------------------------------------------------------------- GAQL


_TOKEN = re.compile(
    r"""\s*(?:
        (?P<string>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
      | (?P<number>-?\d+(?:\.\d+)?)
      | (?P<op>>=|<=|!=|=|<|>|\(|\)|,)
      | (?P<word>[A-Za-z_][A-Za-z0-9_.]*)
    )""",
    re.VERBOSE,
)


@dataclass
class Condition:
    field: str
    op: str  # =, !=, <, <=, >, >=, IN, NOT IN, BETWEEN, DURING
    values: list[Any]


@dataclass
class Query:
    fields: list[str]
    resource: str
    conditions: list[Condition]
    order_by: list[tuple[str, bool]]  # (field, descending)
    limit: int | None


def _tokens(text: str) -> list[tuple[str, Any]]:
    tokens: list[tuple[str, Any]] = []
    pos = 0
    text = text.strip()
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if not match or match.end() == pos:
            raise QueryError(f"unexpected input at {text[pos : pos + 20]!r}", "UNEXPECTED_INPUT")
        pos = match.end()
        kind = match.lastgroup
        value: Any = match.group(kind)
        if kind == "string":
            value = value[1:-1]
        elif kind == "number":
            value = float(value) if "." in value else int(value)
        tokens.append((kind or "", value))
    return tokens


class _Parser:
    def __init__(self, text: str):
        self.tokens = _tokens(text)
        self.i = 0

    def peek(self) -> tuple[str, Any] | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def keyword(self, *words: str) -> bool:
        """Consume the keywords if they come next (case-insensitive)."""
        for offset, word in enumerate(words):
            token = self.tokens[self.i + offset] if self.i + offset < len(self.tokens) else None
            if token is None or token[0] != "word" or str(token[1]).upper() != word:
                return False
        self.i += len(words)
        return True

    def expect_keyword(self, word: str, kind: str) -> None:
        if not self.keyword(word):
            raise QueryError(f"expected {word}", kind)

    def take(self) -> tuple[str, Any]:
        token = self.peek()
        if token is None:
            raise QueryError("unexpected end of query", "UNEXPECTED_END_OF_QUERY")
        self.i += 1
        return token

    def name(self) -> str:
        kind, value = self.take()
        if kind != "word":
            raise QueryError(f"expected a field name, got {value!r}", "BAD_FIELD_NAME")
        return str(value)

    def value(self) -> Any:
        kind, value = self.take()
        if kind not in ("string", "number", "word"):
            raise QueryError(f"expected a value, got {value!r}", "BAD_VALUE")
        return value

    def parse(self) -> Query:
        self.expect_keyword("SELECT", "EXPECTED_SELECT")
        fields = [self.name()]
        while self.peek() == ("op", ","):
            self.i += 1
            fields.append(self.name())
        self.expect_keyword("FROM", "EXPECTED_FROM")
        resource = self.name()
        conditions: list[Condition] = []
        if self.keyword("WHERE"):
            conditions.append(self.condition())
            while self.keyword("AND"):
                conditions.append(self.condition())
        order_by: list[tuple[str, bool]] = []
        if self.keyword("ORDER"):
            self.expect_keyword("BY", "EXPECTED_BY")
            while True:
                name = self.name()
                descending = self.keyword("DESC")
                if not descending:
                    self.keyword("ASC")
                order_by.append((name, descending))
                if self.peek() != ("op", ","):
                    break
                self.i += 1
        limit = None
        if self.keyword("LIMIT"):
            kind, value = self.take()
            if kind != "number" or not isinstance(value, int) or value < 1:
                raise QueryError(f"bad LIMIT {value!r}", "BAD_LIMIT_VALUE")
            limit = value
        if self.keyword("PARAMETERS"):
            self.i = len(self.tokens)  # include_drafts and friends change nothing here
        if self.peek() is not None:
            raise QueryError(f"unexpected {self.peek()[1]!r}", "UNEXPECTED_INPUT")  # type: ignore[index]
        return Query(fields, resource.lower(), conditions, order_by, limit)

    def condition(self) -> Condition:
        name = self.name()
        if self.keyword("BETWEEN"):
            low = self.value()
            self.expect_keyword("AND", "EXPECTED_AND")
            return Condition(name, "BETWEEN", [low, self.value()])
        if self.keyword("DURING"):
            return Condition(name, "DURING", [str(self.value()).upper()])
        if self.keyword("NOT", "IN"):
            return Condition(name, "NOT IN", self.values())
        if self.keyword("IN"):
            return Condition(name, "IN", self.values())
        kind, op = self.take()
        if kind != "op" or op not in ("=", "!=", "<", "<=", ">", ">="):
            raise QueryError(f"bad operator {op!r}", "BAD_OPERATOR")
        return Condition(name, op, [self.value()])

    def values(self) -> list[Any]:
        if self.take() != ("op", "("):
            raise QueryError("expected a list", "EXPECTED_LIST")
        values = [self.value()]
        while self.peek() == ("op", ","):
            self.i += 1
            values.append(self.value())
        if self.take() != ("op", ")"):
            raise QueryError("expected )", "EXPECTED_LIST")
        return values


def parse_gaql(text: str) -> Query:
    return _Parser(text).parse()


# Which fields each FROM resource can select (segments.date and metrics only from campaign).
_RESOURCE_FIELDS = {
    "customer": {"customer"},
    "campaign": {"customer", "campaign", "segments", "metrics"},
    "ad_group": {"customer", "campaign", "ad_group"},
}
_FIELDS = {
    "customer.id",
    "customer.descriptive_name",
    "customer.currency_code",
    "customer.time_zone",
    "customer.resource_name",
    "campaign.id",
    "campaign.name",
    "campaign.status",
    "campaign.advertising_channel_type",
    "campaign.start_date_time",
    "campaign.end_date_time",
    "campaign.resource_name",
    "ad_group.id",
    "ad_group.name",
    "ad_group.status",
    "ad_group.type",
    "ad_group.campaign",
    "ad_group.cpc_bid_micros",
    "ad_group.resource_name",
    "segments.date",
    "metrics.impressions",
    "metrics.clicks",
    "metrics.cost_micros",
    "metrics.conversions",
    "metrics.conversions_value",
}
_METRICS = (
    "metrics.impressions",
    "metrics.clicks",
    "metrics.cost_micros",
    "metrics.conversions",
    "metrics.conversions_value",
)


def _set(row: GoogleAdsRow, path: str, value: Any) -> None:
    """Set `campaign.id` on a GoogleAdsRow (proto-plus renames `type` to `type_`)."""
    parent_name, _, attr = path.partition(".")
    parent = getattr(row, parent_name)
    setattr(parent, attr + "_" if attr in ("type",) else attr, value)


# ------------------------------------------------------------------------------------------- the app


class GoogleAdsSandbox:
    """The Google Ads data and behaviour behind the gRPC server: seeded customers, log, faults."""

    name = "google_ads"

    def __init__(
        self,
        seed: int = 7,
        customers: int = 1,
        developer_token: str = SANDBOX_DEVELOPER_TOKEN,
        login_customer_id: str | None = SANDBOX_LOGIN_CUSTOMER_ID,
        today: date = SANDBOX_TODAY,
        batch_size: int = 10_000,
    ) -> None:
        self.seed = seed
        self.developer_token = developer_token
        self.login_customer_id = login_customer_id
        self.today = today
        self.batch_size = batch_size
        self.log: list[GrpcRequest] = []
        self._faults: FaultQueue[GrpcFault] = FaultQueue()
        self._late: dict[tuple[int, date], float] = {}
        self.lock = threading.RLock()
        rng = random.Random(seed)
        self.customers: dict[int, Customer] = {}
        for index in range(customers):
            customer = self._build_customer(rng, index)
            self.customers[customer.id] = customer

    def _build_customer(self, rng: random.Random, index: int) -> Customer:
        customer_id = int(SANDBOX_CUSTOMER_ID) + index * 1_111_111_111
        customer = Customer(customer_id, "CDP Sandbox" + ("" if index == 0 else f" {index + 1}"))
        base = 21_000_000_000 + self.seed * 1_000_000 + index * 10_000
        for c, (name, channel, status, offset, days, scale) in enumerate(_CAMPAIGN_PLANS):
            campaign_id = BIG_CAMPAIGN_ID + index if (c == 1) else base + c
            first = SANDBOX_FIRST_DAY + timedelta(days=offset)
            last = first + timedelta(days=days - 1) if days else None
            suffix = "" if index == 0 else f"-{index + 1}"
            customer.campaigns[campaign_id] = Campaign(
                customer_id, campaign_id, name + suffix, status, channel, first, last, scale
            )
            for g in range(2):
                group_id = 150_000_000_000 + self.seed * 1_000_000 + index * 10_000 + c * 10 + g
                customer.ad_groups[group_id] = AdGroup(
                    customer_id,
                    group_id,
                    campaign_id,
                    f"{name}{suffix} | group {g + 1}",
                    "ENABLED" if status == "ENABLED" else status,
                    _AD_GROUP_TYPES[channel],
                    rng.choice((800_000, 1_200_000, 2_500_000)),
                )
        return customer

    # -- the world changes (test helpers) -----------------------------------------------------------

    def campaigns(self, customer_id: int | None = None) -> list[Campaign]:
        customers = [self.customers[customer_id]] if customer_id else list(self.customers.values())
        return [c for customer in customers for c in customer.campaigns.values()]

    def campaign(self, campaign_id: int) -> Campaign:
        for customer in self.customers.values():
            if campaign_id in customer.campaigns:
                return customer.campaigns[campaign_id]
        raise KeyError(campaign_id)

    def ad_groups(self) -> list[AdGroup]:
        return [g for customer in self.customers.values() for g in customer.ad_groups.values()]

    def rename_campaign(self, campaign_id: int, name: str) -> None:
        with self.lock:
            self.campaign(campaign_id).name = name

    def add_late_conversions(self, campaign_id: int, day: date, conversions: float = 1.0) -> None:
        """Conversions attributed to `day` after the fact (Google credits the click's day)."""
        with self.lock:
            self._late[(campaign_id, day)] = self._late.get((campaign_id, day), 0.0) + conversions

    def advance_to(self, today: date) -> None:
        with self.lock:
            self.today = today

    def metrics(self, campaign: Campaign, day: date) -> dict[str, Any] | None:
        """A campaign's numbers for a day (None: it did not serve). Late conversions included."""
        if day < campaign.first_day or day > self.today or (campaign.last_day and day > campaign.last_day):
            return None
        rng = random.Random(f"{self.seed}:{campaign.id}:{day.isoformat()}")
        impressions = int(rng.randint(800, 4000) * campaign.scale)
        clicks = int(impressions * rng.uniform(0.01, 0.08))
        cost_micros = clicks * rng.randint(400_000, 3_000_000)
        # Data-driven attribution hands out fractions of a conversion.
        conversions = round(clicks * rng.uniform(0.0, 0.1) * 2) / 2 + self._late.get((campaign.id, day), 0.0)
        return {
            "metrics.impressions": impressions,
            "metrics.clicks": clicks,
            "metrics.cost_micros": cost_micros,
            "metrics.conversions": conversions,
            "metrics.conversions_value": round(conversions * 120.0, 2),
        }

    def daily_metrics(self, since: date, until: date) -> list[dict[str, Any]]:
        """What a correct load of campaign × day holds for the range (ids as ints)."""
        rows = []
        for campaign in self.campaigns():
            day = since
            while day <= until:
                numbers = self.metrics(campaign, day)
                if numbers:
                    rows.append(
                        {
                            "customer_id": campaign.customer_id,
                            "campaign_id": campaign.id,
                            "date": day,
                            **{k.removeprefix("metrics."): v for k, v in numbers.items()},
                        }
                    )
                day += timedelta(days=1)
        return sorted(rows, key=lambda r: (r["date"], r["campaign_id"]))

    # -- faults and log ------------------------------------------------------------------------------

    def inject(self, fault: GrpcFault) -> None:
        self._faults.add(fault)

    def clear_faults(self) -> None:
        self._faults.clear()

    def requests(self, resource: str | None = None) -> list[GrpcRequest]:
        """The request log, optionally only the queries FROM `resource`."""
        with self.lock:
            return [r for r in self.log if resource is None or r.resource == resource]

    # -- serving -------------------------------------------------------------------------------------

    def search_stream(
        self, request: SearchGoogleAdsStreamRequest, context: grpc.ServicerContext
    ) -> Iterator[SearchGoogleAdsStreamResponse]:
        metadata = {k: (v if isinstance(v, str) else v.decode("latin-1")) for k, v in context.invocation_metadata()}
        logged = GrpcRequest("SearchStream", request.customer_id, request.query, metadata)
        with self.lock:
            self.log.append(logged)
        request_id = uuid.UUID(int=random.Random(len(self.log)).getrandbits(128)).hex[:22]
        fault = self._faults.take(logged)
        if fault is not None and fault.after_batches == 0:
            self._abort(context, fault.code, fault.message, fault.failure, request_id)
            return
        try:
            self._authorize(request, metadata)
            query = parse_gaql(request.query)
            rows = self._evaluate(query, int(request.customer_id))
        except _Denied as denied:
            self._abort(context, denied.code, str(denied), denied.failure, request_id)
            return
        except QueryError as exc:
            failure = _failure(str(exc), query_error=QueryErrorEnum.QueryError[exc.kind])
            self._abort(
                context, grpc.StatusCode.INVALID_ARGUMENT, "Request contains an invalid argument.", failure, request_id
            )
            return
        mask = field_mask_pb2.FieldMask(paths=query.fields)
        batches = [rows[i : i + self.batch_size] for i in range(0, len(rows), self.batch_size)]
        for sent, batch in enumerate(batches):
            if fault is not None and sent == fault.after_batches:
                break
            yield SearchGoogleAdsStreamResponse(results=batch, field_mask=mask, request_id=request_id)
        if fault is not None:
            # A stream that breaks after some batches (or at its very end, if it had fewer).
            self._abort(context, fault.code, fault.message, fault.failure, request_id)
            return
        context.set_trailing_metadata((("request-id", request_id),))

    @staticmethod
    def _abort(
        context: grpc.ServicerContext,
        code: grpc.StatusCode,
        message: str,
        failure: GoogleAdsFailure | None,
        request_id: str,
    ) -> None:
        trailers: list[tuple[str, str | bytes]] = [("request-id", request_id)]
        if failure is not None:
            failure = GoogleAdsFailure(failure)
            failure.request_id = request_id
            trailers.append((FAILURE_KEY, GoogleAdsFailure.serialize(failure)))
        context.set_trailing_metadata(tuple(trailers))
        context.abort(code, message)

    def _authorize(self, request: SearchGoogleAdsStreamRequest, metadata: dict[str, str]) -> None:
        if metadata.get("developer-token") != self.developer_token:
            raise _Denied(
                grpc.StatusCode.UNAUTHENTICATED,
                "The developer token is not valid.",
                _failure(
                    "The developer token is not valid.",
                    authentication_error=AuthenticationErrorEnum.AuthenticationError.DEVELOPER_TOKEN_INVALID,
                ),
            )
        login = metadata.get("login-customer-id")
        if login is not None and self.login_customer_id is not None and login != self.login_customer_id:
            raise _Denied.permission(f"login-customer-id {login} does not manage customer {request.customer_id}.")
        if not request.customer_id.isdigit() or int(request.customer_id) not in self.customers:
            raise _Denied.permission(f"User doesn't have permission to access customer {request.customer_id}.")

    def _evaluate(self, query: Query, customer_id: int) -> list[GoogleAdsRow]:
        allowed = _RESOURCE_FIELDS.get(query.resource)
        if allowed is None:
            raise QueryError(
                f"the sandbox cannot query FROM {query.resource}", "PROHIBITED_RESOURCE_TYPE_IN_FROM_CLAUSE"
            )
        referenced = query.fields + [c.field for c in query.conditions] + [f for f, _ in query.order_by]
        for name in referenced:
            if name not in _FIELDS:
                raise QueryError(f"Unrecognized field in the query: '{name}'.", "UNRECOGNIZED_FIELD")
            if name.split(".")[0] not in allowed:
                raise QueryError(
                    f"'{name}' cannot be selected FROM {query.resource}.", "PROHIBITED_FIELD_IN_SELECT_CLAUSE"
                )
        days = self._date_range(query)
        customer = self.customers[customer_id]
        contexts = list(self._contexts(query, customer, days))
        contexts = [ctx for ctx in contexts if all(self._holds(c, ctx) for c in query.conditions)]
        for name, descending in reversed(query.order_by):
            contexts.sort(key=lambda ctx, n=name: ctx[n], reverse=descending)
        if query.limit is not None:
            contexts = contexts[: query.limit]
        rows = []
        for ctx in contexts:
            row = GoogleAdsRow()
            for name in query.fields:
                _set(row, name, ctx[name])
            rows.append(row)
        return rows

    def _date_range(self, query: Query) -> list[date] | None:
        """The days the query's segments.date conditions allow (None: no date condition)."""
        low, high = None, None
        for condition in query.conditions:
            if condition.field != "segments.date":
                continue
            a, b = self._bounds(condition)
            low = a if low is None or (a and a > low) else low
            high = b if high is None or (b and b < high) else high
        if low is None and high is None:
            if "segments.date" in query.fields:
                raise QueryError(
                    "segments.date in SELECT needs a finite date range in WHERE", "EXPECTED_FILTERS_ON_DATE_RANGE"
                )
            return None
        if low is None or high is None:
            raise QueryError("the date range must be finite", "EXPECTED_FILTERS_ON_DATE_RANGE")
        return [low + timedelta(days=i) for i in range((high - low).days + 1)]

    def _bounds(self, condition: Condition) -> tuple[date | None, date | None]:
        def parse(value: Any) -> date:
            try:
                return date.fromisoformat(str(value))
            except ValueError as exc:
                raise QueryError(f"bad date {value!r}", "INVALID_DATE_FORMAT") from exc

        if condition.op == "BETWEEN":
            return parse(condition.values[0]), parse(condition.values[1])
        if condition.op == "DURING":
            token = condition.values[0]
            yesterday = self.today - timedelta(days=1)
            if token == "TODAY":
                return self.today, self.today
            if token == "YESTERDAY":
                return yesterday, yesterday
            match = re.fullmatch(r"LAST_(\d+)_DAYS", token)
            if match:  # LAST_N_DAYS ends yesterday, as on the API
                return yesterday - timedelta(days=int(match.group(1)) - 1), yesterday
            raise QueryError(f"the sandbox does not know DURING {token}", "INVALID_VALUE_WITH_DURING_OPERATOR")
        if condition.op in (">=", ">", "<=", "<", "="):
            day = parse(condition.values[0])
            if condition.op == ">":
                day += timedelta(days=1)
            if condition.op == "<":
                day -= timedelta(days=1)
            if condition.op == "=":
                return day, day
            return (day, None) if condition.op.startswith(">") else (None, day)
        raise QueryError(f"operator {condition.op} on segments.date", "BAD_OPERATOR")

    def _contexts(self, query: Query, customer: Customer, days: list[date] | None) -> Iterator[dict[str, Any]]:
        base = {
            "customer.id": customer.id,
            "customer.descriptive_name": customer.name,
            "customer.currency_code": customer.currency,
            "customer.time_zone": customer.time_zone,
            "customer.resource_name": f"customers/{customer.id}",
        }
        if query.resource == "customer":
            yield base
            return
        for campaign in sorted(customer.campaigns.values(), key=lambda c: c.id):
            ctx = {
                **base,
                "campaign.id": campaign.id,
                "campaign.name": campaign.name,
                "campaign.status": campaign.status,
                "campaign.advertising_channel_type": campaign.channel,
                "campaign.start_date_time": f"{campaign.first_day.isoformat()} 00:00:00",
                "campaign.end_date_time": f"{campaign.last_day.isoformat()} 23:59:59"
                if campaign.last_day
                else "2037-12-30 23:59:59",
                "campaign.resource_name": campaign.resource_name,
            }
            if query.resource == "ad_group":
                for group in sorted(customer.ad_groups.values(), key=lambda g: g.id):
                    if group.campaign_id == campaign.id:
                        yield {
                            **ctx,
                            "ad_group.id": group.id,
                            "ad_group.name": group.name,
                            "ad_group.status": group.status,
                            "ad_group.type": group.type,
                            "ad_group.campaign": campaign.resource_name,
                            "ad_group.cpc_bid_micros": group.cpc_bid_micros,
                            "ad_group.resource_name": group.resource_name,
                        }
                continue
            wants_metrics = any(f.startswith("metrics.") for f in query.fields)
            if "segments.date" in query.fields:
                for day in days or []:
                    numbers = self.metrics(campaign, day)
                    if numbers:
                        yield {**ctx, "segments.date": day.isoformat(), **numbers}
            elif wants_metrics:
                span = days if days is not None else self._all_days(campaign)
                totals = dict.fromkeys(_METRICS, 0)
                for day in span:
                    for key, value in (self.metrics(campaign, day) or {}).items():
                        totals[key] += value
                if totals["metrics.impressions"]:
                    yield {**ctx, **totals}
            else:
                yield ctx

    def _all_days(self, campaign: Campaign) -> list[date]:
        last = min(campaign.last_day or self.today, self.today)
        return [campaign.first_day + timedelta(days=i) for i in range((last - campaign.first_day).days + 1)]

    @staticmethod
    def _holds(condition: Condition, ctx: dict[str, Any]) -> bool:
        if condition.field == "segments.date" and "segments.date" not in ctx:
            return True  # the date range was applied while building the rows
        value = ctx[condition.field]
        values = [type(value)(v) if isinstance(value, int | float) else str(v) for v in condition.values]
        if condition.op in ("BETWEEN", "DURING"):
            return True  # only on segments.date, applied while building the rows
        if condition.op == "IN":
            return value in values
        if condition.op == "NOT IN":
            return value not in values
        ops: dict[str, Callable[[Any, Any], bool]] = {
            "=": lambda a, b: a == b,
            "!=": lambda a, b: a != b,
            "<": lambda a, b: a < b,
            "<=": lambda a, b: a <= b,
            ">": lambda a, b: a > b,
            ">=": lambda a, b: a >= b,
        }
        return ops[condition.op](value, values[0])


class _Denied(Exception):
    def __init__(self, code: grpc.StatusCode, message: str, failure: GoogleAdsFailure):
        super().__init__(message)
        self.code = code
        self.failure = failure

    @classmethod
    def permission(cls, detail: str) -> _Denied:
        """The caller may not read this customer: the same status and message whatever the reason."""
        return cls(
            grpc.StatusCode.PERMISSION_DENIED,
            "The caller does not have permission",
            _failure(detail, authorization_error=AuthorizationErrorEnum.AuthorizationError.USER_PERMISSION_DENIED),
        )


class GoogleAdsSandboxServer:
    """Serves a `GoogleAdsSandbox` over plaintext gRPC on 127.0.0.1 (a free port unless given)."""

    def __init__(self, app: GoogleAdsSandbox, port: int = 0, host: str = "127.0.0.1", max_workers: int = 8):
        self.app = app
        self.host = host
        self.server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="sandbox-gads")
        )
        handler = grpc.method_handlers_generic_handler(
            SERVICE,
            {
                "SearchStream": grpc.unary_stream_rpc_method_handler(
                    app.search_stream,
                    request_deserializer=SearchGoogleAdsStreamRequest.deserialize,
                    response_serializer=SearchGoogleAdsStreamResponse.serialize,
                )
            },
        )
        self.server.add_generic_rpc_handlers((handler,))
        self._port = self.server.add_insecure_port(f"{host}:{port}")

    @property
    def port(self) -> int:
        return self._port

    @property
    def target(self) -> str:
        return f"{self.host}:{self._port}"

    def start(self) -> GoogleAdsSandboxServer:
        self.server.start()
        return self

    def stop(self) -> None:
        self.server.stop(grace=None).wait(5)

    def __enter__(self) -> GoogleAdsSandboxServer:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()


def serve(seed: int = 7, port: int = 0, customers: int = 1) -> GoogleAdsSandboxServer:
    """The stand-in on 127.0.0.1 (started)."""
    return GoogleAdsSandboxServer(GoogleAdsSandbox(seed=seed, customers=customers), port=port).start()
