"""The Customer.io extract (App API, into `raw_customerio`) and the Track API client reverse ETL writes with.

Resources
---------
- `customers`: one row per person (`id`, `cio_id`, `email`, `unsubscribed`, `unsubscribed_at`, the
  attributes as `attributes__*` columns, `timestamps` and `devices` as JSON), merged on `id`.
  The App API has no "changed since" filter for people, so updates come from the Activities feed
  (`GET /v1/activities`, newest first, kept 30 days): each run reads the `profile_create` and
  `attribute_change` activities and, with `deleted=true`, the `profile_delete` ones, back to the
  newest activity time the previous run saw (inclusive), and re-reads the attributes of every person
  they name (`POST /v1/customers/attributes`, 100 ids a call). A person that no longer exists (deleted,
  merged away or suppressed, which in Customer.io is an erasure) is removed from the table (a row with
  `_deleted = true`, dlt's hard delete). The first run lists everyone with a filter search (1,000 ids a
  call) after noting the newest activity, so a change made while it runs is read again next time.
  The daily schedule stays far inside the feed's 30 days; after a longer gap, reload with
  `pipeline.run(..., refresh="drop_resources")`.
- `unsubscribes`: the history of the `unsubscribed` attribute (its `attribute_change` activities):
  who unsubscribed from or resubscribed to email, and when. Appended, primary key the activity id,
  cursor `timestamp`. The current state is `customers.unsubscribed`; the history is what the consent
  model needs to order an opt-out against a later opt-in.
- `suppressions`: the email provider's suppressions (`GET /v1/esp/suppression/{type}` for bounces,
  blocks, spam_reports and invalid_emails), replaced each run (an address the ESP released disappears).
- `optouts`: SMS opt-outs (a STOP reply), one row per person, channel and sender (`GET /v1/optouts`),
  replaced each run.
- `campaigns`, `segments` (merged on `id`), `segment_members` (per segment, replaced each run, because a
  person who left a segment must leave the table).
- `messages`: appended, primary key `id`, cursor `created`; the next run sends `start_ts=<last created>`
  (inclusive; dlt drops the boundary rows it already has). The first run takes what the API returns
  without a time filter: the last 6 months. Metrics that arrive after a message was loaded (an open
  days later) are not re-read.

Every call goes through `ApiPolicy` (paced below the App API's 10 requests/s; 429 retried after its
Retry-After, 5xx and connection errors with backoff) on a `dlt.sources.helpers.requests.Session` that
has no retry adapter of its own, so the policy is the only retry layer and `CallStats` counts every
call. A rejected App API key raises `CustomerIOAuthError`; retries running out raise `RetriesExhausted`.
Either fails the extract before anything is committed, so no cursor moves.

Track API
---------
`track_client(config)` returns the real `customerio.CustomerIO`. Against the sandbox it is a subclass
whose session sends the library's `https://` requests to the stand-in over plain HTTP, keeping the
library's own retry policy (saas-apis.md §6.1 (C)); the production path is the unmodified library.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import customerio
import dlt
import requests
from dlt.extract import DltResource, DltSource
from dlt.sources.helpers.requests import Session

from cdp_assets.sources.http_adapters import SandboxRewriteAdapter
from cdp_assets.sources.policy import ApiPolicy, CallStats, Decision, Retry, retry_after
from cdp_assets.sources.responses import BadResponse, parse_json

Obj = dict[str, Any]

APP_API_URLS = {"us": "https://api.customer.io", "eu": "https://api-eu.customer.io"}
ESP_SUPPRESSION_TYPES = ("bounces", "blocks", "spam_reports", "invalid_emails")
MAX_ATTRIBUTE_IDS = 100  # POST /v1/customers/attributes takes at most 100 ids
MAX_ACTIVITY_PAGE = 100  # GET /v1/activities returns at most 100 a page
# Everyone: the search needs a filter, and every person has an id or an email.
EVERYONE = {
    "filter": {
        "or": [
            {"attribute": {"field": "id", "operator": "exists"}},
            {"attribute": {"field": "email", "operator": "exists"}},
        ]
    }
}
# The activities that say a person was created, changed or removed (the last only with deleted=true).
_PERSON_ACTIVITIES = (("profile_create", False), ("attribute_change", False), ("profile_delete", True))


class CustomerIOConfigError(ValueError):
    """The Customer.io configuration is missing or malformed."""


class CustomerIOAuthError(RuntimeError):
    """Customer.io refused a key (401/403); not retried."""


class CustomerIOPayloadError(RuntimeError):
    """The App API answered JSON it does not document (a cursor repeated, not an object); not retried."""


@dataclass(frozen=True)
class CustomerIOConfig:
    """How to reach Customer.io. The three keys are secrets: they never appear in repr, logs or metadata.

    The extract needs only `app_api_key`; the Track client needs `site_id` and `track_api_key`.
    """

    site_id: str = field(default="", repr=False)
    track_api_key: str = field(default="", repr=False)
    app_api_key: str = field(default="", repr=False)
    region: str = "us"
    app_url: str | None = None  # None: the region's App API host
    track_url: str | None = None  # set only for the sandbox (see `track_client`)
    page_size: int = 1000
    # The App API allows about 10 requests/s (docs, via a third-party summary); stay below it.
    rate_per_second: float = 8.0
    max_attempts: int = 6
    timeout_seconds: float = 60.0
    track_retries: int = 3
    sandbox: bool = False

    def __post_init__(self) -> None:
        if self.region not in APP_API_URLS:
            raise CustomerIOConfigError(f"region must be one of {sorted(APP_API_URLS)}, got {self.region!r}")
        if not 1 <= self.page_size <= 1000:
            raise CustomerIOConfigError(f"page_size must be between 1 and 1000, got {self.page_size}")
        if self.max_attempts < 1:
            raise CustomerIOConfigError(f"max_attempts must be at least 1, got {self.max_attempts}")

    @property
    def app_base_url(self) -> str:
        return (self.app_url or APP_API_URLS[self.region]).rstrip("/")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> CustomerIOConfig:
        """The production configuration: CUSTOMERIO_SITE_ID, CUSTOMERIO_TRACK_API_KEY,
        CUSTOMERIO_APP_API_KEY and CUSTOMERIO_REGION (us or eu)."""
        env = os.environ if environ is None else environ
        config = cls(
            site_id=env.get("CUSTOMERIO_SITE_ID", ""),
            track_api_key=env.get("CUSTOMERIO_TRACK_API_KEY", ""),
            app_api_key=env.get("CUSTOMERIO_APP_API_KEY", ""),
            region=(env.get("CUSTOMERIO_REGION") or "us").lower(),
        )
        if not config.app_api_key and not (config.site_id and config.track_api_key):
            raise CustomerIOConfigError(
                "no Customer.io credentials in the environment: set CUSTOMERIO_APP_API_KEY (extract) and/or "
                "CUSTOMERIO_SITE_ID and CUSTOMERIO_TRACK_API_KEY (reverse ETL)"
            )
        return config

    @classmethod
    def for_sandbox(cls, url: str, **overrides: Any) -> CustomerIOConfig:
        """The configuration for the local stand-in at `url`, which serves both the App and Track APIs."""
        from cdp_assets.sandbox.customerio import SANDBOX_APP_API_KEY, SANDBOX_SITE_ID, SANDBOX_TRACK_API_KEY

        settings: dict[str, Any] = {
            "site_id": SANDBOX_SITE_ID,
            "track_api_key": SANDBOX_TRACK_API_KEY,
            "app_api_key": SANDBOX_APP_API_KEY,
            "rate_per_second": 200.0,
            "track_retries": 3,
            **overrides,
        }
        return cls(app_url=url, track_url=url, sandbox=True, **settings)


def classify_customerio_error(exc: BaseException) -> Decision:
    """429 after its Retry-After, 5xx and connection failures with backoff; anything else is final."""
    if isinstance(exc, requests.HTTPError) and exc.response is not None:
        status = exc.response.status_code
        if status == 429 or status >= 500:
            return Retry(retry_after(exc.response.headers))
        return None
    if isinstance(exc, requests.ConnectionError | requests.Timeout | BadResponse):
        return Retry()
    return None


# ------------------------------------------------------------------------------------------- App API


class AppClient:
    """Customer.io's App API (api.customer.io/v1) through ApiPolicy: the extract's reads, and the
    reverse-ETL audience check of a manual segment's membership."""

    def __init__(self, config: CustomerIOConfig, stats: CallStats) -> None:
        if not config.app_api_key:
            raise CustomerIOConfigError("the Customer.io extract needs an App API key (CUSTOMERIO_APP_API_KEY)")
        self.config = config
        # dlt's Session without dlt's retrying Client: the policy below is the one retry layer.
        self.session = Session(timeout=config.timeout_seconds, raise_for_status=True)
        self.session.headers["Authorization"] = f"Bearer {config.app_api_key}"
        self.policy = ApiPolicy(
            "customerio",
            classify=classify_customerio_error,
            rate_per_second=config.rate_per_second,
            max_attempts=config.max_attempts,
            stats=stats,
        )

    def request(self, method: str, path: str, params: Obj | None = None, body: Obj | None = None) -> Obj:
        url = f"{self.config.app_base_url}/v1/{path}"

        def attempt() -> Obj:
            # Parsed inside the retried call: a body that is not JSON (a proxy's HTML page, a body cut
            # short) is BadResponse, retried, instead of a bare "Expecting value" after the call.
            return parse_json("Customer.io", self.session.request(method, url, params=params, json=body))

        try:
            data = self.policy.call(attempt)
        except requests.HTTPError as exc:
            status = exc.response.status_code if exc.response is not None else None
            if status in (401, 403):
                raise CustomerIOAuthError(
                    f"Customer.io refused the App API key (HTTP {status} on {method} /v1/{path}). Check "
                    "CUSTOMERIO_APP_API_KEY: it must be an App API key (Bearer), not a Track API key."
                ) from exc
            raise
        if not isinstance(data, dict):
            raise CustomerIOPayloadError(f"Customer.io answered {method} /v1/{path} with JSON that is not an object")
        return data

    def pages(
        self, path: str, key: str, params: Obj | None = None, method: str = "GET", body: Obj | None = None
    ) -> Iterator[list[Obj]]:
        """A cursor endpoint's pages: the response's `next` goes back as `start` until it is empty."""
        query = dict(params or {})
        seen: set[str] = set()
        while True:
            data = self.request(method, path, params=query, body=body)
            rows = data.get(key) or []
            if rows:
                yield rows
            token = data.get("next")
            if not token or not rows:
                return
            if str(token) in seen:
                # The same cursor again would read the same pages forever (and load them again).
                raise CustomerIOPayloadError(
                    f"Customer.io sent the cursor {str(token)[:60]!r} twice on {method} /v1/{path}: it would page "
                    f"forever. Stopped after {len(seen) + 1} pages; nothing of this run was committed."
                )
            seen.add(str(token))
            query["start"] = token

    def activities(self, since: int | None, **filters: Any) -> Iterator[Obj]:
        """Activities newest first, down to `since` (inclusive); stops paging once past it."""
        params = {"limit": MAX_ACTIVITY_PAGE, **{k: v for k, v in filters.items() if v is not None}}
        for page in self.pages("activities", "activities", params):
            for activity in page:
                if since is not None and activity["timestamp"] < since:
                    return
                yield activity

    def newest_activity_time(self) -> int | None:
        rows = self.request("GET", "activities", params={"limit": 1}).get("activities") or []
        return rows[0]["timestamp"] if rows else None

    def customers(self, ids: list[str]) -> list[Obj]:
        """Current attributes of these people, as rows; people that no longer exist are left out."""
        rows = []
        for start in range(0, len(ids), MAX_ATTRIBUTE_IDS):
            chunk = ids[start : start + MAX_ATTRIBUTE_IDS]
            rows += [
                _customer_row(c) for c in self.request("POST", "customers/attributes", body={"ids": chunk})["customers"]
            ]
        return rows


