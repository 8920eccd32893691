"""A stand-in for the Facebook Graph (Marketing) API: ad accounts, campaigns, ad sets, ads and insights.

It serves the requests the `facebook-business` SDK sends (see saas-apis.md §4), over plain HTTP on
127.0.0.1 through the shared `SandboxServer`:

- `GET /vNN.0/me/adaccounts` and `GET /vNN.0/act_<id>/{campaigns,adsets,ads}` with `fields` (comma-joined
  or a JSON list: the SDK sends both), `limit`, `after`, `effective_status` and `filtering` on
  `updated_time`; cursor paging where `paging.next` is present only when there is another page;
- insights, synchronous (`GET act_<id>/insights`) and asynchronous (`POST act_<id>/insights` returns a
  `report_run_id`, `GET /<id>/` reports it complete on the first poll, `GET /<id>/insights` pages the
  rows), `level=ad`, `time_increment=1`, `time_range` as JSON; numbers are strings as in the real API;
- errors in Graph's shape (`{"error": {message, type, code, error_subcode, is_transient, fbtrace_id}}`,
  HTTP 400), a wrong `access_token` is code 190, and throttling faults (codes 4/17/613/80000) carry the
  `x-business-use-case-usage` header with `estimated_time_to_regain_access`.

The data is seeded: every number derives from `random.Random` over (seed, ad, day), so a run is the same
everywhere. The ad accounts report in Pacific time, so times carry a `-0800` offset as Graph's do for
such an account: a client that compares them as strings gets the order wrong. Test helpers change the
world the way the real one changes: `add_late_conversions` (attribution arriving days later),
`rename`, `advance_to` (new days of delivery).

One campaign name per account matches a utm_campaign of the event generator ("warehouse-first-q1"), so
ad spend can be joined to the sessions it bought.
"""

from __future__ import annotations

import base64
import hashlib
import json
import random
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Literal

from cdp_assets.sandbox.clock import SandboxClock
from cdp_assets.sandbox.http import Fault, Request, Response, SandboxApp, SandboxServer
from cdp_assets.sandbox.world import EPOCH, HISTORY
from cdp_assets.sources.facebook_graph import AD_FIELDS, ADSET_FIELDS, CAMPAIGN_FIELDS, INSIGHT_FIELDS, TIME_FORMAT

SANDBOX_ACCESS_TOKEN = "sandbox-facebook-access-token"
# The delivery the sandbox holds: from the world's first day to its last (the event history's span).
SANDBOX_FIRST_DAY = EPOCH.date()
SANDBOX_TODAY = (EPOCH + HISTORY).date() - timedelta(days=1)

# Pacific Standard Time: the sandbox accounts are set to America/Los_Angeles and the data is January's.
ACCOUNT_TZ = timezone(timedelta(hours=-8))
ACCOUNT_TZ_NAME = "America/Los_Angeles"

Kind = Literal["campaign", "adset", "ad"]

# What an edge serves, per kind: the fields the source reads (the rest of Graph's many are not needed).
_FIELDS: dict[Kind, frozenset[str]] = {
    "campaign": frozenset(CAMPAIGN_FIELDS),
    "adset": frozenset(ADSET_FIELDS),
    "ad": frozenset(AD_FIELDS),
}
_EDGE_KIND: dict[str, Kind] = {"campaigns": "campaign", "adsets": "adset", "ads": "ad"}
_NODE_TYPE = {"campaign": "Campaign", "adset": "AdSet", "ad": "Ad"}
_ACCOUNT_FIELDS = frozenset(["id", "account_id", "name", "currency", "timezone_name", "account_status"])
# The source's insight fields, and a few more of Graph's that any other client may ask for.
_INSIGHT_FIELDS = frozenset([*INSIGHT_FIELDS, "account_name", "account_currency", "date_start", "date_stop"])
# Graph leaves deleted and archived objects out of an edge unless effective_status asks for them.
_HIDDEN_BY_DEFAULT = frozenset({"DELETED", "ARCHIVED"})

