"""A stand-in for Stripe's REST API (v1): customers, products, prices, subscriptions, invoices, charges, events.

It serves what the `stripe` SDK (16.1) sends over plain HTTP on 127.0.0.1 through the shared
`SandboxServer` (saas-apis.md §3):

- `GET /v1/{customers,subscriptions,invoices,charges,products,prices,events}` with `limit` (1-100, default
  10), `starting_after`, `ending_before` and `created[gt|gte|lt|lte]` (or `created=<unix>`); lists are newest
  first, in Stripe's list shape (`{"object": "list", "url", "has_more", "data"}`). Subscriptions leave
  canceled ones out unless `status` asks for them (`status=all`); events take `type` and `types[]`; a few
  equality filters (`customer`, `email`, `product`, `active`, ...) work as Stripe's do.
- `GET /v1/<resource>/<id>`; a deleted customer, product or price answers `{"id", "object", "deleted": true}`.
- Auth is `Authorization: Bearer <key>` (or Basic with the key as user name); anything else is Stripe's 401.
- Errors in Stripe's shape: `{"error": {"type", "code", "message", "param"}}`.

The data is seeded from the `World`: every signed-up person is a customer (email, name,
`metadata.user_id`) with a free subscription; a paying customer's free subscription is canceled at the
upgrade and replaced by a pro or enterprise one, invoiced and charged at once; some payments fail (the
subscription goes `past_due`) and some customers cancel later. The seed replays that history in time
order, so every change also writes its event (`customer.created`, `customer.updated`,
`customer.subscription.created|updated|deleted`, `invoice.created|paid|payment_failed`,
`charge.succeeded|failed`, ...) with a snapshot of the object in `data.object`, exactly what an extract
that follows the Events feed sees.

World times map to unix times with `world_to_stream_time(at, start, span)` (the event generator's
mapping), by default one to one from 2024-01-01. The stand-in has its own clock (`now()`, `advance()`,
`set_time()`), starting at the end of the world's history; the test helpers (`add_customer`,
`update_customer`, `delete_customer`, `add_subscription`, `update_subscription`, `cancel_subscription`,
`add_invoice`, `add_product`, `add_price`) create or change objects at that time and write the events
Stripe would. Faults go through `app.inject(...)`; `rate_limit_fault` and `server_error_fault` build them
in Stripe's shape.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import random
import re
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import Any

from cdp_assets.sandbox.clock import UnixTimeMixin
from cdp_assets.sandbox.http import Fault, Request, Response, SandboxApp
from cdp_assets.sandbox.world import WORLD_END, Person, World, build_world

SANDBOX_API_KEY = "sk_test_cdp_sandbox"
# The API version the pinned SDK sends (Stripe-Version); events carry the version they were rendered in.
API_VERSION = "2026-10-28.endive"

Obj = dict[str, Any]

# List endpoint -> the `object` value of its items.
RESOURCES: dict[str, str] = {
    "customers": "customer",
    "subscriptions": "subscription",
    "invoices": "invoice",
    "charges": "charge",
    "products": "product",
    "prices": "price",
    "events": "event",
}
_PREFIX = {
    "customer": "cus",
    "subscription": "sub",
    "subscription_item": "si",
    "invoice": "in",
    "line_item": "il",
    "charge": "ch",
    "payment_intent": "pi",
    "product": "prod",
    "price": "price",
    "event": "evt",
    "request": "req",
}
# Objects whose deletion Stripe reports with `{"deleted": true}` (the others are canceled or voided).
_DELETABLE = frozenset({"customer", "product", "price"})
# Equality filters a list endpoint accepts, as Stripe's do (query parameter -> top-level field).
_FILTERS: dict[str, tuple[str, ...]] = {
    "customers": ("email",),
    "subscriptions": ("customer", "price"),
    "invoices": ("customer", "status", "subscription"),
    "charges": ("customer", "payment_intent"),
    "products": ("active",),
    "prices": ("active", "product", "currency", "type"),
    "events": (),
}

# (plan, product name, monthly price in cents)
PLANS: tuple[tuple[str, str, int], ...] = (
    ("free", "Free", 0),
    ("pro", "Pro", 75_000),
    ("enterprise", "Enterprise", 250_000),
)
_MONTH = 30 * 86_400
PAST_DUE_SHARE = 0.08  # paying customers whose first payment fails
CANCEL_SHARE = 0.06  # paying customers who cancel before the end of the history


class StripeError(Exception):
    """An API error the handler turns into Stripe's error response."""

    def __init__(self, status: int, message: str, type_: str = "invalid_request_error", **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.body: Obj = {"type": type_, "message": message, **extra}


def stripe_error(status: int, message: str, type_: str = "invalid_request_error", **extra: Any) -> Response:
    return Response.json({"error": {"type": type_, "message": message, **extra}}, status)


def rate_limit_fault(
    times: int = 1,
    retry_after: float | None = 1,
    should_retry: bool | None = None,
    path: str | None = None,
) -> Fault:
    """The next `times` matching requests get Stripe's 429 (optionally with Retry-After / Stripe-Should-Retry)."""
    headers: dict[str, str] = {}
    if retry_after is not None:
        headers["Retry-After"] = f"{retry_after:g}"
    if should_retry is not None:
        headers["Stripe-Should-Retry"] = "true" if should_retry else "false"
    response = Response.json(
        {
            "error": {
                "type": "invalid_request_error",
                "code": "rate_limit",
                "message": "Request rate limit exceeded. Learn more about rate limits here "
                "https://stripe.com/docs/rate-limits.",
            }
        },
        429,
        headers,
    )
    return Fault(response, times=times, path=path)


def server_error_fault(times: int = 1, status: int = 500, path: str | None = None) -> Fault:
    """The next `times` matching requests get a 5xx in Stripe's `api_error` shape."""
    response = Response.json(
        {"error": {"type": "api_error", "message": "An unknown error occurred (sandbox fault)."}}, status
    )
    return Fault(response, times=times, path=path)


class StripeSandbox(UnixTimeMixin, SandboxApp):
    """Stripe's v1 list and retrieve endpoints over world-seeded billing data, with test helpers."""

    name = "stripe"

    def __init__(
        self,
        world: World | None = None,
        *,
        api_key: str = SANDBOX_API_KEY,
        start: datetime | None = None,
        span: timedelta | None = None,
    ) -> None:
        super().__init__()
        self.world = world or build_world()
        self.api_key = api_key
        self._init_time(start, span, lead_seconds=_MONTH)
        self._objects: dict[str, dict[str, Obj]] = {kind: {} for kind in RESOURCES.values()}
        self._seq: dict[str, int] = {}  # id -> creation order, the tie-break of equal `created`
        self._deleted: dict[str, Obj] = {}  # id -> the object as it was when deleted
        self._counter = 0
        self._plans: dict[str, Obj] = {}  # plan -> price
        self._by_user_id: dict[str, str] = {}
        self._seed()
        self.set_time(self.unix(WORLD_END))
        for resource in RESOURCES:
            self.route("GET", rf"/v1/{resource}", self._lister(resource))
            self.route("GET", rf"/v1/{resource}/(?P<object_id>[^/]+)", self._retriever(resource))

    # -- reading (tests) -------------------------------------------------------------------------

    def objects(self, resource: str) -> list[Obj]:
        """Copies of a resource's live objects, newest first (as the list endpoint orders them)."""
        kind = RESOURCES[resource]
        return [copy.deepcopy(o) for o in self._sorted(self._objects[kind].values())]

    def get(self, resource: str, object_id: str) -> Obj:
        return copy.deepcopy(self._objects[RESOURCES[resource]][object_id])

    def customer_for_user(self, user_id: str) -> Obj:
        return self.get("customers", self._by_user_id[user_id])

    def price_for_plan(self, plan: str) -> Obj:
        return copy.deepcopy(self._plans[plan])

    # -- test helpers: they change the data the way Stripe would, events included ---------------

    def add_customer(
        self,
        email: str,
        *,
        name: str | None = None,
        user_id: str | None = None,
        metadata: dict[str, str] | None = None,
        **fields: Any,
    ) -> Obj:
        meta = dict(metadata or {})
        if user_id:
            meta["user_id"] = user_id
        customer = self._new(
            "customer",
            {
                "address": None,
                "balance": 0,
                "currency": None,
                "default_source": None,
                "delinquent": False,
                "description": None,
                "email": email,
                "invoice_prefix": None,
                "invoice_settings": {"custom_fields": None, "default_payment_method": None, "footer": None},
                "metadata": meta,
                "name": name,
                "phone": None,
                "preferred_locales": [],
                "shipping": None,
                "tax_exempt": "none",
                "test_clock": None,
                **fields,
            },
        )
        customer["invoice_prefix"] = customer["id"][4:12].upper()
        if user_id:
            self._by_user_id[user_id] = customer["id"]
        self._emit("customer.created", customer)
        return copy.deepcopy(customer)

    def update_customer(self, customer_id: str, **fields: Any) -> Obj:
        """Change fields of a customer (metadata merges, as Stripe's does) and write `customer.updated`."""
        return self._update("customer", customer_id, fields, "customer.updated")

    def delete_customer(self, customer_id: str) -> None:
        customer = self._live("customer", customer_id)
        for sub in list(self._objects["subscription"].values()):
            if sub["customer"] == customer_id and sub["status"] != "canceled":
                self.cancel_subscription(sub["id"])
        self._delete(customer, "customer.deleted")

    def add_product(self, name: str, *, metadata: dict[str, str] | None = None) -> Obj:
        product = self._new(
            "product",
            {
                "active": True,
                "default_price": None,
                "description": None,
                "images": [],
                "marketing_features": [],
                "metadata": dict(metadata or {}),
                "name": name,
                "package_dimensions": None,
                "shippable": None,
                "statement_descriptor": None,
                "tax_code": None,
                "type": "service",
                "unit_label": None,
                "updated": self.now(),
                "url": None,
            },
        )
        self._emit("product.created", product)
        return copy.deepcopy(product)

    def add_price(
        self,
        product_id: str,
        unit_amount: int,
        *,
        lookup_key: str | None = None,
        nickname: str | None = None,
        metadata: dict[str, str] | None = None,
    ) -> Obj:
        self._live("product", product_id)
        price = self._new(
            "price",
            {
                "active": True,
                "billing_scheme": "per_unit",
                "currency": "usd",
                "custom_unit_amount": None,
                "lookup_key": lookup_key,
                "metadata": dict(metadata or {}),
                "nickname": nickname,
                "product": product_id,
                "recurring": {
                    "interval": "month",
                    "interval_count": 1,
                    "meter": None,
                    "trial_period_days": None,
                    "usage_type": "licensed",
                },
                "tax_behavior": "unspecified",
                "tiers_mode": None,
                "transform_quantity": None,
                "type": "recurring",
                "unit_amount": unit_amount,
                "unit_amount_decimal": str(unit_amount),
            },
        )
        self._emit("price.created", price)
        return copy.deepcopy(price)

    def add_subscription(self, customer_id: str, plan: str, *, status: str = "active") -> Obj:
        """Subscribe a customer to a plan's price; a paid plan is invoiced (and charged) at once."""
        self._live("customer", customer_id)
        price = self._plans[plan]
        now = self.now()
        sub = self._new(
            "subscription",
            {
                "application": None,
                "billing_cycle_anchor": now,
                "cancel_at": None,
                "cancel_at_period_end": False,
                "canceled_at": None,
                "cancellation_details": {"comment": None, "feedback": None, "reason": None},
                "collection_method": "charge_automatically",
                "currency": "usd",
                "customer": customer_id,
                "days_until_due": None,
                "default_payment_method": None,
                "description": None,
                "discounts": [],
                "ended_at": None,
                "items": {"object": "list", "data": [], "has_more": False, "total_count": 1, "url": ""},
                "latest_invoice": None,
                "livemode": False,
                "metadata": {"plan": plan},
                "pending_update": None,
                "start_date": now,
                "status": status,
                "trial_end": None,
                "trial_start": None,
            },
        )
        item = {
            "id": self._id("subscription_item"),
            "object": "subscription_item",
            "created": now,
            "current_period_end": now + _MONTH,
            "current_period_start": now,
            "discounts": [],
            "metadata": {},
            "price": copy.deepcopy(price),
            "quantity": 1,
            "subscription": sub["id"],
            "tax_rates": [],
        }
        sub["items"]["data"] = [item]
        sub["items"]["url"] = f"/v1/subscription_items?subscription={sub['id']}"
        self._emit("customer.subscription.created", sub)
        return copy.deepcopy(sub)

    def update_subscription(self, subscription_id: str, **fields: Any) -> Obj:
        return self._update("subscription", subscription_id, fields, "customer.subscription.updated")

    def cancel_subscription(self, subscription_id: str, *, reason: str = "cancellation_requested") -> Obj:
        """Cancel at once: status `canceled` and the `customer.subscription.deleted` event, as Stripe does."""
        sub = self._live("subscription", subscription_id)
        now = self.now()
        sub.update(
            status="canceled",
            canceled_at=now,
            ended_at=now,
            cancellation_details={"comment": None, "feedback": None, "reason": reason},
        )
        self._emit("customer.subscription.deleted", sub)
        return copy.deepcopy(sub)

    def add_invoice(self, subscription_id: str, *, paid: bool = True) -> Obj:
        """Invoice a subscription's period and try to charge it; a failed charge makes it `past_due`."""
        sub = self._live("subscription", subscription_id)
        customer = self._live("customer", sub["customer"])
        item = sub["items"]["data"][0]
        amount = int(item["price"]["unit_amount"]) * int(item["quantity"])
        now = self.now()
        invoice = self._new(
            "invoice",
            {
                "account_country": "US",
                "amount_due": amount,
                "amount_paid": 0,
                "amount_remaining": amount,
                "attempt_count": 0,
                "attempted": False,
                "auto_advance": True,
                "billing_reason": "subscription_create" if sub["latest_invoice"] is None else "subscription_cycle",
                "collection_method": "charge_automatically",
                "currency": "usd",
                "customer": customer["id"],
                "customer_email": customer["email"],
                "customer_name": customer["name"],
                "description": None,
                "due_date": None,
                "hosted_invoice_url": None,
                "lines": {"object": "list", "data": [], "has_more": False, "total_count": 1, "url": ""},
                "livemode": False,
                "metadata": {},
                "number": None,
                "parent": {
                    "quote_details": None,
                    "subscription_details": {"metadata": dict(sub["metadata"]), "subscription": sub["id"]},
                    "type": "subscription_details",
                },
                "period_end": item["current_period_end"],
                "period_start": item["current_period_start"],
                "status": "draft",
                "status_transitions": {
                    "finalized_at": None,
                    "marked_uncollectible_at": None,
                    "paid_at": None,
                    "voided_at": None,
                },
                "subtotal": amount,
                "total": amount,
            },
        )
        issued = sum(1 for i in self._objects["invoice"].values() if i["customer"] == customer["id"])
        invoice["number"] = f"{customer['invoice_prefix']}-{issued:04d}"
        invoice["lines"]["url"] = f"/v1/invoices/{invoice['id']}/lines"
        invoice["lines"]["data"] = [
            {
                "id": self._id("line_item"),
                "object": "line_item",
                "amount": amount,
                "currency": "usd",
                "description": f"1 × {self._product_name(item['price']['product'])}",
                "period": {"start": item["current_period_start"], "end": item["current_period_end"]},
                "pricing": {
                    "price_details": {"price": item["price"]["id"], "product": item["price"]["product"]},
                    "type": "price_details",
                    "unit_amount_decimal": item["price"]["unit_amount_decimal"],
                },
                "quantity": 1,
            }
        ]
        self._emit("invoice.created", invoice)
        invoice.update(status="open", attempted=True, attempt_count=1)
        invoice["status_transitions"]["finalized_at"] = now
        self._emit("invoice.finalized", invoice)
        sub["latest_invoice"] = invoice["id"]
        if amount == 0:
            self._mark_paid(invoice)
            return copy.deepcopy(invoice)
        charge = self._new_charge(invoice, customer, paid)
        if paid:
            self._emit("charge.succeeded", charge)
            self._mark_paid(invoice)
            if sub["status"] == "past_due":
                self._update("subscription", sub["id"], {"status": "active"}, "customer.subscription.updated")
        else:
            self._emit("charge.failed", charge)
            self._emit("invoice.payment_failed", invoice)
            if sub["status"] == "active":
                self._update("subscription", sub["id"], {"status": "past_due"}, "customer.subscription.updated")
        return copy.deepcopy(invoice)

    # -- HTTP ------------------------------------------------------------------------------------

    def handle(self, request: Request) -> Response:
        response = super().handle(request)
        response.headers.setdefault("Request-Id", self._request_id(request))
        return response

    def error(self, status: int, message: str) -> Response:
        return stripe_error(status, message, "invalid_request_error" if status < 500 else "api_error")

    def _lister(self, resource: str) -> Callable[..., Response]:
        def handler(request: Request) -> Response:
            with self.lock:
                return self._guard(request, lambda: self._list(request, resource))

        return handler

    def _retriever(self, resource: str) -> Callable[..., Response]:
        def handler(request: Request, object_id: str) -> Response:
            with self.lock:
                return self._guard(request, lambda: self._retrieve(resource, object_id))

        return handler

    def _guard(self, request: Request, answer: Callable[[], Response]) -> Response:
        auth = self._auth_error(request)
        if auth is not None:
            return auth
        try:
            return answer()
        except StripeError as exc:
            return Response.json({"error": exc.body}, exc.status)

    def _auth_error(self, request: Request) -> Response | None:
        header = request.headers.get("Authorization") or request.headers.get("authorization") or ""
        key = ""
        if header.startswith("Bearer "):
            key = header[7:].strip()
        elif header.startswith("Basic "):
            try:
                key = base64.b64decode(header[6:]).decode().split(":", 1)[0]
            except (ValueError, UnicodeDecodeError):
                key = ""
        if not key:
            return stripe_error(
                401,
                "You did not provide an API key. You need to provide your API key in the Authorization header, "
                "using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY').",
            )
        if key != self.api_key:
            return stripe_error(401, f"Invalid API Key provided: {key[:8]}{'*' * 12}{key[-4:]}")
        return None

    def _list(self, request: Request, resource: str) -> Response:
        kind = RESOURCES[resource]
        limit = _int_param(request, "limit", 10)
        if not 1 <= limit <= 100:
            raise StripeError(400, f"This value must be between 1 and 100 (it currently is {limit}).", param="limit")
        starting_after = request.arg("starting_after")
        ending_before = request.arg("ending_before")
        if starting_after and ending_before:
            raise StripeError(
                400,
                "You may only specify one of these parameters: ending_before, starting_after.",
                param="starting_after",
            )
        items = [o for o in self._objects[kind].values() if self._matches(request, resource, o)]
        items = self._sorted(items)
        if starting_after:
            key = self._key(self._cursor(kind, starting_after, "starting_after"))
            after = [o for o in items if self._key(o) < key]
            page, has_more = after[:limit], len(after) > limit
        elif ending_before:
            key = self._key(self._cursor(kind, ending_before, "ending_before"))
            before = [o for o in items if self._key(o) > key]
            page, has_more = before[-limit:], len(before) > limit
        else:
            page, has_more = items[:limit], len(items) > limit
        return Response.json(
            {"object": "list", "data": copy.deepcopy(page), "has_more": has_more, "url": f"/v1/{resource}"}
        )

    def _retrieve(self, resource: str, object_id: str) -> Response:
        kind = RESOURCES[resource]
        if object_id in self._objects[kind]:
            return Response.json(self._objects[kind][object_id])
        gone = self._deleted.get(object_id)
        if gone is not None and gone["object"] == kind:
            return Response.json({"id": object_id, "object": kind, "deleted": True})
        raise StripeError(404, f"No such {kind}: '{object_id}'", code="resource_missing", param="id")

    def _matches(self, request: Request, resource: str, obj: Obj) -> bool:
        created = obj["created"]
        for op, test in (
            ("gt", lambda v: created > v),
            ("gte", lambda v: created >= v),
            ("lt", lambda v: created < v),
            ("lte", lambda v: created <= v),
        ):
            raw = request.arg(f"created[{op}]")
            if raw is not None and not test(_as_int(raw, f"created[{op}]")):
                return False
        exact = request.arg("created")
        if exact is not None and created != _as_int(exact, "created"):
            return False
        for name in _FILTERS[resource]:
            wanted = request.arg(name)
            if wanted is None:
                continue
            if name == "price":
                if not any(i["price"]["id"] == wanted for i in obj["items"]["data"]):
                    return False
            elif name == "subscription":
                details = (obj.get("parent") or {}).get("subscription_details") or {}
                if details.get("subscription") != wanted:
                    return False
            elif str(obj.get(name)).lower() != wanted.lower():
                return False
        if resource == "subscriptions":
            status = request.arg("status")
            if status is None:
                # Stripe's default: everything that has not been canceled.
                return obj["status"] not in ("canceled", "incomplete_expired")
            return status == "all" or obj["status"] == status
        if resource == "events":
            # The SDK sends a list as `types[0]=...&types[1]=...`; other clients send `types[]`.
            types = [v for k, vs in request.query.items() if re.fullmatch(r"types(\[\d*\])?", k) for v in vs]
            single = request.arg("type")
            if single is not None and not _type_matches(obj["type"], single):
                return False
            if types and not any(_type_matches(obj["type"], t) for t in types):
                return False
        return True

    def _cursor(self, kind: str, object_id: str, param: str) -> Obj:
        obj = self._objects[kind].get(object_id) or self._deleted.get(object_id)
        if obj is None or obj["object"] != kind:
            raise StripeError(400, f"No such {kind}: '{object_id}'", code="resource_missing", param=param)
        return obj

    def _request_id(self, request: Request) -> str:
        digest = hashlib.sha1(f"{request.at}:{request.path}".encode(), usedforsecurity=False).digest()
        return "req_" + base64.b32encode(digest).decode().lower()[:14]

    # -- the store -------------------------------------------------------------------------------

    def _id(self, kind: str) -> str:
        self._counter += 1
        digest = hashlib.sha1(f"{self.world.seed}:{kind}:{self._counter}".encode(), usedforsecurity=False).digest()
        return f"{_PREFIX[kind]}_" + base64.b32encode(digest).decode().rstrip("=")[:14].replace("0", "x")

    def _new(self, kind: str, fields: Obj) -> Obj:
        obj: Obj = {"id": self._id(kind), "object": kind, "created": self.now(), "livemode": False}
        obj.update(fields)
        with self.lock:
            self._objects[kind][obj["id"]] = obj
            self._seq[obj["id"]] = self._counter
        return obj

    def _live(self, kind: str, object_id: str) -> Obj:
        obj = self._objects[kind].get(object_id)
        if obj is None:
            raise KeyError(f"no live {kind} {object_id!r} in the sandbox")
        return obj

    def _update(self, kind: str, object_id: str, fields: Obj, event_type: str) -> Obj:
        obj = self._live(kind, object_id)
        previous: Obj = {}
        with self.lock:
            for key, value in fields.items():
                if key in ("id", "object", "created"):
                    raise ValueError(f"{key} cannot be changed")
                old = obj.get(key)
                if key == "metadata" and isinstance(value, dict):
                    # Stripe merges metadata keys; an empty string unsets a key.
                    new = {**(old or {}), **value}
                    value = {k: v for k, v in new.items() if v not in ("", None)}
                if old != value:
                    if key == "metadata":
                        # Stripe reports only the metadata keys that changed, with their old values.
                        before = old or {}
                        changed = {k for k in {*before, *value} if before.get(k) != value.get(k)}
                        previous[key] = {k: before.get(k) for k in sorted(changed)}
                    else:
                        previous[key] = copy.deepcopy(old)
                    obj[key] = value
            if kind == "product" and previous:
                obj["updated"] = self.now()
        if previous:
            self._emit(event_type, obj, previous)
        return copy.deepcopy(obj)

    def _delete(self, obj: Obj, event_type: str) -> None:
        with self.lock:
            del self._objects[obj["object"]][obj["id"]]
            self._deleted[obj["id"]] = obj
        self._emit(event_type, obj)

    def _emit(self, event_type: str, obj: Obj, previous: Obj | None = None) -> Obj:
        data: Obj = {"object": copy.deepcopy(obj)}
        if previous is not None:
            data["previous_attributes"] = copy.deepcopy(previous)
        return self._new(
            "event",
            {
                "api_version": API_VERSION,
                "context": None,
                "data": data,
                "pending_webhooks": 0,
                "request": {"id": None, "idempotency_key": None},
                "type": event_type,
            },
        )

    def _new_charge(self, invoice: Obj, customer: Obj, paid: bool) -> Obj:
        amount = invoice["amount_due"]
        return self._new(
            "charge",
            {
                "amount": amount,
                "amount_captured": amount if paid else 0,
                "amount_refunded": 0,
                "balance_transaction": None,
                "billing_details": {
                    "address": None,
                    "email": customer["email"],
                    "name": customer["name"],
                    "phone": None,
                },
                "calculated_statement_descriptor": "RUDDERSTACK",
                "captured": paid,
                "currency": "usd",
                "customer": customer["id"],
                "description": f"Invoice {invoice['number']}",
                "disputed": False,
                "failure_code": None if paid else "card_declined",
                "failure_message": None if paid else "Your card was declined.",
                "metadata": {},
                "outcome": {
                    "network_status": "approved_by_network" if paid else "declined_by_network",
                    "reason": None if paid else "generic_decline",
                    "risk_level": "normal",
                    "seller_message": "Payment complete." if paid else "The bank did not return any further details.",
                    "type": "authorized" if paid else "issuer_declined",
                },
                "paid": paid,
                "payment_intent": self._id("payment_intent"),
                "payment_method": None,
                "receipt_email": customer["email"],
                "refunded": False,
                "status": "succeeded" if paid else "failed",
            },
        )

    def _mark_paid(self, invoice: Obj) -> None:
        invoice.update(amount_paid=invoice["amount_due"], amount_remaining=0, status="paid")
        invoice["status_transitions"]["paid_at"] = self.now()
        self._emit("invoice.paid", invoice)

    def _product_name(self, product_id: str) -> str:
        product = self._objects["product"].get(product_id) or self._deleted.get(product_id) or {}
        return str(product.get("name", product_id))

    def _key(self, obj: Obj) -> tuple[int, int]:
        return (obj["created"], self._seq.get(obj["id"], 0))

    def _sorted(self, objs: Iterable[Obj]) -> list[Obj]:
        return sorted(objs, key=self._key, reverse=True)

    # -- seeding ---------------------------------------------------------------------------------

    def _seed(self) -> None:
        # Products and prices exist a month before the world's history starts.
        for plan, name, amount in PLANS:
            product = self.add_product(name, metadata={"plan": plan})
            price = self.add_price(
                product["id"], amount, lookup_key=f"{plan}_monthly", nickname=f"{name} monthly", metadata={"plan": plan}
            )
            self._update("product", product["id"], {"default_price": price["id"]}, "product.updated")
            self._plans[plan] = self._objects["price"][price["id"]]
            self.advance(60)

        rng = random.Random(f"stripe:{self.world.seed}")
        self._replay([step for person in self.world.signed_up() for step in self._journey(person, rng)])

    def _journey(self, person: Person, rng: random.Random) -> list[tuple[int, Callable[[], None]]]:
        """The billing history of one signed-up person, as (unix time, change) steps."""
        assert person.user_id is not None and person.signed_up_at is not None
        user_id = person.user_id
        state: dict[str, str] = {}
        signed_up = self.unix(person.signed_up_at)

        def sign_up() -> None:
            customer = self.add_customer(
                person.email, name=person.full_name, user_id=user_id, metadata={"plan": "free"}
            )
            state["customer"] = customer["id"]

        def start_free() -> None:
            state["free"] = self.add_subscription(state["customer"], "free")["id"]

        steps: list[tuple[int, Callable[[], None]]] = [(signed_up, sign_up), (signed_up + 1, start_free)]
        if person.customer_at is None or person.plan not in ("pro", "enterprise"):
            return steps
        plan = person.plan
        upgraded = self.unix(person.customer_at)
        fails = rng.random() < PAST_DUE_SHARE
        cancels = rng.random() < CANCEL_SHARE
        end = self.unix(WORLD_END)
        cancel_at = upgraded + int(rng.uniform(0.3, 0.9) * max(3600, end - upgraded))

        def upgrade() -> None:
            self.cancel_subscription(state["free"], reason="cancellation_requested")
            self.update_customer(state["customer"], metadata={"plan": plan}, currency="usd")
            sub = self.add_subscription(state["customer"], plan)
            state["paid"] = sub["id"]
            self.add_invoice(sub["id"], paid=not fails)

        def cancel() -> None:
            self.cancel_subscription(state["paid"])
            self.update_customer(state["customer"], metadata={"plan": "churned"})

        steps.append((upgraded, upgrade))
        if cancels and cancel_at < end:
            steps.append((cancel_at, cancel))
        return steps


def _type_matches(event_type: str, pattern: str) -> bool:
    # Stripe allows one wildcard at the end: `customer.*`.
    if pattern.endswith("*"):
        return event_type.startswith(pattern[:-1])
    return event_type == pattern


def _int_param(request: Request, name: str, default: int) -> int:
    raw = request.arg(name)
    return default if raw in (None, "") else _as_int(raw, name)


def _as_int(raw: str, name: str) -> int:
    try:
        return int(raw)
    except ValueError:
        raise StripeError(400, f"Invalid integer: {raw}", param=name) from None
