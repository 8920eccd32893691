"""Synthetic RudderStack S3 dump files: what the company's event stream would have written.

Three sources write their own dumps, each in its SDK's exact shape: the marketing site and web app (JS
SDK v3), the app server's sign-up events (Node SDK) and the Python backend (rudder-sdk-python 2.1.9).
Every line carries the fields the gateway adds (messageId, receivedAt, request_ip, rudderId). JS and
Node lines have no `timestamp`: the loader derives it from the clock-skew rule, so some browsers are
given skewed clocks.

The stream is mostly anonymous page views by many visitors, with the journeys of the `World`'s people
woven in: anonymous browsing, a form submit carrying the email as typed, identify with a user id,
server-side sign-up, product milestones, more devices, consent changes. The world's journey window
`[EPOCH, EPOCH + HISTORY)` is mapped linearly onto the generated span, so order and relative timing
carry over; with the default span of a 1,000,000-event run the mapping is one to one.

`bad_fraction` replaces a share of lines with the kinds of bad input a loader must account for.

Everything is deterministic for its arguments: the same call writes byte-identical files under the
same keys. Memory stays bounded by one open file per source plus the planned journeys, which scale
with the world, not with `events`.

Speed: web lines are assembled from JSON fragments serialised once per device, session and page
rather than by `json.dumps` of a nested dict, which is several times slower per line. Rarer events
(server side, bad input) are plain dicts.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import random
import uuid
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache, partial
from typing import Any, Generic, TypeVar

from cdp_assets.event_stream.landing import LandingStore, dump_key
from cdp_assets.sandbox.world import EPOCH, HISTORY, WORLD_END, Company, Person, World, build_world

Event = dict[str, Any]
# What every builder returns: the event type (for the summary) and the line's JSON text.
Line = tuple[str, str]
Builder = Callable[[int], Line]
T = TypeVar("T")

WINDOW_MS = 30 * 60 * 1000
OVERSIZE_BYTES = 32 * 1024
MAX_BAD_FRACTION = 0.5
# Share of the stream that known people's journeys may take; the rest is anonymous traffic. Journeys
# have a fixed size per person, so at a million events they are a few percent of the lines.
JOURNEY_SHARE = 0.4
REFERENCE_EVENTS = 1_000_000

BAD_REASONS = (
    "invalid_json",
    "not_an_object",
    "missing_ids",
    "unknown_type",
    "oversized",
    "type_conflict",
    "duplicate",
)


@dataclass(frozen=True)
class SourceSpec:
    key: str
    source_id: str
    name: str
    source_type: str


SOURCES: dict[str, SourceSpec] = {
    "web": SourceSpec("web", "2GkbZJ1QxLd8ovz5Jx2Wp3uTqAe", "rudderstack_website", "Javascript"),
    "server": SourceSpec("server", "2GkbZPJHc7sE0vNoDeSrv9yB1mK", "app_server", "NodeJS"),
    "python": SourceSpec("python", "2GkbZSWr4PyBaCkEnD2k8UeQx0D", "backend_python", "Python"),
}

_ALL: dict[str, bool] = {"All": True}
_JS_LIBRARY = {"name": "RudderLabs JavaScript SDK", "version": "3.0.3"}
_JS_APP = {
    "build": "1.0.0",
    "name": "RudderLabs JavaScript SDK",
    "namespace": "com.rudderlabs.javascript",
    "version": "3.0.3",
    "installType": "cdn",
}
_JS_OS = {"name": "", "version": ""}
_NODE_LIBRARY = {"name": "analytics-node", "version": "1.3.0"}
_NODE_METADATA = {"nodeVersion": "18.19.0"}
_PY_LIBRARY = {"name": "analytics-python", "version": "2.1.9"}
_NODE_IPS = ("34.198.21.7", "52.44.10.190")
_PY_IPS = ("3.91.112.40", "54.87.200.13")

WWW = "www.rudderstack.com"
APP = "app.rudderstack.com"


# ------------------------------------------------------------------------------------------ public API


@dataclass
class GenerationSummary:
    files: list[str]
    events: int
    lines_by_kind: dict[str, int]
    bad_lines_by_reason: dict[str, int]
    people_used: int
    anonymous_visitors: int = 0
    lines_by_source: dict[str, int] = field(default_factory=dict)
    blank_lines: int = 0
    bytes_written: int = 0
    start: datetime | None = None
    end: datetime | None = None
    source_ids: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["start"] = self.start.isoformat() if self.start else None
        data["end"] = self.end.isoformat() if self.end else None
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)


@lru_cache(maxsize=1 << 12)
def rudder_id(user_id: str | None, anonymous_id: str | None) -> str:
    """The gateway's rudderId: MD5 of `userId:anonymousId` laid out as a version-4 UUID (null = "")."""
    digest = hashlib.md5(f"{user_id or ''}:{anonymous_id or ''}".encode(), usedforsecurity=False).digest()
    return str(uuid.UUID(bytes=digest, version=4))


def default_span(events: int) -> timedelta:
    """How long a run of `events` lasts: the world's history at a million events, shorter below."""
    seconds = HISTORY.total_seconds() * min(1.0, events / REFERENCE_EVENTS)
    return timedelta(seconds=max(2 * 3600, int(seconds)))


def world_to_stream_time(at: datetime, start: datetime, span: timedelta) -> datetime:
    """Where a moment of the world's history lands in a generated stream (for stand-ins to align with)."""
    return start + (at - EPOCH) / HISTORY * span


def generate_events(
    store: LandingStore,
    events: int,
    seed: int = 7,
    start: datetime | None = None,
    bad_fraction: float = 0.0,
    events_per_file: int = 10_000,
    world: World | None = None,
    span: timedelta | None = None,
) -> GenerationSummary:
    """Write exactly `events` lines of RudderStack dump files into `store` and say what was written.

    `start` defaults to a time that makes the last event land about now; `span` defaults to
    `default_span(events)`; `world` defaults to `build_world(seed)`.
    """
    if events < 0:
        raise ValueError("events must be >= 0")
    if events_per_file < 1:
        raise ValueError("events_per_file must be >= 1")
    if not 0.0 <= bad_fraction <= MAX_BAD_FRACTION:
        raise ValueError(f"bad_fraction must be between 0 and {MAX_BAD_FRACTION}")
    span = span or default_span(events)
    if span <= timedelta(0):
        raise ValueError("span must be positive")
    if start is None:
        start = datetime.now(UTC).replace(second=0, microsecond=0) - span
    elif start.tzinfo is None:
        raise ValueError("start must be timezone-aware")
    world = world or build_world(seed)
    run = _Run(store, events, seed, start, span, bad_fraction, events_per_file, world)
    return run.execute()


# ------------------------------------------------------------------------------------- small helpers


@lru_cache(maxsize=1 << 14)
def _minute_prefix(minute: int) -> str:
    return datetime.fromtimestamp(minute * 60, UTC).strftime("%Y-%m-%dT%H:%M:")


def _iso_ms(ms: int) -> str:
    """RFC 3339 with milliseconds and `Z`, as the gateway writes it; cached per minute for speed."""
    minute, rest = divmod(ms, 60_000)
    return f"{_minute_prefix(minute)}{rest // 1000:02d}.{rest % 1000:03d}Z"


def _iso_us(us: int) -> str:
    """Python's `datetime.isoformat()` of an aware UTC time, as rudder-sdk-python sends it."""
    minute, rest = divmod(us, 60_000_000)
    return f"{_minute_prefix(minute)}{rest // 1_000_000:02d}.{rest % 1_000_000:06d}+00:00"


