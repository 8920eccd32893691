"""The Stripe extract: a dlt source over the real `stripe` SDK, into the `raw_stripe` dataset.

Resources and how each stays current
------------------------------------
`customers`, `subscriptions`, `invoices`, `charges`, `products`, `prices` are merged on `id`. Stripe's
`created` filter only finds *new* objects, and an object changes long after it was created (a
subscription is canceled, an invoice is paid, a customer's email changes), so each run does two things:

1. it lists the objects created since the last run (`created[gte]=<newest created seen>`, pages of 100);
2. it reads the Events feed since the last run and re-merges, for every object of the resource's type
   that an event touched, the snapshot in the newest such event (`data.object`). Stripe writes an event
   for every change, and the snapshot is the whole object after the change, so no extra call per
   object is needed. An object listed in step 1 keeps the listed version (it is newer than any event).
   A deleted customer, product or price (`<type>.deleted`) is kept with `deleted = true`, as Stripe's
   own retrieve answers, because invoices and charges still point at it. (A snapshot is rendered in
   the API version the account had when the event was written; the listing uses the SDK's pinned one.
   Keep the account's version and the SDK's in step, as Stripe recommends.)

The first run lists everything and reads the whole feed. The events are read once per run and shared
by all resources (`_StripeReader`), before any listing, so a change made while a run is listing is
picked up by the next run rather than lost. They are held in memory for the run: a day's events on
the daily schedule, at most Stripe's 30 days on a first run. Stripe keeps events for 30 days, so the daily schedule is
far inside the window; after a longer gap, reload with `pipeline.run(..., refresh="drop_resources")`.

`events` is appended (primary key `id`, cursor `created`). The next run asks for `created[gte]=<last
created>` rather than `created[gt]`: Stripe's times are whole seconds, and an event written in the
same second as the last one loaded, after the run read the feed, would be skipped forever by `gt`. dlt's
incremental drops the rows at the boundary it has already loaded (by primary key), so `gte` loads
nothing twice. `data` is kept as one JSON column: its shape depends on the event type.

Calls and failures
------------------
Every call goes through `ApiPolicy` (pacing below Stripe's limit, retries, `CallStats`). The client is
a `stripe.StripeClient` with `max_network_retries=0`, so the policy is the only retry layer: 429 is
retried after the `Retry-After` the SDK ignores (unless `Stripe-Should-Retry: false`), 5xx, 409 and
connection errors with backoff. A rejected key (401) or a restricted key without access (403) is not
retried and raises `StripeAuthError`; retries running out raise `RetriesExhausted`. Either fails the
run before anything is committed: dlt discards the extract, so no cursor moves and a rerun loads
nothing twice.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import dlt
import stripe
from dlt.extract import DltResource, DltSource

from cdp_assets.sources.policy import ApiPolicy, CallStats, Decision, Retry, retry_after

Obj = dict[str, Any]
T = TypeVar("T")

# Resource -> the `object` value of its items (what an event's `data.object.object` says), and the
# list parameters it always sends (subscriptions: canceled ones are left out unless asked for).
OBJECT_RESOURCES: dict[str, tuple[str, dict[str, str]]] = {
    "customers": ("customer", {}),
    "subscriptions": ("subscription", {"status": "all"}),
    "invoices": ("invoice", {}),
    "charges": ("charge", {}),
    "products": ("product", {}),
    "prices": ("price", {}),
}
# Object types Stripe deletes outright (the others are canceled, voided or refunded instead).
_DELETABLE = frozenset({"customer", "product", "price"})
MAX_PAGE_SIZE = 100


class StripeConfigError(ValueError):
    """The Stripe configuration is missing or malformed."""


class StripeAuthError(RuntimeError):
    """Stripe refused the API key (401) or the key may not read a resource (403); not retried."""


@dataclass(frozen=True)
class StripeConfig:
    """How to reach Stripe. `api_key` is a secret: it never appears in repr, logs or metadata."""

    api_key: str = field(repr=False)
    base_url: str | None = None  # None: Stripe's own API (https://api.stripe.com)
    page_size: int = MAX_PAGE_SIZE
    # Stripe allows 25 requests/s in test mode and 100 in live mode; stay below the lower one.
    rate_per_second: float = 20.0
    max_attempts: int = 6
    timeout_seconds: float = 60.0
    sandbox: bool = False

    def __post_init__(self) -> None:
        if not self.api_key:
            raise StripeConfigError("the Stripe API key is empty (set STRIPE_API_KEY)")
        if not 1 <= self.page_size <= MAX_PAGE_SIZE:
            raise StripeConfigError(f"page_size must be between 1 and {MAX_PAGE_SIZE}, got {self.page_size}")
        if self.max_attempts < 1:
            raise StripeConfigError(f"max_attempts must be at least 1, got {self.max_attempts}")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> StripeConfig:
        """The production configuration: the key from STRIPE_API_KEY (optionally STRIPE_API_BASE)."""
        env = os.environ if environ is None else environ
        key = env.get("STRIPE_API_KEY", "")
        if not key:
            raise StripeConfigError("STRIPE_API_KEY is not set: the Stripe extract needs a secret or restricted key")
        return cls(api_key=key, base_url=env.get("STRIPE_API_BASE") or None)

    @classmethod
    def for_sandbox(cls, url: str, api_key: str | None = None, **overrides: Any) -> StripeConfig:
        """The configuration for the local stand-in at `url` (no rate limit to respect there)."""
        if api_key is None:
            from cdp_assets.sandbox.stripe import SANDBOX_API_KEY

            api_key = SANDBOX_API_KEY
        settings: dict[str, Any] = {"rate_per_second": 200.0, **overrides}
        return cls(api_key=api_key, base_url=url, sandbox=True, **settings)


def classify_stripe_error(exc: BaseException) -> Decision:
    """What the call policy does with an error the SDK raised (see the module docstring)."""
    if isinstance(exc, stripe.RateLimitError):
        if _header(exc, "Stripe-Should-Retry") == "false":
            return None  # Stripe says this request will not succeed if repeated
        return Retry(retry_after(exc.headers))
    if isinstance(exc, stripe.APIConnectionError):
        return Retry()
    if isinstance(exc, stripe.StripeError):
        status = exc.http_status or 0
        if status >= 500 or status == 409:
            if _header(exc, "Stripe-Should-Retry") == "false":
                return None
            return Retry(retry_after(exc.headers))
    return None


def stripe_source(config: StripeConfig, stats: CallStats | None = None) -> DltSource:
    """The `stripe` dlt source. Build a fresh one for every run (dagster-notes P1)."""
    return _stripe(_StripeReader(config, stats if stats is not None else CallStats()))


class _StripeReader:
    """The SDK client, the call policy, and the run's one read of the Events feed."""

    def __init__(self, config: StripeConfig, stats: CallStats) -> None:
        self.config = config
        addresses = {"api": config.base_url.rstrip("/")} if config.base_url else {}
        self.client = stripe.StripeClient(
            config.api_key,
            base_addresses=addresses,  # type: ignore[arg-type]
            max_network_retries=0,  # the policy retries, honouring Retry-After
            http_client=stripe.RequestsClient(timeout=config.timeout_seconds),
        )
        self.policy = ApiPolicy(
            "stripe",
            classify=classify_stripe_error,
            rate_per_second=config.rate_per_second,
            max_attempts=config.max_attempts,
            stats=stats,
        )
        self._events: list[Obj] = []  # newest first
        self._events_read = False
        self._events_from: int | None = None  # the oldest `created` the cache covers (None: all)

    def pages(
        self, resource: str, gte: int | None = None, lt: int | None = None, params: Mapping[str, str] | None = None
    ) -> Iterator[list[Obj]]:
        """A list endpoint's pages, newest first, as plain dicts; one call per page of `page_size`.

        `raw_request` goes through the SDK's own requestor (auth, Stripe-Version, error classes) but
        hands back the JSON as parsed: building `StripeObject`s only to turn them back into dicts took
        most of the extract's time (event snapshots are large).
        """
        query: dict[str, Any] = {"limit": self.config.page_size, **(params or {})}
        created = {k: v for k, v in (("gte", gte), ("lt", lt)) if v is not None}
        if created:
            query["created"] = created
        while True:
            page = self._call(resource, lambda q=dict(query): self.client.raw_request("get", f"/v1/{resource}", **q))
            body = page.data
            items: list[Obj] = body.get("data") or []
            if items:
                yield items
            if not body.get("has_more") or not items:
                return
            query["starting_after"] = items[-1]["id"]

    def events_since(self, since: int | None) -> list[Obj]:
        """Events with `created >= since` (all the feed keeps when None), newest first.

        The feed is read once per run; a resource that needs older events than the cache holds gets
        only the missing range fetched (`created[lt]` = what the cache starts at).
        """
        if not self._events_read:
            self._events = [e for page in self.pages("events", gte=since) for e in page]
            self._events_from, self._events_read = since, True
        elif self._events_from is not None and (since is None or since < self._events_from):
            older = [e for page in self.pages("events", gte=since, lt=self._events_from) for e in page]
            self._events.extend(older)
            self._events_from = since
        return [e for e in self._events if since is None or e["created"] >= since]

    @property
    def events_high_water(self) -> int | None:
        """The newest `created` among the events read this run (None before any was read)."""
        return max((e["created"] for e in self._events), default=None)

    def _call(self, what: str, fn: Callable[[], T]) -> T:
        try:
            return self.policy.call(fn)
        except stripe.AuthenticationError as exc:
            raise StripeAuthError(
                f"Stripe rejected the API key while listing {what} (HTTP 401: {exc.user_message}). "
                "Check STRIPE_API_KEY: it must be a live or test secret key, or a restricted key."
            ) from exc
        except stripe.PermissionError as exc:
            raise StripeAuthError(
                f"the Stripe API key may not read {what} (HTTP 403: {exc.user_message}). "
                "Give the restricted key read access to it."
            ) from exc