def customerio_source(config: CustomerIOConfig, stats: CallStats | None = None) -> DltSource:
    """The `customerio` dlt source. Build a fresh one for every run (dagster-notes P1)."""
    return _customerio(AppClient(config, stats if stats is not None else CallStats()))


@dlt.source(name="customerio")
def _customerio(client: AppClient) -> list[DltResource]:
    segments = _listed(client, "segments")
    return [
        _customers(client),
        _unsubscribes(client),
        _suppressions(client),
        _optouts(client),
        _listed(client, "campaigns"),
        segments,
        _segment_members(client, segments),
        _messages(client),
    ]


def _customers(client: AppClient) -> DltResource:
    def customers() -> Iterator[list[Obj]]:
        state = dlt.current.resource_state()
        cursor: int | None = state.get("activity_cursor")
        if cursor is None:
            # Note the feed's position first: whatever changes during the listing is re-read next run.
            mark = client.newest_activity_time()
            page_size = client.config.page_size
            for ids in client.pages("customers", "ids", {"limit": page_size}, method="POST", body=EVERYONE):
                rows = client.customers([str(i) for i in ids])
                if rows:
                    yield rows
            high = mark
        else:
            touched: dict[str, None] = {}  # ordered set
            high = cursor
            for activity_type, deleted in _PERSON_ACTIVITIES:
                for activity in client.activities(cursor, type=activity_type, deleted="true" if deleted else None):
                    person_id = activity.get("customer_id") or (activity.get("customer_identifiers") or {}).get("id")
                    if person_id:
                        touched[str(person_id)] = None
                    high = max(high, activity["timestamp"])
            ids = list(touched)
            rows = client.customers(ids)
            present = {row["id"] for row in rows}
            # Whoever the feed named but no longer exists is gone from Customer.io: remove the row.
            rows += [{"id": i, "_deleted": True} for i in ids if i not in present]
            if rows:
                yield rows
        if high is not None:
            state["activity_cursor"] = high

    return dlt.resource(
        customers,
        name="customers",
        primary_key="id",
        write_disposition="merge",
        columns={
            "_deleted": {"data_type": "bool", "hard_delete": True},
            "timestamps": {"data_type": "json"},
            "devices": {"data_type": "json"},
        },
    )