def _epoch_ms(at: datetime) -> int:
    return round(at.timestamp() * 1000)


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


_q = _dumps  # a JSON string literal, quotes included
_EMPTY = '""'


_UUID_CLEAR = ~((0xF << 76) | (0x3 << 62)) & ((1 << 128) - 1)
_UUID_SET = (0x4 << 76) | (0x2 << 62)


class _Ids:
    """Version-4 UUIDs drawn from a seeded rng: reproducible, and cheaper than building `uuid.UUID`s."""

    def __init__(self, rng: random.Random):
        self._bits = rng.getrandbits

    def uuid4(self) -> str:
        h = f"{(self._bits(128) & _UUID_CLEAR) | _UUID_SET:032x}"
        return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


class _Weighted(Generic[T]):
    """Weighted choice through an expanded table: one `random()` per pick, unlike `Random.choices`."""

    def __init__(self, items: Sequence[T], weights: Sequence[int]):
        self._table = tuple(item for item, weight in zip(items, weights, strict=True) for _ in range(weight))

    def pick(self, rng: random.Random) -> T:
        return self._table[int(rng.random() * len(self._table))]


_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def _ksuid(rng: random.Random) -> str:
    return "2" + "".join(rng.choice(_BASE62) for _ in range(26))


# ------------------------------------------------------------------------------------------- catalog


@dataclass(frozen=True)
class _Page:
    host: str
    path: str
    title: str
    name: str
    category: str | None
    weight: int = 1

    @property
    def url(self) -> str:
        return f"https://{self.host}{self.path}"


@dataclass(frozen=True)
class _PageJson:
    """A page's pieces as JSON literals, serialised once instead of on every view."""

    page: _Page
    host: str
    path: str
    title: str
    name: str
    url: str
    category_field: str
    content_group_field: str


@lru_cache(maxsize=256)
def _page_json(page: _Page) -> _PageJson:
    return _PageJson(
        page=page,
        host=_q(page.host),
        path=_q(page.path),
        title=_q(page.title),
        name=_q(page.name),
        url=_q(page.url),
        category_field=f',"category":{_q(page.category)}' if page.category else "",
        content_group_field=f',"content_group":{_q(page.category or "Marketing")}',
    )


def _www(path: str, title: str, name: str, category: str | None, weight: int = 1) -> _Page:
    return _Page(WWW, path, title, name, category, weight)


def _app(path: str, title: str, name: str) -> _Page:
    return _Page(APP, path, f"{title} | RudderStack", name, "App")


_MARKETING_PAGES = (
    _www("/", "RudderStack | The Warehouse Native Customer Data Platform", "Home", None, 30),
    _www("/pricing/", "Pricing | RudderStack", "Pricing", "Product", 10),
    _www("/product/event-stream/", "Event Stream | RudderStack", "Event Stream", "Product", 6),
    _www("/product/reverse-etl/", "Reverse ETL | RudderStack", "Reverse ETL", "Product", 4),
    _www("/docs/", "RudderStack Docs", "Docs", "Docs", 12),
    _www(
        "/docs/sources/event-streams/sdks/rudderstack-javascript-sdk/",
        "JavaScript SDK | RudderStack Docs",
        "JavaScript SDK",
        "Docs",
        6,
    ),
    _www("/integration/snowflake/", "Snowflake Integration | RudderStack", "Snowflake", "Integrations", 4),
    _www("/integration/customer-io/", "Customer.io Integration | RudderStack", "Customer.io", "Integrations"),
    _www("/integration/salesforce/", "Salesforce Integration | RudderStack", "Salesforce", "Integrations", 3),
    _www("/blog/", "Blog | RudderStack", "Blog", "Blog", 6),
    _www(
        "/blog/dogfooding-at-rudderstack-our-data-stack/",
        "Dogfooding at RudderStack: Our Data Stack | RudderStack",
        "Dogfooding at RudderStack",
        "Blog",
        5,
    ),
    _www("/customers/", "Customer Stories | RudderStack", "Customers", None, 3),
    _www("/webinars/", "Webinars | RudderStack", "Webinars", "Events", 2),
    _www("/careers/", "Careers | RudderStack", "Careers", None, 1),
    _www("/request-demo/", "Request a Demo | RudderStack", "Request Demo", "Sales", 2),
)
_MARKETING = _Weighted(_MARKETING_PAGES, [p.weight for p in _MARKETING_PAGES])
_SIGNUP_PAGE = _app("/signup", "Sign up", "Sign Up")
_LOGIN_PAGE = _app("/login", "Log in", "Log In")
_NEW_SOURCE_PAGE = _app("/sources/new", "Add Source", "Add Source")
_BILLING_PAGE = _app("/settings/billing", "Billing", "Billing")
_PREFERENCES_PAGE = _www("/email-preferences/", "Email Preferences | RudderStack", "Email Preferences", None)
_APP_PAGES = (
    _app("/", "Connections", "Connections"),
    _app("/sources", "Sources", "Sources"),
    _app("/destinations", "Destinations", "Destinations"),
    _app("/transformations", "Transformations", "Transformations"),
    _app("/events/live", "Live Events", "Live Events"),
)


@dataclass(frozen=True)
class _Form:
    form_id: str
    section: str
    page: _Page


_WEBINAR_PAGE = _www("/webinars/cdp-2024/", "CDP in 2024 | Webinar", "Webinar", "Events")
_CONTACT_PAGE = _www("/contact/", "Contact Sales | RudderStack", "Contact", "Sales")
_GUIDE_PAGE = _www("/guides/warehouse-first/", "Warehouse-first Guide | RudderStack", "Guide", "Docs")
_FORMS = (
    _Form("request-demo", "demo", _MARKETING_PAGES[-1]),
    _Form("webinar-registration", "webinars", _WEBINAR_PAGE),
    _Form("newsletter-signup", "blog", _MARKETING_PAGES[9]),
    _Form("contact-sales", "contact", _CONTACT_PAGE),
    _Form("ebook-download", "resources", _GUIDE_PAGE),
)