@dlt.source(name="stripe")
def _stripe(reader: _StripeReader) -> list[DltResource]:
    resources = [_object_resource(reader, name, kind, params) for name, (kind, params) in OBJECT_RESOURCES.items()]
    resources.append(_events_resource(reader))
    return resources


def _object_resource(reader: _StripeReader, name: str, kind: str, params: dict[str, str]) -> DltResource:
    def objects() -> Iterator[list[Obj]]:
        state = dlt.current.resource_state()
        created_cursor: int | None = state.get("created_cursor")
        events_cursor: int | None = state.get("events_cursor")
        # Read the feed before listing: a change made after this read is in the next run's window.
        events = reader.events_since(events_cursor)
        listed: set[str] = set()
        newest = created_cursor
        for page in reader.pages(name, gte=created_cursor, params=params):
            listed.update(obj["id"] for obj in page)
            newest = max([newest or 0, *(obj["created"] for obj in page)])
            yield page
        changed = latest_snapshots(events, kind, skip=listed)
        if changed:
            yield changed
        # Only reached when everything above succeeded; dlt keeps state changes only with the load.
        if newest is not None:
            state["created_cursor"] = newest
        high = reader.events_high_water
        if high is not None:
            state["events_cursor"] = max(high, events_cursor or 0)

    return dlt.resource(
        objects,
        name=name,
        primary_key="id",
        write_disposition="merge",
        columns={"deleted": {"data_type": "bool", "nullable": True}},
    )