def _unsubscribes(client: AppClient) -> DltResource:
    def unsubscribes(
        timestamp: dlt.sources.incremental[int] = dlt.sources.incremental("timestamp", initial_value=None),
    ) -> Iterator[list[Obj]]:
        rows = []
        for activity in client.activities(timestamp.start_value, type="attribute_change", name="unsubscribed"):
            change = (activity.get("data") or {}).get("unsubscribed") or {}
            identifiers = activity.get("customer_identifiers") or {}
            rows.append(
                {
                    "id": activity["id"],
                    "customer_id": activity.get("customer_id") or identifiers.get("id"),
                    "cio_id": identifiers.get("cio_id"),
                    "email": identifiers.get("email"),
                    "timestamp": activity["timestamp"],
                    "unsubscribed": _truthy(change.get("to")),
                    "previous": change.get("from"),
                }
            )
        if rows:
            yield rows

    return dlt.resource(unsubscribes, name="unsubscribes", primary_key="id", write_disposition="append")


def _suppressions(client: AppClient) -> DltResource:
    def suppressions() -> Iterator[list[Obj]]:
        limit = client.config.page_size
        for kind in ESP_SUPPRESSION_TYPES:
            offset = 0
            while True:
                data = client.request("GET", f"esp/suppression/{kind}", params={"limit": limit, "offset": offset})
                rows = data.get("suppressions") or []
                if rows:
                    yield [{"type": kind, **row} for row in rows]
                if len(rows) < limit:
                    break
                offset += limit

    return dlt.resource(suppressions, name="suppressions", primary_key=("type", "email"), write_disposition="replace")