# (referrer URL, referring domain); "$direct" is what the JS SDK records when there is no referrer.
_REFERRERS = _Weighted(
    (
        ("$direct", ""),
        ("https://www.google.com/", "www.google.com"),
        ("https://www.bing.com/", "www.bing.com"),
        ("https://www.linkedin.com/", "www.linkedin.com"),
        ("https://t.co/", "t.co"),
        ("https://news.ycombinator.com/", "news.ycombinator.com"),
        ("https://github.com/rudderlabs/rudder-server", "github.com"),
    ),
    (30, 35, 5, 10, 5, 8, 7),
)
_CAMPAIGNS: tuple[dict[str, str], ...] = (
    {"source": "google", "medium": "cpc", "name": "cdp-brand", "term": "cdp", "content": "ad-1"},
    {"source": "google", "medium": "cpc", "name": "segment-alternative", "term": "segment alternative"},
    {"source": "linkedin", "medium": "paid-social", "name": "warehouse-first-q1", "content": "carousel"},
    {"source": "newsletter", "medium": "email", "name": "monthly-digest"},
    {"source": "g2", "medium": "referral", "name": "g2-profile"},
    {"source": "twitter", "medium": "social", "name": "launch-week", "content": "thread"},
)
_USER_AGENTS = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:121.0) Gecko/20100101 Firefox/121.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.2 Safari/605.1.15",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/119.0.0.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.2 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.6099.144 Mobile Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.0.0 Safari/537.36 Edg/120.0.0.0",
)
_SCREENS = (
    {"density": 2, "width": 1440, "height": 900, "innerWidth": 1440, "innerHeight": 789},
    {"density": 1, "width": 1920, "height": 1080, "innerWidth": 1903, "innerHeight": 961},
    {"density": 1.25, "width": 1536, "height": 864, "innerWidth": 1536, "innerHeight": 730},
    {"density": 3, "width": 390, "height": 844, "innerWidth": 390, "innerHeight": 664},
    {"density": 2, "width": 1728, "height": 1117, "innerWidth": 1728, "innerHeight": 1000},
)
# (locale, JS SDK timezone) per country: a German browser says de-DE and GMT+0100.
_LOCALES = {
    "US": (("en-US", "GMT-0500"), ("en-US", "GMT-0800"), ("en-US", "GMT-0600")),
    "CA": (("en-CA", "GMT-0500"), ("fr-CA", "GMT-0500")),
    "GB": (("en-GB", "GMT+0000"),),
    "DE": (("de-DE", "GMT+0100"), ("en-US", "GMT+0100")),
    "IN": (("en-IN", "GMT+0530"), ("en-US", "GMT+0530")),
    "FR": (("fr-FR", "GMT+0100"),),
    "NL": (("nl-NL", "GMT+0100"), ("en-GB", "GMT+0100")),
    "BR": (("pt-BR", "GMT-0300"),),
    "AU": (("en-AU", "GMT+1100"),),
    "SG": (("en-SG", "GMT+0800"), ("zh-CN", "GMT+0800")),
}
_COUNTRIES = _Weighted(tuple(_LOCALES), (40, 6, 12, 9, 10, 6, 4, 5, 5, 3))
_SESSION_PAGES = _Weighted((1, 2, 3, 4, 6, 10), (30, 22, 16, 14, 11, 7))
_PRODUCTS = (
    {"sku": "event-stream", "name": "Event Stream", "price": 500.0},
    {"sku": "reverse-etl", "name": "Reverse ETL", "price": 250.0},
    {"sku": "profiles", "name": "Profiles", "price": 400.0},
    {"sku": "transformations", "name": "Transformations", "price": 100.0},
)
_PLAN_PRICES = {"free": 0.0, "pro": 750.0, "enterprise": 3000.0}
_DOC_QUERIES = ("identify", "snowflake", "user transformation", "python sdk", "reverse etl", "consent")
_NON_NUMERIC_REVENUE = ("N/A", "contact sales", "$1,200/mo", "unknown")


# ------------------------------------------------------------------------------ devices and sessions


@dataclass(slots=True)
class _Device:
    """One browser: fixed context (pre-serialised), clock error, and what the SDK has persisted."""

    anonymous_id: str
    context_prefix: str  # '{"app":…,"userAgent":"…"' — the context keys that never change on a device
    ip: str
    skew_ms: int
    user_id: str | None = None
    traits: dict[str, Any] = field(default_factory=dict)
    traits_json: str = "{}"
    rudder_id: str = ""
    user_field: str = ""

    def __post_init__(self) -> None:
        self.set_user(self.user_id)

    def set_user(self, user_id: str | None) -> None:
        self.user_id = user_id
        self.rudder_id = rudder_id(user_id, self.anonymous_id)
        self.user_field = f',"userId":{_q(user_id)}' if user_id else ""

    def set_traits(self, traits: dict[str, Any]) -> None:
        self.traits = traits
        self.traits_json = _dumps(traits)


@dataclass(slots=True)
class _Session:
    device: _Device
    referrer: str  # initial referrer, JSON literal
    referring_domain: str  # JSON literal
    search: str = ""  # landing query string, raw
    campaign_json: str = "{}"
    session_id: int | None = None
    page_json: str = "{}"  # context.page of the current page
    on_campaign_page: bool = False
    last_url: str | None = None  # JSON literal
    last_host: str = _EMPTY  # JSON literal
    pages_left: int = 0


@lru_cache(maxsize=1024)
def _context_prefix(user_agent: int, locale: str, timezone: str, screen: int) -> str:
    context = {
        "app": _JS_APP,
        "library": _JS_LIBRARY,
        "locale": locale,
        "os": _JS_OS,
        "screen": _SCREENS[screen],
        "timezone": timezone,
        "userAgent": _USER_AGENTS[user_agent],
    }
    return _dumps(context)[:-1]


def _make_device(rng: random.Random, anonymous_id: str, country: str | None = None) -> _Device:
    locales = _LOCALES[country or _COUNTRIES.pick(rng)]
    locale, timezone = locales[int(rng.random() * len(locales))]
    # Most clocks are right to a few hundred ms; some are off by seconds to minutes, which is what the
    # loader's skew correction (timestamp = receivedAt - (sentAt - originalTimestamp)) exists for.
    if rng.random() < 0.12:
        magnitude = 2_000 + int(rng.random() * 8 * 60_000)
        skew = magnitude if rng.random() < 0.5 else -magnitude
    else:
        skew = int((rng.random() - 0.5) * 600)
    bits = rng.getrandbits(32)
    ip = f"{1 + (bits >> 24) % 222}.{(bits >> 16) & 255}.{(bits >> 8) & 255}.{1 + (bits & 255) % 254}"
    user_agent = int(rng.random() * len(_USER_AGENTS))
    screen = int(rng.random() * len(_SCREENS))
    return _Device(anonymous_id, _context_prefix(user_agent, locale, timezone, screen), ip, skew)


@lru_cache(maxsize=256)
def _literal(text: str) -> str:
    return _q(text)


@lru_cache(maxsize=64)
def _campaign_json(campaign: tuple[tuple[str, str], ...]) -> str:
    return _dumps(dict(campaign))


@lru_cache(maxsize=64)
def _utm_query(campaign: tuple[tuple[str, str], ...]) -> str:
    return "&".join(f"utm_{'campaign' if k == 'name' else k}={v.replace(' ', '+')}" for k, v in campaign)


def _new_session(
    rng: random.Random, device: _Device, campaign: dict[str, str] | None = None, extra_query: str = ""
) -> _Session:
    """A visit; `campaign=None` draws one now and then, `{}` means none (typed-in URL, app login)."""
    if campaign is None:
        campaign = _CAMPAIGNS[int(rng.random() * len(_CAMPAIGNS))] if rng.random() < 0.25 else {}
    referrer, domain = _REFERRERS.pick(rng)
    if campaign.get("source") in ("google", "linkedin"):
        domain = f"www.{campaign['source']}.com"
        referrer = f"https://{domain}/"
    key = tuple(campaign.items())
    query = "&".join(part for part in (_utm_query(key), extra_query) if part)
    return _Session(
        device,
        _literal(referrer),
        _literal(domain),
        search=f"?{query}" if query else "",
        campaign_json=_campaign_json(key),
    )


# ------------------------------------------------------------------------------------ payload shapes