# (name, objective, optimization goal, first delivery day offset, days of delivery or None, status)
_CAMPAIGN_PLANS: tuple[tuple[str, str, str, int, int | None, str], ...] = (
    ("warehouse-first-q1", "OUTCOME_LEADS", "LEAD_GENERATION", 0, None, "ACTIVE"),
    ("retargeting-site-visitors", "OUTCOME_SALES", "OFFSITE_CONVERSIONS", 0, None, "ACTIVE"),
    ("lookalike-signups", "OUTCOME_LEADS", "LEAD_GENERATION", 4, None, "ACTIVE"),
    ("webinar-identity-resolution", "OUTCOME_AWARENESS", "REACH", 0, 3, "ARCHIVED"),
)
_AUDIENCES = ("us-broad", "eu-lookalike-1pct", "site-visitors-30d", "signups-lookalike")
_LOW_USAGE = json.dumps(
    {
        "1000000000001": [
            {
                "type": "ads_management",
                "call_count": 1,
                "total_cputime": 1,
                "total_time": 1,
                "estimated_time_to_regain_access": 0,
            }
        ]
    }
)
_CREATIVES = ("video-15s", "carousel", "single-image", "testimonial")


@dataclass
class AdObject:
    """A campaign, ad set or ad as the stand-in keeps it."""

    id: str
    kind: Kind
    name: str
    account_id: str  # digits, without "act_"
    status: str
    created_time: datetime
    updated_time: datetime
    campaign_id: str | None = None
    adset_id: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    first_day: date = SANDBOX_FIRST_DAY
    last_day: date | None = None  # the last day it delivered; None: still delivering


@dataclass
class AdAccount:
    account_id: str
    name: str
    currency: str = "USD"
    objects: dict[str, AdObject] = field(default_factory=dict)

    def of_kind(self, kind: Kind) -> list[AdObject]:
        return [o for o in self.objects.values() if o.kind == kind]


@dataclass
class ReportRun:
    id: str
    account_id: str
    rows: list[dict[str, Any]]
    since: date
    until: date
    failed: bool = False


def graph_time(at: datetime) -> str:
    """A time as Graph writes it for these accounts: account-local with a numeric offset."""
    return at.astimezone(ACCOUNT_TZ).strftime(TIME_FORMAT)


def _money(value: float) -> str:
    return str(Decimal(value).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))


def _cursor(position: int) -> str:
    return base64.urlsafe_b64encode(f"pos:{position}".encode()).decode().rstrip("=")


def _position(cursor: str) -> int:
    padded = cursor + "=" * (-len(cursor) % 4)
    text = base64.urlsafe_b64decode(padded.encode()).decode()
    if not text.startswith("pos:"):
        raise ValueError(cursor)
    return int(text[4:])


class GraphError(Exception):
    """Raised inside a handler: becomes a Graph error response."""

    def __init__(self, message: str, code: int = 100, subcode: int | None = None, type_: str = "OAuthException"):
        super().__init__(message)
        self.code = code
        self.subcode = subcode
        self.type = type_


def graph_error_body(
    message: str, code: int, subcode: int | None = None, type_: str = "OAuthException", transient: bool = False
) -> dict[str, Any]:
    error: dict[str, Any] = {
        "message": message,
        "type": type_,
        "code": code,
        "is_transient": transient,
        # Deterministic (not hash(): that changes with the process's hash seed).
        "fbtrace_id": "A" + hashlib.sha1(f"{code}:{message}".encode()).hexdigest()[:20],
    }
    if subcode is not None:
        error["error_subcode"] = subcode
    return {"error": error}