def _optouts(client: AppClient) -> DltResource:
    def optouts() -> Iterator[list[Obj]]:
        for page in client.pages("optouts", "optouts", {"limit": client.config.page_size}):
            yield [
                {
                    "customer_id": person.get("customer_id"),
                    "cio_id": person.get("cio_id"),
                    "channel": entry.get("channel") or "sms",
                    "from": entry.get("from"),
                }
                for person in page
                for entry in person.get("optouts") or []
            ]

    return dlt.resource(optouts, name="optouts", primary_key=("cio_id", "channel", "from"), write_disposition="replace")


def _listed(client: AppClient, name: str) -> DltResource:
    """`campaigns` or `segments`: one call answers the whole list, `{"<name>": [...]}`, merged on `id`."""

    def rows() -> Iterator[list[Obj]]:
        items = client.request("GET", name).get(name) or []
        if items:
            yield items

    return dlt.resource(rows, name=name, primary_key="id", write_disposition="merge")


def _segment_members(client: AppClient, segments: DltResource) -> DltResource:
    def segment_members(items: Obj | list[Obj]) -> Iterator[list[Obj]]:
        for segment in items if isinstance(items, list) else [items]:
            path = f"segments/{segment['id']}/membership"
            for page in client.pages(path, "identifiers", {"limit": client.config.page_size}):
                yield [{"segment_id": segment["id"], **identifiers} for identifiers in page]

    return dlt.transformer(
        segment_members,
        data_from=segments,
        name="segment_members",
        primary_key=("segment_id", "cio_id"),
        write_disposition="replace",
    )