class _Web:
    """JS SDK v3 payloads (channel web), including the fields the gateway adds."""

    def __init__(self, rng: random.Random, ids: _Ids, evolve_at_ms: int):
        self._random = rng.random
        self._ids = ids
        self._evolve_at_ms = evolve_at_ms

    def _line(
        self,
        session: _Session,
        type_: str,
        received_ms: int,
        event: str = "null",
        properties: str = "null",
        extra: str = "",
        traits: str | None = None,
    ) -> str:
        device = session.device
        sent = received_ms - 30 - int(self._random() * 370) + device.skew_ms
        original = sent - int(self._random() * 1500)
        session_start = ""
        if session.session_id is None:
            # The SDK's session id is the device-clock time the session started, in epoch ms.
            session.session_id = original
            session_start = ',"sessionStart":true'
        campaign = session.campaign_json if session.on_campaign_page else "{}"
        return (
            f'{{"anonymousId":"{device.anonymous_id}","channel":"web","context":{device.context_prefix}'
            f',"campaign":{campaign},"page":{session.page_json},"sessionId":{session.session_id}'
            f',"traits":{traits or device.traits_json}{session_start}}}'
            f',"event":{event},"integrations":{{"All":true}},"messageId":"{self._ids.uuid4()}"'
            f',"originalTimestamp":"{_iso_ms(original)}","properties":{properties}'
            f',"receivedAt":"{_iso_ms(received_ms)}","request_ip":"{device.ip}"'
            f',"rudderId":"{device.rudder_id}"'
            f',"sentAt":"{_iso_ms(sent)}","type":"{type_}"{device.user_field}{extra}}}'
        )

    def _enter(self, session: _Session, pj: _PageJson) -> str:
        """Move the session to a page and return the page's context.page JSON."""
        if session.last_url is None:
            search = session.search
            url = _q(pj.page.url + search) if search else pj.url
            referrer, referring_domain = session.referrer, session.referring_domain
        else:
            search, url = "", pj.url
            referrer, referring_domain = session.last_url, session.last_host
        session.page_json = (
            f'{{"initial_referrer":{session.referrer},"initial_referring_domain":{session.referring_domain}'
            f',"path":{pj.path},"referrer":{referrer},"referring_domain":{referring_domain}'
            f',"search":{_q(search) if search else _EMPTY},"tab_url":{url},"title":{pj.title},"url":{url}}}'
        )
        # The SDK derives context.campaign from the current URL, so only the landing page has it.
        session.on_campaign_page = bool(search)
        session.last_url = url
        session.last_host = pj.host
        return session.page_json

    def page(self, session: _Session, page: _Page, received_ms: int) -> Line:
        pj = _page_json(page)
        page_json = self._enter(session, pj)
        # A tracking-plan change half way through: a property the early files never had.
        evolved = pj.content_group_field if received_ms >= self._evolve_at_ms else ""
        properties = f'{{"name":{pj.name},{page_json[1:-1]}{pj.category_field}{evolved}}}'
        extra = f'{pj.category_field},"name":{pj.name}'
        return "page", self._line(session, "page", received_ms, properties=properties, extra=extra)

    def track(
        self,
        session: _Session,
        name: str,
        properties: dict[str, Any],
        received_ms: int,
        traits: dict[str, Any] | None = None,
    ) -> Line:
        # Options traits go to context.traits for this event only; the SDK does not persist them.
        traits_json = _dumps({**session.device.traits, **traits}) if traits else None
        line = self._line(session, "track", received_ms, _q(name), _dumps(properties), traits=traits_json)
        return "track", line

    def identify(self, session: _Session, user_id: str | None, traits: dict[str, Any], received_ms: int) -> Line:
        device = session.device
        if user_id:
            device.set_user(user_id)
        device.set_traits({**device.traits, **traits})
        return "identify", self._line(session, "identify", received_ms)

    def group(self, session: _Session, company: Company, received_ms: int) -> Line:
        traits = {
            "name": company.name,
            "domain": company.domain,
            "industry": company.industry,
            "employees": company.employees,
            "country": company.country,
        }
        extra = f',"groupId":{_q(company.company_id)},"traits":{_dumps(traits)}'
        return "group", self._line(session, "group", received_ms, extra=extra)

    def alias(self, session: _Session, user_id: str, received_ms: int) -> Line:
        device = session.device
        previous = device.user_id or device.anonymous_id
        device.set_user(user_id)
        return "alias", self._line(session, "alias", received_ms, extra=f',"previousId":{_q(previous)}')


class _Server:
    """Node (`analytics-node`) and Python (`analytics-python` 2.1.9) payloads, channel server."""

    def __init__(self, rng: random.Random, ids: _Ids):
        self._rng = rng
        self._ids = ids

    def _integrations(self) -> dict[str, bool]:
        roll = self._rng.random()
        if roll < 0.005:
            return {"All": True, "Snowflake": False}  # kept out of the warehouse
        if roll < 0.007:
            return {"All": False, "Customer IO": True}
        return _ALL

    def _node(self, type_: str, user_id: str, received_ms: int, anonymous_id: str | None) -> Event:
        sent = received_ms - self._rng.randrange(5, 80)
        event: Event = {
            "_metadata": _NODE_METADATA,
            "channel": "server",
            "context": {"library": _NODE_LIBRARY},
            "integrations": self._integrations(),
            "messageId": self._ids.uuid4(),
            "originalTimestamp": _iso_ms(sent - self._rng.randrange(0, 400)),
            "receivedAt": _iso_ms(received_ms),
            "request_ip": _NODE_IPS[received_ms % 2],
            "rudderId": rudder_id(user_id, anonymous_id),
            "sentAt": _iso_ms(sent),
            "type": type_,
            "userId": user_id,
        }
        if anonymous_id:
            event["anonymousId"] = anonymous_id
        return event

    def node_track(
        self, user_id: str, name: str, properties: dict[str, Any], anonymous_id: str | None, received_ms: int
    ) -> Line:
        event = self._node("track", user_id, received_ms, anonymous_id)
        event["event"] = name
        event["properties"] = properties
        return "track", _dumps(event)

    def node_identify(self, user_id: str, traits: dict[str, Any], anonymous_id: str | None, received_ms: int) -> Line:
        event = self._node("identify", user_id, received_ms, anonymous_id)
        # Node puts traits at the root and copies them into context.traits.
        event["traits"] = traits
        event["context"] = {"library": _NODE_LIBRARY, "traits": dict(traits)}
        return "identify", _dumps(event)

    def _python(self, type_: str, user_id: str, received_ms: int) -> Event:
        sent_us = received_ms * 1000 - self._rng.randrange(20_000, 900_000)
        return {
            "anonymousId": None,  # the Python SDK sends null rather than leaving it out
            "channel": "server",
            "context": {"library": _PY_LIBRARY},
            "integrations": self._integrations(),
            "messageId": self._ids.uuid4(),
            "receivedAt": _iso_ms(received_ms),
            "request_ip": _PY_IPS[received_ms % 2],
            "rudderId": rudder_id(user_id, None),
            "timestamp": _iso_us(sent_us),
            "type": type_,
            "userId": user_id,
        }

    def python_track(self, user_id: str, name: str, properties: dict[str, Any], received_ms: int) -> Line:
        event = self._python("track", user_id, received_ms)
        event["event"] = name
        event["properties"] = properties
        return "track", _dumps(event)

    def python_identify(self, user_id: str, traits: dict[str, Any], received_ms: int) -> Line:
        event = self._python("identify", user_id, received_ms)
        event["context"] = {"library": _PY_LIBRARY, "traits": traits}
        return "identify", _dumps(event)


# ----------------------------------------------------------------------------- anonymous web traffic