_THROTTLE_MESSAGES = {
    4: ("(#4) Application request limit reached", 1504022, "ads_management"),
    17: ("(#17) User request limit reached", 2446079, "ads_management"),
    613: ("(#613) Calls to this api have exceeded the rate limit.", 1487742, "ads_insights"),
    80000: (
        "(#80000) There have been too many calls from this ad-account. Wait a bit and try again.",
        2446079,
        "ads_insights",
    ),
}


def throttle_fault(
    code: int = 17,
    minutes: float = 1,  # Graph sends whole minutes; a fraction lets a test wait less than a minute
    times: int = 1,
    method: str | None = None,
    path: str | None = None,
    business_id: str = "1000000000001",
) -> Fault:
    """Graph's throttling answer: HTTP 400, a throttling code, and when access returns in the usage header."""
    message, subcode, usage_type = _THROTTLE_MESSAGES.get(code, (f"(#{code}) Rate limited", None, "ads_management"))
    usage = {
        business_id: [
            {
                "type": usage_type,
                "call_count": 100,
                "total_cputime": 37,
                "total_time": 41,
                "estimated_time_to_regain_access": minutes,
            }
        ]
    }
    response = Response.json(
        graph_error_body(message, code, subcode, transient=True),
        400,
        {"x-business-use-case-usage": json.dumps(usage)},
    )
    return Fault(response, times=times, method=method, path=path)


def server_error_fault(times: int = 1, status: int = 500, method: str | None = None, path: str | None = None) -> Fault:
    """Graph's "please retry" failure: a 5xx with code 2 and is_transient (what a bad backend day looks like)."""
    body = graph_error_body("An unexpected error has occurred. Please retry your request later.", 2, transient=True)
    return Fault(Response.json(body, status), times=times, method=method, path=path)


def graph_error_fault(
    message: str,
    code: int,
    subcode: int | None = None,
    times: int = 1,
    method: str | None = None,
    path: str | None = None,
) -> Fault:
    """Any other Graph error (for instance 190, an expired token)."""
    return Fault(Response.json(graph_error_body(message, code, subcode), 400), times=times, method=method, path=path)