def _messages(client: AppClient) -> DltResource:
    def messages(
        created: dlt.sources.incremental[int] = dlt.sources.incremental("created", initial_value=None),
    ) -> Iterator[list[Obj]]:
        params: Obj = {"limit": client.config.page_size}
        if created.start_value is not None:
            params["start_ts"] = created.start_value
        yield from client.pages("messages", "messages", params)

    return dlt.resource(messages, name="messages", primary_key="id", write_disposition="append")


def _customer_row(customer: Obj) -> Obj:
    identifiers = customer.get("identifiers") or {}
    attributes = {k: v for k, v in (customer.get("attributes") or {}).items() if k not in ("id", "cio_id")}
    timestamps = customer.get("timestamps") or {}
    return {
        "id": str(customer["id"]),
        "cio_id": identifiers.get("cio_id") or (customer.get("attributes") or {}).get("cio_id"),
        "email": identifiers.get("email") or attributes.get("email"),
        "unsubscribed": bool(customer.get("unsubscribed")),
        "unsubscribed_at": timestamps.get("unsubscribed"),
        "attributes": attributes,
        "timestamps": timestamps,
        "devices": customer.get("devices") or [],
    }


def _truthy(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.strip().lower() == "true")


# ----------------------------------------------------------------------------------------- Track API


class SandboxTrackClient(customerio.CustomerIO):
    """The real Track client, its `https://` requests (v1 and v2 batch) sent to the sandbox over HTTP."""

    def __init__(self, *args: Any, sandbox_netloc: str, **kwargs: Any) -> None:
        self.sandbox_netloc = sandbox_netloc
        super().__init__(*args, **kwargs)

    def _build_session(self) -> requests.Session:
        session = super()._build_session()
        # Keep the library's own retry policy (5xx, and 429 with Retry-After) on the rewriting adapter.
        library_retry = session.get_adapter("https://").max_retries
        session.mount("https://", SandboxRewriteAdapter(self.sandbox_netloc, max_retries=library_retry))
        return session


def track_client(config: CustomerIOConfig) -> customerio.CustomerIO:
    """The Track API client for reverse ETL (identify, delete, suppress, events, v2 batch)."""
    if not config.site_id or not config.track_api_key:
        raise CustomerIOConfigError(
            "the Customer.io Track API needs a site id and a Track API key "
            "(CUSTOMERIO_SITE_ID, CUSTOMERIO_TRACK_API_KEY)"
        )
    region = customerio.Regions.EU if config.region == "eu" else customerio.Regions.US
    options: Obj = {"region": region, "retries": config.track_retries, "timeout": config.timeout_seconds}
    if config.track_url is None:
        return customerio.CustomerIO(config.site_id, config.track_api_key, **options)
    netloc = urlsplit(config.track_url).netloc
    if not netloc:
        raise CustomerIOConfigError(f"track_url must be a URL like http://127.0.0.1:PORT, got {config.track_url!r}")
    return SandboxTrackClient(config.site_id, config.track_api_key, sandbox_netloc=netloc, **options)