def _pricing_properties(rng: random.Random, plan: str, evolved: bool) -> dict[str, Any]:
    chosen = rng.sample(_PRODUCTS, rng.randint(1, 3))
    products = [{**p, "quantity": 1} for p in chosen]
    total = _PLAN_PRICES[plan] + sum(p["price"] for p in chosen)
    properties: dict[str, Any] = {
        "plan": plan,
        "events_per_month": rng.choice((1_000_000, 5_000_000, 25_000_000, 100_000_000)),
        "revenue": total,
        "currency": "USD",
        "products": products,
        "cart": {"total": total, "currency": "USD", "items": len(products)},
    }
    if evolved:
        properties["coupon"] = rng.choice((None, "LAUNCHWEEK", "STARTUP50"))
    return properties


class _AnonymousTraffic:
    """Browsing by visitors the world does not know: a pool of concurrent sessions, new and returning."""

    POOL = 40

    def __init__(self, rng: random.Random, ids: _Ids, web: _Web, evolve_at_ms: int):
        self._rng = rng
        self._ids = ids
        self._web = web
        self._evolve_at_ms = evolve_at_ms
        self._sessions: list[_Session] = []
        # Bounded, so memory does not grow with the run; older visitors simply never come back.
        self._returning: deque[_Device] = deque(maxlen=5000)
        self._priced = False
        self.visitors = 0

    def _start_session(self) -> _Session:
        rng = self._rng
        if self._returning and rng.random() < 0.3:
            device = self._returning[int(rng.random() * len(self._returning))]
        else:
            device = _make_device(rng, self._ids.uuid4())
            self._returning.append(device)
            self.visitors += 1
        session = _new_session(rng, device)
        session.pages_left = _SESSION_PAGES.pick(rng)
        return session

    def _pick(self) -> tuple[int, _Session]:
        if len(self._sessions) < self.POOL:
            self._sessions.append(self._start_session())
        index = int(self._rng.random() * len(self._sessions))
        return index, self._sessions[index]

    def _retire(self, index: int) -> None:
        last = self._sessions.pop()
        if index < len(self._sessions):
            self._sessions[index] = last

    def next_event(self, received_ms: int) -> Line:
        index, session = self._pick()
        if session.last_url is not None and self._rng.random() < 0.12:
            return self._track(session, received_ms)
        session.pages_left -= 1
        if session.pages_left <= 0:
            self._retire(index)
        return self._web.page(session, _MARKETING.pick(self._rng), received_ms)

    def custom_track(self, received_ms: int, name: str, properties: dict[str, Any]) -> Line:
        _index, session = self._pick()
        return self._web.track(session, name, properties, received_ms)

    def pricing(self, received_ms: int) -> dict[str, Any]:
        plan = self._rng.choice(("pro", "enterprise"))
        return _pricing_properties(self._rng, plan, received_ms >= self._evolve_at_ms)

    def _track(self, session: _Session, received_ms: int) -> Line:
        rng = self._rng
        # The first track is a pricing one, so that `revenue` is numeric before any type_conflict line.
        roll = rng.random() if self._priced else 0.5
        properties: dict[str, Any]
        if roll < 0.45:
            name = "cta_clicked"
            properties = {
                "label": rng.choice(("Get started free", "Request demo", "Read the docs")),
                "location": rng.choice(("hero", "navbar", "footer")),
                "href": rng.choice(("/signup", "/request-demo/", "/docs/")),
            }
            if received_ms >= self._evolve_at_ms:
                properties["experiment"] = {"id": "homepage-hero-q1", "variant": rng.choice("ab")}
        elif roll < 0.7:
            name, properties = "pricing_calculated", self.pricing(received_ms)
            self._priced = True
        elif roll < 0.85:
            name = "docs_searched"
            topics = ("sources", "destinations", "transformations", "api")
            properties = {
                "query": rng.choice(_DOC_QUERIES),
                "results": rng.randrange(0, 40),
                "filters": rng.sample(topics, rng.randint(0, 2)),
            }
        else:
            name = "video_played"
            properties = {"video_id": f"vid_{rng.randrange(1, 30):03d}", "duration": rng.randrange(60, 1800)}
        return self._web.track(session, name, properties, received_ms)


# ---------------------------------------------------------------------------------- known journeys


@dataclass(frozen=True, slots=True)
class _Step:
    at: datetime
    source: str
    build: Builder