class FacebookSandbox(SandboxApp):
    """The Graph API stand-in. `accounts` ad accounts, each with the same plan of campaigns."""

    name = "facebook"

    def __init__(
        self,
        seed: int = 7,
        accounts: int = 1,
        access_token: str = SANDBOX_ACCESS_TOKEN,
        today: date = SANDBOX_TODAY,
    ) -> None:
        super().__init__()
        self.seed = seed
        self.access_token = access_token
        self.today = today
        # Stamps updated_time on changes: noon UTC of `today`, one second per change.
        self.clock = SandboxClock(datetime.combine(today, time(12), tzinfo=UTC))
        self.accounts: dict[str, AdAccount] = {}
        self._late: dict[tuple[str, date], dict[str, int]] = {}
        self._reports: dict[str, ReportRun] = {}
        self._failing_reports = 0
        rng = random.Random(seed)
        for index in range(accounts):
            account = self._build_account(rng, index)
            self.accounts[account.account_id] = account

        version = r"/v\d+\.\d+"
        self.route("GET", version + r"/me/adaccounts", self._ad_accounts)
        self.route("GET", version + r"/act_(?P<account_id>\d+)/(?P<edge>campaigns|adsets|ads)", self._edge)
        self.route("GET", version + r"/act_(?P<account_id>\d+)/insights", self._sync_insights)
        self.route("POST", version + r"/act_(?P<account_id>\d+)/insights", self._start_report)
        self.route("GET", version + r"/(?P<run_id>\d+)", self._report_status)
        self.route("GET", version + r"/(?P<run_id>\d+)/insights", self._report_rows)

    # -- seeded world --------------------------------------------------------------------------------

    def _build_account(self, rng: random.Random, index: int) -> AdAccount:
        account_id = str(100_000_000_000_000 + self.seed * 100 + index + 1)
        suffix = "" if index == 0 else f"-{('eu', 'apac', 'latam')[(index - 1) % 3]}"
        account = AdAccount(account_id, f"CDP Sandbox Ads{suffix.upper().replace('-', ' ')}".strip())
        base = 120_200_000_000_000_000 + self.seed * 10_000_000 + index * 100_000
        for c, (name, objective, goal, offset, days, status) in enumerate(_CAMPAIGN_PLANS):
            created = datetime.combine(SANDBOX_FIRST_DAY, time(17), tzinfo=UTC) - timedelta(
                days=rng.randint(3, 20), minutes=rng.randint(0, 600)
            )
            first_day = SANDBOX_FIRST_DAY + timedelta(days=offset)
            last_day = first_day + timedelta(days=days - 1) if days else None
            updated = created if last_day is None else datetime.combine(last_day, time(23), tzinfo=UTC)
            campaign = AdObject(
                id=str(base + 1000 + c),
                kind="campaign",
                name=name + suffix,
                account_id=account_id,
                status=status,
                created_time=created,
                updated_time=updated,
                extra={
                    "objective": objective,
                    "buying_type": "AUCTION",
                    "daily_budget": str(rng.choice((2500, 5000, 10000, 15000))),
                    "start_time": datetime.combine(first_day, time(8), tzinfo=UTC),
                    "stop_time": datetime.combine(last_day, time(23), tzinfo=UTC) if last_day else None,
                },
                first_day=first_day,
                last_day=last_day,
            )
            account.objects[campaign.id] = campaign
            for s in range(2):
                adset = AdObject(
                    id=str(base + 2000 + c * 10 + s),
                    kind="adset",
                    name=f"{name}{suffix} | {_AUDIENCES[(c + s) % len(_AUDIENCES)]}",
                    account_id=account_id,
                    status="ACTIVE" if status == "ACTIVE" else status,
                    created_time=created + timedelta(minutes=5 + s),
                    updated_time=updated + timedelta(minutes=5 + s),
                    campaign_id=campaign.id,
                    extra={
                        "optimization_goal": goal,
                        "billing_event": "IMPRESSIONS",
                        "daily_budget": None,
                        "start_time": campaign.extra["start_time"],
                        "end_time": campaign.extra["stop_time"],
                    },
                    first_day=first_day,
                    last_day=last_day,
                )
                account.objects[adset.id] = adset
                for a in range(2):
                    ad = AdObject(
                        id=str(base + 3000 + c * 100 + s * 10 + a),
                        kind="ad",
                        name=f"{name}{suffix} | {_CREATIVES[(c + s + a) % len(_CREATIVES)]} | v{a + 1}",
                        account_id=account_id,
                        status=adset.status,
                        created_time=adset.created_time + timedelta(minutes=1 + a),
                        updated_time=adset.updated_time + timedelta(minutes=1 + a),
                        campaign_id=campaign.id,
                        adset_id=adset.id,
                        extra={"creative": {"id": str(base + 5000 + c * 100 + s * 10 + a)}},
                        first_day=first_day,
                        last_day=last_day,
                    )
                    account.objects[ad.id] = ad
        return account

    def _find(self, object_id: str) -> AdObject:
        for account in self.accounts.values():
            if object_id in account.objects:
                return account.objects[object_id]
        raise KeyError(object_id)

    def effective_status(self, obj: AdObject) -> str:
        if obj.status != "ACTIVE":
            return obj.status
        if obj.campaign_id and self._find(obj.campaign_id).status != "ACTIVE":
            return "CAMPAIGN_PAUSED"
        if obj.adset_id and self._find(obj.adset_id).status != "ACTIVE":
            return "ADSET_PAUSED"
        return "ACTIVE"

    def delivery(self, ad: AdObject, day: date) -> dict[str, Any] | None:
        """One ad's numbers for one day (None: no delivery). The late conversions are included."""
        if ad.kind != "ad" or day < ad.first_day or day > self.today or (ad.last_day and day > ad.last_day):
            return None
        rng = random.Random(f"{self.seed}:{ad.id}:{day.isoformat()}")
        impressions = rng.randint(400, 6000)
        reach = int(impressions * rng.uniform(0.55, 0.9))
        clicks = int(impressions * rng.uniform(0.004, 0.03))
        spend = impressions * rng.uniform(6.0, 14.0) / 1000
        actions = {
            "link_click": clicks,
            "landing_page_view": int(clicks * rng.uniform(0.6, 0.9)),
            "lead": int(clicks * rng.uniform(0.0, 0.12)),
        }
        for action_type, extra in self._late.get((ad.id, day), {}).items():
            actions[action_type] = actions.get(action_type, 0) + extra
        return {"impressions": impressions, "reach": reach, "clicks": clicks, "spend": spend, "actions": actions}

    # -- test helpers: the world changes -----------------------------------------------------------

    def ads(self, account_id: str | None = None) -> list[AdObject]:
        accounts = [self.accounts[account_id]] if account_id else list(self.accounts.values())
        return [ad for account in accounts for ad in account.of_kind("ad")]

    def objects(self, kind: Kind) -> list[AdObject]:
        return [o for account in self.accounts.values() for o in account.of_kind(kind)]

    def add_late_conversions(self, ad_id: str, day: date, count: int = 1, action_type: str = "lead") -> None:
        """Attribution that arrives after the fact: `day` now shows `count` more `action_type` actions."""
        with self.lock:
            bucket = self._late.setdefault((ad_id, day), {})
            bucket[action_type] = bucket.get(action_type, 0) + count

    def fail_reports(self, times: int = 1) -> None:
        """The next `times` async reports end as "Job Failed" (Graph's answer to a report too big to run)."""
        with self.lock:
            self._failing_reports += times

    def rename(self, object_id: str, name: str) -> AdObject:
        """Rename a campaign, ad set or ad; its updated_time moves to the stand-in's clock."""
        return self._change(object_id, name=name)

    def set_status(self, object_id: str, status: str) -> AdObject:
        return self._change(object_id, status=status)

    def _change(self, object_id: str, **values: str) -> AdObject:
        with self.lock:
            obj = self._find(object_id)
            for name, value in values.items():
                setattr(obj, name, value)
            obj.updated_time = self.clock.advance(timedelta(seconds=1))
            return obj

    def advance_to(self, today: date) -> None:
        """Let time pass: days up to `today` now have delivery, and changes are stamped on that day."""
        with self.lock:
            self.today = today
            self.clock.set(max(self.clock.now(), datetime.combine(today, time(12), tzinfo=UTC)))

    def insight_rows(self, since: date, until: date, account_id: str | None = None) -> list[dict[str, Any]]:
        """The ad-level daily rows the API serves for this range, typed as a correct load holds them:
        counts as int, spend as the Decimal Graph prints, actions as {action_type: count} (zeros left out)."""
        rows = []
        for ad in self.ads(account_id):
            day = since
            while day <= until:
                numbers = self.delivery(ad, day)
                if numbers:
                    rows.append(
                        {
                            "ad_id": ad.id,
                            "date_start": day,
                            "impressions": numbers["impressions"],
                            "reach": numbers["reach"],
                            "clicks": numbers["clicks"],
                            "spend": Decimal(_money(numbers["spend"])),
                            "actions": {k: v for k, v in numbers["actions"].items() if v},
                        }
                    )
                day += timedelta(days=1)
        return sorted(rows, key=lambda r: (r["date_start"], r["ad_id"]))

    # -- request plumbing --------------------------------------------------------------------------

    def handle(self, request: Request) -> Response:
        response = super().handle(request)
        # Graph reports usage on every answer; a fault brings its own. A copy: a fault's response is shared.
        return Response(response.status, response.body, {"x-business-use-case-usage": _LOW_USAGE, **response.headers})

    def error(self, status: int, message: str) -> Response:
        if status == 404:  # Graph answers an unknown path with 400 and code 100
            return Response.json(graph_error_body(f"Unknown path components: {message}", 100), 400)
        return Response.json(graph_error_body(message, 1, transient=status >= 500), status)

    def _params(self, request: Request) -> dict[str, str]:
        params = {k: v[-1] for k, v in request.query.items()}
        if request.method == "POST":
            params.update(request.form())
        return params

    def _guarded(self, request: Request, answer: Any) -> Response:
        """Check the token, then run `answer(params)`; a GraphError becomes Graph's error answer."""
        params = self._params(request)
        token = params.get("access_token")
        if not token:
            return Response.json(
                graph_error_body(
                    "An active access token must be used to query information about the current user.", 2500
                ),
                400,
            )
        if token != self.access_token:
            # Graph quotes a token that looks like one (EAA...) back in its message, as the real one does.
            message = (
                f"Malformed access token {token}"
                if token.startswith("EAA")
                else "Invalid OAuth access token - Cannot parse access token"
            )
            return Response.json(graph_error_body(message, 190), 400)
        try:
            return Response.json(answer(params))
        except GraphError as exc:
            return Response.json(graph_error_body(str(exc), exc.code, exc.subcode, exc.type), 400)

    def _account(self, account_id: str) -> AdAccount:
        account = self.accounts.get(account_id)
        if account is None:
            raise GraphError(
                f"Unsupported get request. Object with ID 'act_{account_id}' does not exist, cannot be loaded due "
                "to missing permissions, or does not support this operation.",
                100,
                33,
                "GraphMethodException",
            )
        return account

    @staticmethod
    def _list_param(raw: str | None) -> list[str] | None:
        """A list parameter in either encoding the SDK uses: comma-joined or a JSON list."""
        if raw is None or raw == "":
            return None
        text = raw.strip()
        if text.startswith("["):
            try:
                values = json.loads(text)
            except ValueError as exc:
                raise GraphError(f"(#100) Invalid JSON for a list parameter: {raw}") from exc
            return [str(v) for v in values]
        return [part.strip() for part in text.split(",") if part.strip()]

    def _fields(self, params: dict[str, str], allowed: frozenset[str], node_type: str) -> list[str]:
        fields = self._list_param(params.get("fields")) or ["id"]
        for name in fields:
            if name not in allowed:
                raise GraphError(f"(#100) Tried accessing nonexisting field ({name}) on node type ({node_type})")
        return fields

    def _page(self, params: dict[str, str], request: Request, items: list[dict[str, Any]]) -> dict[str, Any]:
        try:
            limit = max(1, min(int(params.get("limit") or 25), 5000))
            start = _position(params["after"]) if params.get("after") else 0
        except ValueError as exc:
            raise GraphError("(#100) Invalid pagination parameter") from exc
        page = items[start : start + limit]
        body: dict[str, Any] = {"data": page}
        end = start + len(page)
        if page:
            body["paging"] = {"cursors": {"before": _cursor(start), "after": _cursor(end)}}
            if end < len(items):
                host = request.headers.get("Host", "127.0.0.1")
                body["paging"]["next"] = f"http://{host}{request.path}?limit={limit}&after={_cursor(end)}"
        return body

    # -- handlers ----------------------------------------------------------------------------------

    def _ad_accounts(self, request: Request) -> Response:
        def answer(params: dict[str, str]) -> dict[str, Any]:
            fields = self._fields(params, _ACCOUNT_FIELDS, "AdAccount")
            items = []
            for account in self.accounts.values():
                full = {
                    "id": f"act_{account.account_id}",
                    "account_id": account.account_id,
                    "name": account.name,
                    "currency": account.currency,
                    "timezone_name": ACCOUNT_TZ_NAME,
                    "account_status": 1,
                }
                items.append({k: full[k] for k in fields})
            return self._page(params, request, items)

        return self._guarded(request, answer)

    def _render(self, obj: AdObject, fields: list[str]) -> dict[str, Any]:
        full: dict[str, Any] = {
            "id": obj.id,
            "name": obj.name,
            "account_id": obj.account_id,
            "campaign_id": obj.campaign_id,
            "adset_id": obj.adset_id,
            "status": obj.status,
            "configured_status": obj.status,
            "effective_status": self.effective_status(obj),
            "created_time": graph_time(obj.created_time),
            "updated_time": graph_time(obj.updated_time),
        }
        for key, value in obj.extra.items():
            full[key] = graph_time(value) if isinstance(value, datetime) else value
        # Graph leaves unset fields out of the answer rather than sending null.
        return {k: full[k] for k in fields if full.get(k) is not None}

    def _edge(self, request: Request, account_id: str, edge: str) -> Response:
        kind = _EDGE_KIND[edge]

        def answer(params: dict[str, str]) -> dict[str, Any]:
            account = self._account(account_id)
            fields = self._fields(params, _FIELDS[kind], _NODE_TYPE[kind])
            statuses = self._list_param(params.get("effective_status"))
            updated_after = self._updated_after(params.get("filtering"))
            objects = sorted(account.of_kind(kind), key=lambda o: o.id)
            items = []
            for obj in objects:
                status = self.effective_status(obj)
                if statuses is None and status in _HIDDEN_BY_DEFAULT:
                    continue
                if statuses is not None and status not in statuses:
                    continue
                if updated_after is not None and obj.updated_time.timestamp() <= updated_after:
                    continue
                items.append(self._render(obj, fields))
            return self._page(params, request, items)

        return self._guarded(request, answer)

    @staticmethod
    def _updated_after(raw: str | None) -> float | None:
        """`filtering=[{"field": "updated_time", "operator": "GREATER_THAN", "value": <unix>}]` (other filters: 400)."""
        if not raw:
            return None
        try:
            rules = json.loads(raw)
        except ValueError as exc:
            raise GraphError("(#100) filtering must be a JSON list") from exc
        after = None
        for rule in rules:
            if rule.get("field") != "updated_time" or rule.get("operator") != "GREATER_THAN":
                raise GraphError(f"(#100) The sandbox supports filtering on updated_time GREATER_THAN only: {rule}")
            after = float(rule["value"])
        return after

    def _insight_query(self, account_id: str, params: dict[str, str]) -> tuple[list[dict[str, Any]], date, date]:
        self._account(account_id)
        if (params.get("level") or "account") != "ad":
            raise GraphError("(#100) The sandbox serves level=ad only")
        if str(params.get("time_increment", "")) != "1":
            raise GraphError("(#100) The sandbox serves time_increment=1 only")
        raw_range = params.get("time_range")
        if not raw_range:
            raise GraphError("(#100) time_range is required by the sandbox")
        try:
            time_range = json.loads(raw_range)
            since = date.fromisoformat(time_range["since"])
            until = date.fromisoformat(time_range["until"])
        except (ValueError, KeyError, TypeError) as exc:
            raise GraphError(f"(#100) Invalid time_range: {raw_range}") from exc
        if since > until:
            raise GraphError("(#100) time_range since must not be after until")
        fields = self._fields(params, _INSIGHT_FIELDS, "AdsInsights")
        account = self.accounts[account_id]
        rows = []
        for ad in sorted(account.of_kind("ad"), key=lambda o: o.id):
            day = since
            while day <= until:
                numbers = self.delivery(ad, day)
                if numbers:
                    rows.append((day, ad.id, self._insight_row(account, ad, day, numbers, fields)))
                day += timedelta(days=1)
        rows.sort(key=lambda r: (r[0], r[1]))
        return [r[2] for r in rows], since, until

    def _insight_row(
        self, account: AdAccount, ad: AdObject, day: date, numbers: dict[str, Any], fields: list[str]
    ) -> dict[str, Any]:
        campaign = self._find(ad.campaign_id or "")
        adset = self._find(ad.adset_id or "")
        impressions, clicks, spend = numbers["impressions"], numbers["clicks"], numbers["spend"]
        full: dict[str, Any] = {
            "account_id": account.account_id,
            "account_name": account.name,
            "account_currency": account.currency,
            "campaign_id": campaign.id,
            "campaign_name": campaign.name,
            "adset_id": adset.id,
            "adset_name": adset.name,
            "ad_id": ad.id,
            "ad_name": ad.name,
            # Graph sends every number as a string.
            "impressions": str(impressions),
            "reach": str(numbers["reach"]),
            "clicks": str(clicks),
            "spend": _money(spend),
            "ctr": f"{clicks / impressions * 100:.6f}",
            "cpc": f"{spend / clicks:.6f}" if clicks else None,
            "cpm": f"{spend / impressions * 1000:.6f}",
            "actions": [{"action_type": k, "value": str(v)} for k, v in numbers["actions"].items() if v] or None,
        }
        row = {k: full[k] for k in fields if full.get(k) is not None}
        # date_start and date_stop come with every row whatever the fields asked.
        row["date_start"] = row["date_stop"] = day.isoformat()
        return row

    def _sync_insights(self, request: Request, account_id: str) -> Response:
        def answer(params: dict[str, str]) -> dict[str, Any]:
            rows, _since, _until = self._insight_query(account_id, params)
            return self._page(params, request, rows)

        return self._guarded(request, answer)

    def _start_report(self, request: Request, account_id: str) -> Response:
        def answer(params: dict[str, str]) -> dict[str, Any]:
            rows, since, until = self._insight_query(account_id, params)
            with self.lock:
                run_id = str(6_000_000_000_000 + self.seed * 1000 + len(self._reports) + 1)
                failed = self._failing_reports > 0
                self._failing_reports -= int(failed)
                self._reports[run_id] = ReportRun(run_id, account_id, rows, since, until, failed)
            return {"report_run_id": run_id}

        return self._guarded(request, answer)

    def _report(self, run_id: str) -> ReportRun:
        report = self._reports.get(run_id)
        if report is None:
            raise GraphError(f"Unsupported get request. Object with ID '{run_id}' does not exist", 100, 33)
        return report

    def _report_status(self, request: Request, run_id: str) -> Response:
        def answer(params: dict[str, str]) -> dict[str, Any]:
            report = self._report(run_id)
            # Complete on the first poll: a client that sleeps before its first poll wastes its time here.
            full: dict[str, Any] = {
                "id": report.id,
                "account_id": report.account_id,
                "async_status": "Job Failed" if report.failed else "Job Completed",
                "async_percent_completion": 100,
                "date_start": report.since.isoformat(),
                "date_stop": report.until.isoformat(),
                "time_ref": int(self.clock.now().timestamp()),
                "time_completed": int(self.clock.now().timestamp()),
            }
            if report.failed:  # Graph v25+ says why
                full.update(error_code=2, error_subcode=1487390, error_message="Please reduce the amount of data")
            wanted = self._list_param(params.get("fields"))
            return full if wanted is None else {k: v for k, v in full.items() if k in {"id", *wanted}}

        return self._guarded(request, answer)

    def _report_rows(self, request: Request, run_id: str) -> Response:
        def answer(params: dict[str, str]) -> dict[str, Any]:
            return self._page(params, request, self._report(run_id).rows)

        return self._guarded(request, answer)


def serve(seed: int = 7, port: int = 0, accounts: int = 1) -> SandboxServer:
    """The stand-in on 127.0.0.1 in a background thread (started)."""
    return SandboxServer(FacebookSandbox(seed=seed, accounts=accounts), port=port).start()