def _events_resource(reader: _StripeReader) -> DltResource:
    def events(
        created: dlt.sources.incremental[int] = dlt.sources.incremental("created", initial_value=None),
    ) -> Iterator[list[Obj]]:
        rows = reader.events_since(created.start_value)
        if rows:
            yield rows

    return dlt.resource(
        events,
        name="events",
        primary_key="id",
        write_disposition="append",
        columns={"data": {"data_type": "json"}},
    )


def latest_snapshots(events: list[Obj], kind: str, skip: set[str] | frozenset[str] = frozenset()) -> list[Obj]:
    """The newest event snapshot of every `kind` object the events touched (events newest first).

    Objects in `skip` are left out (the caller has a fresher copy). A `<kind>.deleted` event of a type
    Stripe deletes outright gives the snapshot with `deleted = True`.
    """
    taken: dict[str, Obj] = {}
    for event in events:
        snapshot = (event.get("data") or {}).get("object") or {}
        object_id = snapshot.get("id")
        if snapshot.get("object") != kind or not object_id or object_id in skip or object_id in taken:
            continue
        row = dict(snapshot)
        if kind in _DELETABLE and event.get("type") == f"{kind}.deleted":
            row["deleted"] = True
        taken[object_id] = row
    return list(taken.values())


def _header(exc: stripe.StripeError, name: str) -> str | None:
    headers = exc.headers or {}
    value = headers.get(name) or headers.get(name.lower())
    return value.strip().lower() if isinstance(value, str) else None