class _Journeys:
    """Turns a person's milestones in the world into the events their devices and our servers send."""

    def __init__(self, rng: random.Random, web: _Web, server: _Server):
        self._rng = rng
        self._web = web
        self._server = server

    def plan(self, person: Person) -> list[_Step]:
        rng = self._rng
        # Seeded by the device id: the same person's browser looks the same in every run and seed.
        devices = [_make_device(random.Random(a), a, person.country) for a in person.anonymous_ids]
        steps: list[_Step] = []
        first_milestone = person.lead_at or person.signed_up_at or WORLD_END
        for k in range(rng.choice((1, 1, 2, 3))):
            at = person.created_at + (first_milestone - person.created_at) * (k / 3)
            self._browse(steps, devices[0], at, rng.randint(1, 4))
        if person.lead_at is not None:
            self._form_submit(steps, person, devices[0], person.lead_at)
        if person.user_id is not None and person.signed_up_at is not None:
            self._signed_up(steps, person, devices[0], person.user_id, person.signed_up_at)
            self._product_use(steps, person, devices[0], person.user_id, person.signed_up_at)
        for device in devices[1:]:
            self._other_device(steps, person, device)
        for anonymous_id in person.borrowed_anonymous_ids:
            self._borrowed_device(
                steps, person, _make_device(random.Random(anonymous_id), anonymous_id, person.country)
            )
        self._consent(steps, person, devices[0])
        steps.sort(key=lambda s: s.at)  # stable: steps at the same moment keep their order
        return steps

    # -- helpers

    def _web_step(self, steps: list[_Step], at: datetime, build: Callable[..., Line], *args: Any, **kw: Any) -> None:
        steps.append(_Step(at, "web", partial(build, *args, **kw)))

    def _browse(self, steps: list[_Step], device: _Device, at: datetime, pages: int) -> tuple[_Session, datetime]:
        session = _new_session(self._rng, device)
        for _ in range(pages):
            self._web_step(steps, at, self._web.page, session, _MARKETING.pick(self._rng))
            at += timedelta(seconds=self._rng.randrange(10, 180))
        return session, at

    def _app_visit(self, steps: list[_Step], device: _Device, at: datetime, pages: Sequence[_Page]) -> _Session:
        session = _new_session(self._rng, device, campaign={})
        session.referrer, session.referring_domain = _q("$direct"), _EMPTY
        for page in pages:
            self._web_step(steps, at, self._web.page, session, page)
            at += timedelta(seconds=self._rng.randrange(5, 90))
        return session

    def _traits(self, person: Person, extra: dict[str, Any]) -> dict[str, Any]:
        traits: dict[str, Any] = {
            "email": person.email_as_typed(self._rng),
            "firstName": person.first_name,
            "lastName": person.last_name,
            "company": person.company.name,
        }
        traits.update(extra)
        return traits

    # -- milestones

    def _form_submit(self, steps: list[_Step], person: Person, device: _Device, lead_at: datetime) -> None:
        rng = self._rng
        form = rng.choice(_FORMS)
        campaign = rng.choice(_CAMPAIGNS) if rng.random() < 0.6 else {}
        raid = f"rd_{rng.getrandbits(24):06x}" if rng.random() < 0.1 else None
        test_user = "true" if person.is_test else None
        extra_query = "&".join(
            part for part in (f"raid={raid}" if raid else "", "test_user=true" if test_user else "") if part
        )
        session = _new_session(rng, device, campaign=campaign, extra_query=extra_query)
        landed_at = lead_at - timedelta(seconds=rng.randrange(30, 300))
        self._web_step(steps, landed_at, self._web.page, session, form.page)
        # The site's handler (see the data-stack overview) reads utm_* with params.get: null when absent.
        properties = {
            "page": form.page.title,
            "page_URL": form.page.url + session.search,
            "form_id": form.form_id,
            "label": form.form_id,
            "category": form.section,
            "conversion_page": form.page.title,
            "utm_source": campaign.get("source"),
            "utm_medium": campaign.get("medium"),
            "utm_campaign": campaign.get("name"),
            "utm_content": campaign.get("content"),
            "utm_term": campaign.get("term"),
            "raid": raid,
            "test_user": test_user,
        }
        extra: dict[str, Any] = {
            "form_id": form.form_id,
            "conversion_page": form.page.title,
            "title": person.title,
        }
        if person.phone and rng.random() < 0.5:
            extra["phone"] = person.phone
        if person.consent("email", lead_at):
            extra["email_opt_in"] = True
        traits = self._traits(person, extra)
        self._web_step(steps, lead_at, self._web.track, session, "form_submit", properties, traits=traits)
        if rng.random() < 0.4:
            # Some forms also call identify(traits) with no user id: the browser keeps the email.
            at = lead_at + timedelta(seconds=1)
            self._web_step(steps, at, self._web.identify, session, None, {"email": traits["email"]})

    def _signed_up(
        self, steps: list[_Step], person: Person, device: _Device, user_id: str, signed_up_at: datetime
    ) -> None:
        rng = self._rng
        session = self._app_visit(steps, device, signed_up_at - timedelta(seconds=150), (_SIGNUP_PAGE,))
        if rng.random() < 0.12:
            self._web_step(steps, signed_up_at - timedelta(seconds=40), self._web.alias, session, user_id)
        extra: dict[str, Any] = {"title": person.title}
        if person.lead_at is None and person.consent("email", signed_up_at):
            extra["email_opt_in"] = True
        traits = self._traits(person, extra)
        identify_at = signed_up_at - timedelta(seconds=30)
        self._web_step(steps, identify_at, self._web.identify, session, user_id, traits)
        # The app server knows the browser's anonymousId only when the front end passes it along.
        anonymous_id = device.anonymous_id if rng.random() < 0.5 else None
        signup = {"method": rng.choice(("email", "google", "github")), "plan": "free"}
        node_track = partial(self._server.node_track, user_id, "signed_up", signup, anonymous_id)
        steps.append(_Step(signed_up_at, "server", node_track))
        node_identify = partial(_node_signup_identify, self._server, person, user_id, anonymous_id)
        steps.append(_Step(signed_up_at + timedelta(seconds=1), "server", node_identify))
        if rng.random() < 0.3:
            group_at = signed_up_at + timedelta(seconds=20)
            self._web_step(steps, group_at, self._web.group, session, person.company)
        for k in range(rng.randint(1, 3)):
            at = signed_up_at + timedelta(seconds=40 + 30 * k)
            self._web_step(steps, at, self._web.page, session, rng.choice(_APP_PAGES))

    def _product_use(
        self, steps: list[_Step], person: Person, device: _Device, user_id: str, signed_up_at: datetime
    ) -> None:
        rng = self._rng
        room = WORLD_END - signed_up_at - timedelta(hours=1)
        for _ in range(rng.randint(1, 4)):
            at = signed_up_at + timedelta(hours=1) + rng.random() * room
            self._app_visit(steps, device, at, rng.sample(_APP_PAGES, rng.randint(1, 3)))
        if person.source_created_at is not None:
            at = person.source_created_at
            self._app_visit(steps, device, at - timedelta(seconds=90), (_APP_PAGES[1], _NEW_SOURCE_PAGE))
            properties = {
                "source_type": rng.choice(("Javascript", "Python", "Node", "iOS", "Android", "Webhook")),
                "source_id": _ksuid(rng),
                "workspace_id": f"ws_{person.person_id}",
            }
            self._python_track(steps, at, user_id, "source_created", properties)
        if person.quote_requested_at is not None:
            properties = {
                "company": person.company.name,
                "employees": person.company.employees,
                "seats": rng.choice((5, 10, 25, 50)),
                "message": "We need SSO and a dedicated data plane.",
            }
            at = person.quote_requested_at
            self._python_track(steps, at, user_id, "enterprise_quote_requested", properties)
        if person.customer_at is not None and person.plan is not None:
            self._subscription(steps, person, device, user_id, person.customer_at, person.plan)

    def _python_track(
        self, steps: list[_Step], at: datetime, user_id: str, name: str, properties: dict[str, Any]
    ) -> None:
        steps.append(_Step(at, "python", partial(self._server.python_track, user_id, name, properties)))

    def _python_identify(self, steps: list[_Step], at: datetime, user_id: str, traits: dict[str, Any]) -> None:
        steps.append(_Step(at, "python", partial(self._server.python_identify, user_id, traits)))

    def _subscription(
        self, steps: list[_Step], person: Person, device: _Device, user_id: str, at: datetime, plan: str
    ) -> None:
        rng = self._rng
        session = self._app_visit(steps, device, at - timedelta(seconds=300), (_BILLING_PAGE,))
        cart = _pricing_properties(rng, plan, evolved=False)
        self._web_step(steps, at - timedelta(seconds=200), self._web.track, session, "checkout_started", cart)
        properties = {
            "plan": plan,
            "revenue": cart["revenue"],
            "currency": "USD",
            "billing_interval": rng.choice(("month", "year")),
            "products": cart["products"],
        }
        self._python_track(steps, at, user_id, "subscription_started", properties)
        traits = {"email": person.email, "plan": plan, "company": person.company.name}
        self._python_identify(steps, at + timedelta(seconds=2), user_id, traits)

    def _other_device(self, steps: list[_Step], person: Person, device: _Device) -> None:
        rng = self._rng
        if person.user_id is None or person.signed_up_at is None:
            # Never identified: this device's browsing stays anonymous forever.
            at = person.created_at + rng.random() * (WORLD_END - person.created_at - timedelta(hours=1))
            self._browse(steps, device, at, rng.randint(1, 3))
            return
        room = WORLD_END - person.signed_up_at - timedelta(hours=2)
        self._login_visit(
            steps, person, person.user_id, device, person.signed_up_at + timedelta(hours=1) + rng.random() * room
        )

    def _borrowed_device(self, steps: list[_Step], person: Person, device: _Device) -> None:
        """A visit on a colleague's laptop: some anonymous browsing, then this person logs in there."""
        if person.user_id is None or person.signed_up_at is None:
            return
        room = WORLD_END - person.signed_up_at - timedelta(hours=3)
        at = person.signed_up_at + timedelta(hours=2) + self._rng.random() * room
        self._login_visit(steps, person, person.user_id, device, at)

    def _login_visit(self, steps: list[_Step], person: Person, user_id: str, device: _Device, at: datetime) -> None:
        """Some browsing on `device`, then `person` logs in there and opens an app page."""
        rng = self._rng
        session, at = self._browse(steps, device, at, rng.randint(1, 2))
        self._web_step(steps, at, self._web.page, session, _LOGIN_PAGE)
        traits = {"email": person.email_as_typed(rng)}
        self._web_step(steps, at + timedelta(seconds=20), self._web.identify, session, user_id, traits)
        self._web_step(steps, at + timedelta(seconds=40), self._web.page, session, rng.choice(_APP_PAGES))

    def _consent(self, steps: list[_Step], person: Person, device: _Device) -> None:
        for change in person.consent_changes:
            if change.source == "signup_form" and change.channel == "email":
                continue  # carried as `email_opt_in` in the form or sign-up traits
            if change.channel != "email":
                if change.system == "backend" and person.user_id:
                    traits = {f"{change.channel}_subscribed": change.subscribed}
                    self._python_identify(steps, change.at, person.user_id, traits)
                continue
            name = "email_resubscribed" if change.subscribed else "email_unsubscribed"
            if change.system == "web":
                self._consent_web(steps, person, device, change.at, name, change.source)
            elif change.system == "backend" and person.user_id:
                self._consent_backend(steps, person, person.user_id, change.at, name)

    def _consent_web(
        self, steps: list[_Step], person: Person, device: _Device, at: datetime, name: str, source: str
    ) -> None:
        rng = self._rng
        session = self._app_visit(steps, device, at - timedelta(seconds=60), (_PREFERENCES_PAGE,))
        unsubscribed = name == "email_unsubscribed"
        reason = rng.choice(("too_many_emails", "not_relevant", "other")) if unsubscribed else None
        properties = {"channel": "email", "reason": reason, "source": source}
        self._web_step(steps, at, self._web.track, session, name, properties)
        traits = {"email": person.email_as_typed(rng), "unsubscribed": unsubscribed}
        self._web_step(steps, at + timedelta(seconds=2), self._web.identify, session, person.user_id, traits)

    def _consent_backend(self, steps: list[_Step], person: Person, user_id: str, at: datetime, name: str) -> None:
        properties = {
            "channel": "email",
            "reason": "unsubscribe_link",
            "source": "email_footer",
            "campaign_id": f"cio_{self._rng.randrange(100, 999)}",
        }
        self._python_track(steps, at, user_id, name, properties)
        traits = {"email": person.email, "unsubscribed": name == "email_unsubscribed"}
        self._python_identify(steps, at + timedelta(seconds=1), user_id, traits)


def _node_signup_identify(
    server: _Server, person: Person, user_id: str, anonymous_id: str | None, received_ms: int
) -> Line:
    traits = {
        "email": person.email,
        "firstName": person.first_name,
        "lastName": person.last_name,
        "name": person.full_name,
        "title": person.title,
        "company": {"id": person.company.company_id, "name": person.company.name},
        # The account's creation time on the stream's clock, not the world's.
        "createdAt": _iso_ms(received_ms),
    }
    return server.node_identify(user_id, traits, anonymous_id, received_ms)


def _opted_back_in(person: Person) -> bool:
    """An opt-out that shows up as an event, followed by an opt-in."""
    email = [c for c in person.consent_changes if c.channel == "email" and c.source != "signup_form"]
    return len(email) == 2 and email[0].system in ("web", "backend") and email[1].subscribed


def _late_source(person: Person) -> bool:
    if person.signed_up_at is None or person.source_created_at is None:
        return False
    return person.source_created_at - person.signed_up_at > timedelta(days=3)


_SHOWCASE: tuple[Callable[[Person], bool], ...] = (
    lambda p: p.lead_at is not None and p.user_id is not None and len(p.anonymous_ids) > 1,
    lambda p: p.is_internal,
    lambda p: p.is_test,
    _opted_back_in,
    lambda p: p.lifecycle_stage == "customer",
    lambda p: p.user_id is not None and not p.created_source,
    _late_source,
    lambda p: p.lifecycle_stage == "lead",
)


def _people_order(world: World, rng: random.Random) -> list[Person]:
    """Everyone, shuffled, but with one example of each kind of journey first, for small runs."""
    people = list(world.people)
    rng.shuffle(people)
    chosen: dict[str, Person] = {}
    for predicate in _SHOWCASE:
        match = next((p for p in people if predicate(p) and p.person_id not in chosen), None)
        if match is not None:
            chosen[match.person_id] = match
    return list(chosen.values()) + [p for p in people if p.person_id not in chosen]


# ------------------------------------------------------------------------------------------ bad input


class _BadLines:
    """The replacement line for each bad slot; "duplicate" is the writer's, which holds earlier lines."""

    def __init__(self, rng: random.Random, traffic: _AnonymousTraffic, server: _Server, user_ids: list[str]):
        self._rng = rng
        self._traffic = traffic
        self._server = server
        self._user_ids = user_ids or ["usr_00000"]
        self._count = 0

    def _template(self, source: str, received_ms: int) -> Event:
        if source == "web":
            _kind, line = self._traffic.next_event(received_ms)
        else:
            user_id = self._user_ids[int(self._rng.random() * len(self._user_ids))]
            if source == "server":
                props = {"provider": "stripe"}
                _kind, line = self._server.node_track(user_id, "webhook_received", props, None, received_ms)
            else:
                props = {"rows": self._rng.randrange(1000)}
                _kind, line = self._server.python_track(user_id, "sync_finished", props, received_ms)
        return json.loads(line)

    def build(self, reason: str, received_ms: int) -> tuple[str, str]:
        """(source, line) for any reason but "duplicate"; the shape-only kinds rotate over the sources."""
        source = ("web", "server", "python")[(self._count // len(BAD_REASONS)) % 3]
        self._count += 1
        if reason == "oversized":
            return "web", self._oversized(received_ms)
        if reason == "type_conflict":
            properties = self._traffic.pricing(received_ms)
            properties["revenue"] = self._rng.choice(_NON_NUMERIC_REVENUE)
            return "web", self._traffic.custom_track(received_ms, "pricing_calculated", properties)[1]
        event = self._template(source, received_ms)
        if reason == "invalid_json":
            text = _dumps(event)
            return source, text[: len(text) // 2]
        if reason == "not_an_object":
            return source, (_dumps([event]) if self._count % 2 else str(self._rng.randrange(1, 1000)))
        if reason == "missing_ids":
            event.pop("userId", None)
            event.pop("anonymousId", None)
            if self._count % 2:
                event["userId"], event["anonymousId"] = "", None  # present but empty is still no id
            return source, _dumps(event)
        if reason == "unknown_type":
            event["type"] = "bogus"
            return source, _dumps(event)
        raise ValueError(f"unknown bad-line reason {reason!r}")

    def _oversized(self, received_ms: int) -> str:
        frame = "    at HTMLButtonElement.onClick (https://www.rudderstack.com/static/app.3f9a1c.js:1:{})\n"
        stack = "".join(frame.format(n) for n in range(OVERSIZE_BYTES // 70 + 40))
        properties = {"message": "TypeError: Cannot read properties of undefined", "stack": stack}
        return self._traffic.custom_track(received_ms, "js_error", properties)[1]


def _evenly_spaced(count: int, total: int) -> Iterator[int]:
    for k in range(count):
        yield int((k + 0.5) * total / count)


# --------------------------------------------------------------------------------------- dump files


@dataclass(slots=True)
class _Buffer:
    lines: list[str] = field(default_factory=list)
    window: int = -1
    last_ms: int = 0
    last_good: str | None = None
    previous_file_good: str | None = None


class _DumpWriter:
    """Per-source files cut at `events_per_file` lines or a 30-minute boundary, whichever comes first."""

    def __init__(self, store: LandingStore, rng: random.Random, ids: _Ids, events_per_file: int, blanks: bool):
        self._store = store
        self._rng = rng
        self._ids = ids
        self._per_file = events_per_file
        self._blanks = blanks
        self._buffers = {key: _Buffer() for key in SOURCES}
        self.files: list[str] = []
        self.bytes_written = 0
        self.blank_lines = 0
        self.lines_by_source = dict.fromkeys(SOURCES, 0)

    def add(self, source: str, line: str, received_ms: int, good: bool) -> None:
        buf = self._buffers[source]
        window = received_ms // WINDOW_MS
        if buf.lines and (window != buf.window or len(buf.lines) >= self._per_file):
            self._flush(source)
        if not buf.lines:
            buf.window = window
        buf.lines.append(line)
        buf.last_ms = received_ms
        self.lines_by_source[source] += 1
        if good:
            buf.last_good = line

    def duplicate(self, ordinal: int) -> tuple[str, str]:
        """An earlier good line to re-send: alternately from the open file and from a previous file."""
        order = ("web", "server", "python")
        for shift in range(3):
            source = order[(ordinal + shift) % 3]
            buf = self._buffers[source]
            line = buf.previous_file_good if ordinal % 2 and buf.previous_file_good else buf.last_good
            if line is not None:
                return source, line
        raise RuntimeError("no earlier line to duplicate")  # unreachable: the first slot is always good

    def _flush(self, source: str) -> None:
        buf = self._buffers[source]
        file_number = len(self.files)
        lines = buf.lines
        if self._blanks and file_number % 3 == 0:
            # Stray empty lines happen in real dumps; they are not events.
            middle = len(lines) // 2
            lines = [*lines[:middle], "", *lines[middle:]]
            self.blank_lines += 1
        text = "\n".join(lines) + "\n"
        data = gzip.compress(text.encode(), compresslevel=5, mtime=0)
        uploaded_at = datetime.fromtimestamp((buf.last_ms + self._rng.randrange(500, 30_000)) / 1000, UTC)
        # About one file in ten sits under the legacy MM-DD-YYYY folder, as in long-lived buckets.
        legacy = file_number % 10 == 1
        key = dump_key(SOURCES[source].source_id, uploaded_at, self._ids.uuid4(), legacy_date=legacy)
        self._store.put(key, data)
        self.files.append(key)
        self.bytes_written += len(data)
        buf.previous_file_good = buf.last_good
        buf.lines = []

    def close(self) -> None:
        pending = [key for key, buf in self._buffers.items() if buf.lines]
        for source in sorted(pending, key=lambda key: self._buffers[key].last_ms):
            self._flush(source)


# ------------------------------------------------------------------------------------------ the run


class _Run:
    def __init__(
        self,
        store: LandingStore,
        events: int,
        seed: int,
        start: datetime,
        span: timedelta,
        bad_fraction: float,
        events_per_file: int,
        world: World,
    ):
        self.events = events
        self.start = start
        self.span = span
        self.start_ms = _epoch_ms(start)
        self.span_ms = max(1, round(span.total_seconds() * 1000))
        self.world = world
        self.n_bad = round(bad_fraction * events)
        # Separate streams, so that a change in one part (say file cutting) does not reshuffle the rest.
        self.rng = random.Random(f"events:{seed}")
        ids = _Ids(random.Random(f"ids:{seed}"))
        evolve_at_ms = self.start_ms + self.span_ms // 2
        self.web = _Web(self.rng, ids, evolve_at_ms)
        self.server = _Server(self.rng, ids)
        self.traffic = _AnonymousTraffic(self.rng, ids, self.web, evolve_at_ms)
        file_rng = random.Random(f"files:{seed}")
        self.writer = _DumpWriter(store, file_rng, ids, events_per_file, blanks=bad_fraction > 0)
        user_ids = [p.user_id for p in world.people if p.user_id]
        self.bad = _BadLines(self.rng, self.traffic, self.server, user_ids)
        self.lines_by_kind: dict[str, int] = {}
        self.bad_by_reason = dict.fromkeys(BAD_REASONS, 0)

    def _plan_journeys(self) -> tuple[list[_Step], int]:
        budget = min(self.events - self.n_bad, int(self.events * JOURNEY_SHARE))
        journeys = _Journeys(self.rng, self.web, self.server)
        planned: list[tuple[datetime, int, int, _Step]] = []
        people_used = 0
        for person in _people_order(self.world, self.rng):
            if budget - len(planned) < 3:
                break
            steps = journeys.plan(person)
            if len(planned) + len(steps) > budget:
                continue
            planned.extend((step.at, people_used, n, step) for n, step in enumerate(steps))
            people_used += 1
        planned.sort(key=lambda item: item[:3])
        return [item[3] for item in planned], people_used

    def _slot(self, at: datetime) -> int:
        """The line number a moment of the world's history falls on."""
        fraction = (at - EPOCH) / HISTORY
        return min(self.events - 1, max(0, int(fraction * self.events)))

    def execute(self) -> GenerationSummary:
        steps, people_used = self._plan_journeys()
        slots = [self._slot(step.at) for step in steps]
        bad_slots = _evenly_spaced(self.n_bad, self.events)
        next_bad = next(bad_slots, -1)
        bad_done = 0
        j = 0
        for i in range(self.events):
            # Evenly spaced, the last line exactly at the end of the span ("now" by default).
            received_ms = self.start_ms + (i + 1) * self.span_ms // self.events
            if i == next_bad:
                self._emit_bad(bad_done, received_ms)
                bad_done += 1
                next_bad = next(bad_slots, -1)
                continue
            # A journey step goes out at its slot, or earlier-than-late when the free slots run out.
            free_slots = self.events - i - (self.n_bad - bad_done)
            if j < len(steps) and (slots[j] <= i or free_slots <= len(steps) - j):
                step = steps[j]
                j += 1
                self._emit(step.source, step.build(received_ms), received_ms)
            else:
                self._emit("web", self.traffic.next_event(received_ms), received_ms)
        self.writer.close()
        return self._summary(people_used)

    def _emit(self, source: str, line: Line, received_ms: int) -> None:
        kind, text = line
        self.lines_by_kind[kind] = self.lines_by_kind.get(kind, 0) + 1
        self.writer.add(source, text, received_ms, good=True)

    def _emit_bad(self, ordinal: int, received_ms: int) -> None:
        reason = BAD_REASONS[ordinal % len(BAD_REASONS)]
        if reason == "duplicate":
            source, text = self.writer.duplicate(ordinal // len(BAD_REASONS))
        else:
            source, text = self.bad.build(reason, received_ms)
        self.bad_by_reason[reason] += 1
        self.writer.add(source, text, received_ms, good=False)

    def _summary(self, people_used: int) -> GenerationSummary:
        writer = self.writer
        return GenerationSummary(
            files=list(writer.files),
            events=self.events,
            lines_by_kind=dict(sorted(self.lines_by_kind.items())),
            bad_lines_by_reason=dict(self.bad_by_reason),
            people_used=people_used,
            anonymous_visitors=self.traffic.visitors,
            lines_by_source=dict(writer.lines_by_source),
            blank_lines=writer.blank_lines,
            bytes_written=writer.bytes_written,
            start=self.start,
            end=self.start + self.span,
            source_ids={key: spec.source_id for key, spec in SOURCES.items()},
        )
