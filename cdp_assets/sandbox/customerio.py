"""A stand-in for Customer.io: the Track API (what reverse ETL writes) and the App API (what the extract reads).

One `SandboxApp` serves both on one port; the paths do not overlap (saas-apis.md §6).

Track API (Basic `site_id:track_api_key`; 401 is `{"meta": {"error": "Unauthorized request"}}`):

- `PUT /api/v1/customers/{id}` (identify: create or update; `_update: true` only updates), `DELETE` it;
  a path identifier is an id, `cio_<cio_id>`, or the email of a person whose id is something else
  (RudderStack's destination sends `userId || email`);
- `POST /api/v1/customers/{id}/events`, `POST /api/v1/events` (anonymous);
- `POST /api/v1/customers/{id}/suppress` and `/unsuppress`: suppress deletes the profile and blocks its
  identifiers (a later identify is accepted and ignored, as Customer.io does) until unsuppressed;
- `PUT /api/v1/customers/{id}/devices`, `DELETE /api/v1/customers/{id}/devices/{token}`;
- `POST /api/v1/merge_customers`; `POST /api/v1/segments/{id}/add_customers|remove_customers` (manual
  segments only; an id nobody has is ignored, with a 200, as Customer.io documents);
- `POST /api/v2/batch`: person `identify|delete|suppress|unsuppress|event|add_relationships|
  delete_relationships`, object `identify|delete|add_relationships|delete_relationships`; at most 1,000
  operations and 500 KB per request (else 400), 32 KB per operation (else that operation fails); 200 `{}`
  or 207 `{"errors": [{batch_index, reason, field, message}]}`.

Every Track call is in the request log and changes the state the App API reads, and writes the
activities Customer.io would (`profile_create`, `attribute_change`, `profile_delete`, `event`, ...).
Customer.io accepts a Track call and processes it later; the sandbox applies it at once unless a test
asks for the lag (`delay_identifies`): identify calls (v1 and batch) are then validated at once but
applied only that many seconds later, so an `add_customers` sent right after the identify of a new person
finds nobody and is ignored, as it can be in Customer.io.

App API (Bearer app key), the cursor endpoints answer `next` ("" on the last page) to send back as `start`:

- `GET /v1/campaigns`, `GET /v1/segments`, `GET /v1/segments/{id}/membership?start=&limit=`;
- `GET /v1/messages?start=&limit=&type=&metric=&campaign_id=&start_ts=&end_ts=` (newest first; without a
  time filter only the last 6 months);
- `GET /v1/customers/{id}/attributes`, `GET /v1/customers?email=`, `POST /v1/customers` (filter search:
  `and`/`or`/`not`, `segment`, `attribute` with `eq`/`exists`; `identifiers`, `ids`, `next`),
  `POST /v1/customers/attributes` (`{"ids": [<=100]}`); attribute values are strings, as the API's are;
- `GET /v1/activities?start=&limit=&type=&name=&deleted=&customer_id=` (newest first; `deleted=true`
  returns the activities of deleted people);
- `GET /v1/esp/suppression/{bounces|blocks|spam_reports|invalid_emails}?limit=&offset=` and
  `GET /v1/esp/search_suppression/{email}`: the email provider's suppressions (bounces, spam complaints);
- `GET /v1/optouts?start=&limit=`: SMS opt-outs (a STOP reply) per person and sender.

Where consent lives, as in Customer.io: an email unsubscribe is the person's `unsubscribed` attribute
(its history is the `attribute_change` activities named `unsubscribed`); an SMS STOP is an opt-out entry;
bounces and spam complaints are ESP suppressions; a Track API suppression is an erasure (the profile is
gone). The seed follows the `World`: people with a known email (leads, sign-ups, customers, and visitors
who only ever dealt with Customer.io), their lifecycle as attribute changes, the consent changes recorded
with system "customerio" (email unsubscribes and resubscribes, SMS STOPs), campaign messages with
metrics, and the ESP suppressions their bounces and spam complaints cause, plus a few invalid addresses.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import hashlib
import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import unquote

from cdp_assets.sandbox.clock import UnixTimeMixin
from cdp_assets.sandbox.http import Fault, Request, Response, SandboxApp
from cdp_assets.sandbox.world import WORLD_END, Person, World, build_world

SANDBOX_SITE_ID = "sandbox-site-id"
SANDBOX_TRACK_API_KEY = "sandbox-track-api-key"
SANDBOX_APP_API_KEY = "sandbox-app-api-key"
SMS_SENDER = "+15550100200"

MAX_BATCH_OPERATIONS = 1000
MAX_BATCH_BYTES = 500 * 1024
MAX_OPERATION_BYTES = 32 * 1024
MAX_ATTRIBUTE_IDS = 100
ESP_TYPES = ("bounces", "blocks", "spam_reports", "invalid_emails")
SIX_MONTHS = 183 * 86_400

Obj = dict[str, Any]


@dataclass
class CioPerson:
    id: str
    cio_id: str
    created: int
    attributes: dict[str, Any] = field(default_factory=dict)
    timestamps: dict[str, int] = field(default_factory=dict)
    devices: dict[str, Obj] = field(default_factory=dict)

    @property
    def email(self) -> str | None:
        value = self.attributes.get("email")
        return str(value) if value not in (None, "") else None

    @property
    def unsubscribed(self) -> bool:
        return _truthy(self.attributes.get("unsubscribed"))

    def identifiers(self) -> Obj:
        return {"id": self.id, "email": self.email, "cio_id": self.cio_id}


@dataclass
class Segment:
    id: int
    name: str
    description: str
    type: str  # "dynamic" or "manual"
    created: int
    rule: Callable[[CioPerson], bool] | None = None  # dynamic segments: membership follows the attributes
    members: set[str] = field(default_factory=set)  # manual segments: cio_ids

    def as_json(self) -> Obj:
        return {
            "id": self.id,
            "deduplicate_id": f"{self.id}:{self.created}",
            "name": self.name,
            "description": self.description,
            "state": "finished",
            "progress": None,
            "type": self.type,
            "tags": None,
        }


class TrackError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def cio_error(status: int, message: str) -> Response:
    return Response.json({"meta": {"error": message}}, status)


def rate_limit_fault(times: int = 1, retry_after: float | None = 1, path: str | None = None) -> Fault:
    """The next `times` matching requests get 429 (with Retry-After unless None)."""
    response = cio_error(429, "Too Many Requests")
    if retry_after is not None:
        response.headers["Retry-After"] = f"{retry_after:g}"
    return Fault(response, times=times, path=path)


def server_error_fault(times: int = 1, status: int = 503, path: str | None = None) -> Fault:
    return Fault(cio_error(status, "Service Unavailable (sandbox fault)"), times=times, path=path)


class CustomerIOSandbox(UnixTimeMixin, SandboxApp):
    """Customer.io's Track and App APIs over world-seeded people, campaigns, messages and consent."""

    name = "customerio"

    def __init__(
        self,
        world: World | None = None,
        *,
        site_id: str = SANDBOX_SITE_ID,
        track_api_key: str = SANDBOX_TRACK_API_KEY,
        app_api_key: str = SANDBOX_APP_API_KEY,
        start: datetime | None = None,
        span: timedelta | None = None,
    ) -> None:
        super().__init__()
        self.world = world or build_world()
        self.site_id = site_id
        self.track_api_key = track_api_key
        self.app_api_key = app_api_key
        self._init_time(start, span, lead_seconds=30 * 86_400)
        self.people: dict[str, CioPerson] = {}  # by id, in creation order
        self.deleted_people: dict[str, CioPerson] = {}  # by cio_id
        self.suppressed: dict[str, int] = {}  # identifier (id, email or cio_id) -> when
        self.segments: dict[int, Segment] = {}
        self.campaigns: list[Obj] = []
        self.messages: list[Obj] = []  # oldest first
        self.activities: list[Obj] = []  # oldest first; each has `_deleted` while its person is gone
        self.esp_suppressions: dict[str, dict[str, Obj]] = {t: {} for t in ESP_TYPES}  # type -> email -> row
        self.sms_optouts: dict[str, list[Obj]] = {}  # cio_id -> [{channel, from}]
        self.person_events: list[Obj] = []  # what Track events were sent for people
        self.anonymous_events: list[Obj] = []
        self.objects: dict[tuple[str, str], Obj] = {}  # (object_type_id, object_id) -> attributes
        self.relationships: set[tuple[str, str, str]] = set()  # (object_type_id, object_id, cio_id)
        self._counter = 0
        self._cio_seq = 0
        self._rejections: dict[str, list[Any]] = {}  # identifier -> [message, times left or None]
        # Identify calls accepted but not applied yet (delay_identifies): (due on time.monotonic, apply).
        self.identify_delay = 0.0
        self._queued: list[tuple[float, Callable[[], None]]] = []
        self._seed()
        self.set_time(self.unix(WORLD_END))
        self._routes_track()
        self._routes_app()

    # -- reading (tests) -------------------------------------------------------------------------

    def person(self, identifier: str) -> CioPerson | None:
        """A live person by id, `cio_<cio_id>` or email."""
        with self.lock:
            self._apply_due()
            return self._find(identifier)

    def person_for(self, world_person: Person) -> CioPerson | None:
        return self._find(world_person.user_id or world_person.email)

    def segment_members(self, segment_id: int) -> list[CioPerson]:
        with self.lock:
            self._apply_due()
            segment = self.segments[segment_id]
            return [p for p in self.people.values() if self._in_segment(segment, p)]

    # -- processing lag (Customer.io queues Track calls) ----------------------------------------------

    def delay_identifies(self, seconds: float) -> None:
        """From now on apply each Track identify `seconds` after it is accepted (0: at once, the default)."""
        with self.lock:
            self.identify_delay = max(0.0, seconds)

    def settle(self) -> None:
        """Apply every queued identify now."""
        with self.lock:
            self._apply_due(everything=True)

    def _apply_due(self, everything: bool = False) -> None:
        now = time.monotonic()
        while self._queued and (everything or self._queued[0][0] <= now):
            self._queued.pop(0)[1]()

    def _track_identify(self, identifiers: Obj, attributes: Obj, update_only: bool = False) -> None:
        """An identify that came over the Track API: applied now, or validated now and applied later."""
        if self.identify_delay <= 0 and not self._queued:
            self._identify(identifiers, attributes, update_only)
            return
        if self._resolve(identifiers) is None:
            raise TrackError(400, "identifiers must contain an id, email or cio_id")
        self._check_rejection(identifiers, attributes)
        due = time.monotonic() + self.identify_delay
        # Applied in the order accepted; a failure then (a new person without an id) is Customer.io's
        # to log, not the caller's to see.
        self._queued.append((due, lambda: self._apply_queued(dict(identifiers), dict(attributes), update_only)))

    def _apply_queued(self, identifiers: Obj, attributes: Obj, update_only: bool) -> None:
        with contextlib.suppress(TrackError):
            self._identify(identifiers, attributes, update_only, checked=True)

    def is_suppressed(self, identifier: str) -> bool:
        return identifier in self.suppressed

    # -- test helpers (the same code paths as the Track API) --------------------------------------

    def identify(self, identifier: str, **attributes: Any) -> CioPerson | None:
        with self.lock:
            return self._identify({"id": identifier}, attributes)

    def delete(self, identifier: str) -> None:
        with self.lock:
            self._delete_person(self._find(identifier))

    def suppress(self, identifier: str) -> None:
        with self.lock:
            self._suppress({"id": identifier})

    def add_message(self, person_id: str, campaign_id: int, **metrics: int) -> Obj:
        """A message sent now to a person in a campaign (metrics: name -> unix time; `sent` defaults to now)."""
        with self.lock:
            person = self._require(person_id)
            campaign = next(c for c in self.campaigns if c["id"] == campaign_id)
            return self._new_message(person, campaign, campaign["actions"][0]["id"], {"sent": self.now(), **metrics})

    def add_esp_suppression(self, kind: str, email: str, reason: str = "550 5.1.1 mailbox unavailable") -> Obj:
        with self.lock:
            row = {"email": email, "created": self.now(), "reason": reason, "status": "550"}
            self.esp_suppressions[kind][email] = row
            return dict(row)

    def reject(
        self, identifiers: list[str], message: str = "rejected by the sandbox", times: int | None = None
    ) -> None:
        """Writes (identify, suppress) naming one of these ids or emails fail: 400 on v1, a 207 item in a
        batch. `times` limits how often each fails; None: always (until `clear_rejections`)."""
        with self.lock:
            for identifier in identifiers:
                self._rejections[identifier] = [message, times]

    def clear_rejections(self) -> None:
        with self.lock:
            self._rejections.clear()

    def _check_rejection(self, identifiers: Obj, attributes: Obj | None = None) -> None:
        if not self._rejections:
            return
        values = [str(v) for v in identifiers.values() if v not in (None, "")]
        if attributes and attributes.get("email"):
            values.append(str(attributes["email"]))
        for value in values:
            rule = self._rejections.get(value)
            if rule is None:
                continue
            if rule[1] is not None:
                rule[1] -= 1
                if rule[1] <= 0:
                    del self._rejections[value]
            raise TrackError(400, f"{rule[0]}: {value}")

    def add_sms_optout(self, person_id: str, sender: str = SMS_SENDER) -> None:
        with self.lock:
            person = self._require(person_id)
            entries = self.sms_optouts.setdefault(person.cio_id, [])
            if not any(e["from"] == sender for e in entries):
                entries.append({"channel": "sms", "from": sender})

    # -- the model -------------------------------------------------------------------------------

    def _next(self) -> int:
        self._counter += 1
        return self._counter

    def _find(self, identifier: str | None, kind: str = "id") -> CioPerson | None:
        if not identifier:
            return None
        if kind == "cio_id" or (kind == "id" and identifier.startswith("cio_")):
            cio_id = identifier.removeprefix("cio_")
            return next((p for p in self.people.values() if p.cio_id == cio_id), None)
        if kind == "email":
            wanted = identifier.strip().lower()
            return next((p for p in self.people.values() if (p.email or "").lower() == wanted), None)
        return self.people.get(identifier)

    def _require(self, identifier: str) -> CioPerson:
        person = self._find(identifier)
        if person is None:
            raise KeyError(f"no person {identifier!r} in the Customer.io sandbox")
        return person

    def _resolve(self, identifiers: Obj) -> tuple[str, str] | None:
        for kind in ("id", "cio_id", "email"):
            value = identifiers.get(kind)
            if value not in (None, ""):
                return kind, str(value)
        return None

    def _find_by(self, identifiers: Obj) -> CioPerson | None:
        resolved = self._resolve(identifiers)
        return self._find(resolved[1], resolved[0]) if resolved else None

    def _blocked(self, identifiers: Obj, attributes: Obj | None = None) -> bool:
        values = {str(v) for v in identifiers.values() if v not in (None, "")}
        if attributes and attributes.get("email"):
            values.add(str(attributes["email"]))
        return any(v in self.suppressed for v in values)

    def _identify(
        self, identifiers: Obj, attributes: Obj, update_only: bool = False, checked: bool = False
    ) -> CioPerson | None:
        if self._resolve(identifiers) is None:
            raise TrackError(400, "identifiers must contain an id, email or cio_id")
        if not checked:  # a queued identify was checked when it was accepted
            self._check_rejection(identifiers, attributes)
        if self._blocked(identifiers, attributes):
            return None  # Customer.io accepts and drops data for suppressed identifiers
        person = self._find_by(identifiers)
        now = self.now()
        attributes = {k: v for k, v in attributes.items() if k not in ("_update", "id", "cio_id")}
        if person is None:
            if update_only:
                return None
            new_id = identifiers.get("id") or identifiers.get("email")
            if not new_id:
                raise TrackError(400, "a new person needs an id or an email")
            self._cio_seq += 1
            person = CioPerson(id=str(new_id), cio_id=f"{0xA3000000 + self._cio_seq:x}", created=now)
            if identifiers.get("email") and "email" not in attributes:
                attributes["email"] = identifiers["email"]
            attributes.setdefault("created_at", now)
            for key, value in attributes.items():
                if value not in (None, ""):
                    person.attributes[key] = value
                    person.timestamps[key] = now
            self.people[person.id] = person
            self._activity("profile_create", person, data={})
            return person
        for key, value in attributes.items():
            old = person.attributes.get(key)
            if value in (None, ""):
                if key in person.attributes:
                    del person.attributes[key]
                    person.timestamps[key] = now
                    self._activity("attribute_change", person, name=key, data={key: {"from": _s(old), "to": ""}})
            elif old != value:
                person.attributes[key] = value
                person.timestamps[key] = now
                self._activity("attribute_change", person, name=key, data={key: {"from": _s(old), "to": _s(value)}})
        return person

    def _delete_person(self, person: CioPerson | None) -> None:
        if person is None:
            return
        del self.people[person.id]
        self.deleted_people[person.cio_id] = person
        for activity in self.activities:
            if activity["customer_identifiers"]["cio_id"] == person.cio_id:
                activity["_deleted"] = True
        for segment in self.segments.values():
            segment.members.discard(person.cio_id)
        self.relationships = {r for r in self.relationships if r[2] != person.cio_id}
        self._activity("profile_delete", person, data={}, deleted=True)

    def _suppress(self, identifiers: Obj) -> None:
        self._check_rejection(identifiers)
        person = self._find_by(identifiers)
        now = self.now()
        keys = {str(v) for v in identifiers.values() if v not in (None, "")}
        if person is not None:
            keys |= {person.id, person.cio_id, *([person.email] if person.email else [])}
            self._delete_person(person)
        for key in keys:
            self.suppressed[key] = now

    def _unsuppress(self, identifiers: Obj) -> None:
        for value in identifiers.values():
            self.suppressed.pop(str(value), None)

    def _track_event(self, identifiers: Obj, name: str, data: Obj, timestamp: int | None, kind: str) -> None:
        if not name:
            raise TrackError(400, "event name is required")
        if self._blocked(identifiers):
            return
        person = self._find_by(identifiers)
        event = {
            "identifiers": dict(identifiers),
            "name": name,
            "type": kind,
            "data": data,
            "timestamp": timestamp or self.now(),
        }
        self.person_events.append(event)
        if person is not None:
            self._activity(kind if kind in ("page", "screen") else "event", person, name=name, data=data)

    def _activity(
        self, type_: str, person: CioPerson, *, name: str | None = None, data: Obj, deleted: bool = False
    ) -> None:
        n = self._next()
        now = self.now()
        self.activities.append(
            {
                "id": _ulid(now, n),
                "type": type_,
                "name": name,
                "timestamp": now,
                "customer_id": person.id,
                "customer_identifiers": person.identifiers(),
                "data": data,
                "delivery_id": None,
                "delivery_type": None,
                "_deleted": deleted,
            }
        )

    def _in_segment(self, segment: Segment, person: CioPerson) -> bool:
        if segment.rule is not None:
            return segment.rule(person)
        return person.cio_id in segment.members

    def _new_message(self, person: CioPerson, campaign: Obj, action_id: int, metrics: Obj) -> Obj:
        n = self._next()
        digest = hashlib.sha1(f"{self.world.seed}:msg:{n}".encode(), usedforsecurity=False).digest()
        message = {
            "id": base64.urlsafe_b64encode(digest[:16]).decode(),
            "deduplicate_id": f"{n}:{self.now()}",
            "message_template_id": action_id,
            "customer_id": person.id,
            "customer_identifiers": person.identifiers(),
            "recipient": person.email,
            "subject": campaign["_subject"],
            "type": "email",
            "campaign_id": campaign["id"],
            "action_id": action_id,
            "parent_action_id": None,
            "broadcast_id": None,
            "newsletter_id": None,
            "content_id": None,
            "created": self.now(),
            "forgotten": False,
            "failure_message": None,
            "metrics": dict(metrics),
        }
        self.messages.append(message)
        return message

    # -- HTTP: Track API -------------------------------------------------------------------------

    def _routes_track(self) -> None:
        self.route("PUT", r"/api/v1/customers/(?P<cid>[^/]+)", self._track(self._put_customer))
        self.route("DELETE", r"/api/v1/customers/(?P<cid>[^/]+)", self._track(self._delete_customer))
        self.route("POST", r"/api/v1/customers/(?P<cid>[^/]+)/events", self._track(self._post_event))
        self.route("POST", r"/api/v1/customers/(?P<cid>[^/]+)/suppress", self._track(self._post_suppress))
        self.route("POST", r"/api/v1/customers/(?P<cid>[^/]+)/unsuppress", self._track(self._post_unsuppress))
        self.route("PUT", r"/api/v1/customers/(?P<cid>[^/]+)/devices", self._track(self._put_device))
        self.route(
            "DELETE", r"/api/v1/customers/(?P<cid>[^/]+)/devices/(?P<token>[^/]+)", self._track(self._delete_device)
        )
        self.route("POST", r"/api/v1/events", self._track(self._post_anonymous_event))
        self.route("POST", r"/api/v1/merge_customers", self._track(self._post_merge))
        self.route(
            "POST",
            r"/api/v1/segments/(?P<sid>\d+)/(?P<op>add_customers|remove_customers)",
            self._track(self._post_members),
        )
        self.route("POST", r"/api/v2/batch", self._track(self._post_batch))

    def _track(self, handler: Callable[..., Response | None]) -> Callable[..., Response]:
        def wrapped(request: Request, **kwargs: str) -> Response:
            if not self._basic_ok(request):
                return cio_error(401, "Unauthorized request")
            try:
                body = request.json() if request.body else {}
            except ValueError:
                return cio_error(400, "the request body is not valid JSON")
            if body is not None and not isinstance(body, dict):
                return cio_error(400, "the request body must be a JSON object")
            with self.lock:
                self._apply_due()
                try:
                    return handler(body or {}, **{k: unquote(v) for k, v in kwargs.items()}) or Response.json({})
                except TrackError as exc:
                    return cio_error(exc.status, str(exc))

        return wrapped

    def _basic_ok(self, request: Request) -> bool:
        header = request.headers.get("Authorization") or request.headers.get("authorization") or ""
        if not header.startswith("Basic "):
            return False
        try:
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return False
        return user == self.site_id and password == self.track_api_key

    def _path_identifiers(self, cid: str) -> Obj:
        """What a v1 path identifier refers to, as Customer.io reads it in a workspace that identifies
        people by id or email: `cio_<id>` is a cio_id; an address that is nobody's id but someone's
        email is that person (RudderStack sends `userId || email`); anything else is an id."""
        if cid.startswith("cio_"):
            return {"cio_id": cid[4:]}
        if "@" in cid and cid not in self.people and self._find(cid, "email") is not None:
            return {"email": cid}
        return {"id": cid}

    def _put_customer(self, body: Obj, cid: str) -> None:
        self._track_identify(self._path_identifiers(cid), body, update_only=bool(body.get("_update")))

    def _delete_customer(self, body: Obj, cid: str) -> None:
        self._delete_person(self._find_by(self._path_identifiers(cid)))

    def _post_event(self, body: Obj, cid: str) -> None:
        self._track_event(
            self._path_identifiers(cid),
            str(body.get("name") or ""),
            body.get("data") or {},
            body.get("timestamp"),
            str(body.get("type") or "event"),
        )

    def _post_suppress(self, body: Obj, cid: str) -> None:
        self._suppress(self._path_identifiers(cid))

    def _post_unsuppress(self, body: Obj, cid: str) -> None:
        self._unsuppress({"id": cid.removeprefix("cio_")})

    def _put_device(self, body: Obj, cid: str) -> None:
        device = body.get("device") or {}
        if not device.get("id"):
            raise TrackError(400, "device.id is required")
        person = self._find_by(self._path_identifiers(cid))
        if person is not None:
            person.devices[str(device["id"])] = {**device, "last_used": self.now()}
            self._activity("device_change", person, data={"device": device})

    def _delete_device(self, body: Obj, cid: str, token: str) -> None:
        person = self._find_by(self._path_identifiers(cid))
        if person is not None and person.devices.pop(token, None) is not None:
            self._activity("device_change", person, data={"deleted": token})

    def _post_anonymous_event(self, body: Obj) -> None:
        if not body.get("name"):
            raise TrackError(400, "event name is required")
        self.anonymous_events.append({**body, "timestamp": body.get("timestamp") or self.now()})

    def _post_merge(self, body: Obj) -> None:
        primary_ids, secondary_ids = body.get("primary") or {}, body.get("secondary") or {}
        primary, secondary = self._find_by(primary_ids), self._find_by(secondary_ids)
        if primary is None or secondary is None:
            raise TrackError(400, "both the primary and the secondary person must exist")
        self._merge(primary, secondary)

    def _merge(self, primary: CioPerson, secondary: CioPerson) -> None:
        # The primary keeps its values; it gains the attributes only the secondary had.
        extra = {k: v for k, v in secondary.attributes.items() if k not in primary.attributes and k != "email"}
        self._delete_person(secondary)
        self._identify({"id": primary.id}, extra)
        self._activity("profile_merge", primary, data={"merged": secondary.identifiers()})

    def _post_members(self, body: Obj, sid: str, op: str) -> None:
        segment = self.segments.get(int(sid))
        if segment is None:
            raise TrackError(404, f"segment {sid} not found")
        if segment.type != "manual":
            raise TrackError(400, f"segment {sid} is a data-driven segment: its members cannot be set")
        for value in body.get("ids") or []:
            person = self._find(str(value), "email" if body.get("id_type") == "email" else "id")
            if person is None:
                continue
            if op == "add_customers":
                segment.members.add(person.cio_id)
            else:
                segment.members.discard(person.cio_id)

    def _post_batch(self, body: Obj) -> Response:
        raw = json.dumps(body).encode()
        operations = body.get("batch")
        if not isinstance(operations, list) or not operations:
            return Response.json(
                {"errors": [{"reason": "invalid", "field": "batch", "message": "batch must be a non-empty array"}]}, 400
            )
        if len(operations) > MAX_BATCH_OPERATIONS:
            message = f"a batch holds at most {MAX_BATCH_OPERATIONS} operations, got {len(operations)}"
            return Response.json({"errors": [{"reason": "too_many", "field": "batch", "message": message}]}, 400)
        if len(raw) > MAX_BATCH_BYTES:
            message = f"a batch must be smaller than {MAX_BATCH_BYTES} bytes, got {len(raw)}"
            return Response.json({"errors": [{"reason": "too_large", "field": "batch", "message": message}]}, 400)
        errors = []
        for index, operation in enumerate(operations):
            problem = self._batch_operation(operation)
            if problem is not None:
                field_name, message = problem
                errors.append({"batch_index": index, "reason": "invalid", "field": field_name, "message": message})
        return Response.json({"errors": errors}, 207) if errors else Response.json({})

    def _batch_operation(self, operation: Any) -> tuple[str, str] | None:
        """Apply one batch operation; (field, message) when it is invalid."""
        if not isinstance(operation, dict):
            return "batch", "an operation must be an object"
        if len(json.dumps(operation).encode()) > MAX_OPERATION_BYTES:
            return "batch", f"an operation must be smaller than {MAX_OPERATION_BYTES} bytes"
        kind, action = operation.get("type"), operation.get("action")
        identifiers = operation.get("identifiers")
        if not isinstance(identifiers, dict):
            return "identifiers", "identifiers are required"
        try:
            if kind == "person":
                if self._resolve(identifiers) is None:
                    return "identifiers", "identifiers must contain an id, email or cio_id"
                attributes = operation.get("attributes") or {}
                if action == "identify":
                    self._track_identify(identifiers, attributes)
                elif action == "delete":
                    self._delete_person(self._find_by(identifiers))
                elif action == "suppress":
                    self._suppress(identifiers)
                elif action == "unsuppress":
                    self._unsuppress(identifiers)
                elif action == "event":
                    self._track_event(
                        identifiers, str(operation.get("name") or ""), attributes, operation.get("timestamp"), "event"
                    )
                elif action in ("add_relationships", "delete_relationships"):
                    person = self._find_by(identifiers)
                    if person is None:
                        return "identifiers", "the person does not exist"
                    for rel in operation.get("cio_relationships") or []:
                        ids = rel.get("identifiers") or {}
                        key = (str(ids.get("object_type_id")), str(ids.get("object_id")), person.cio_id)
                        if action == "add_relationships":
                            self.relationships.add(key)
                        else:
                            self.relationships.discard(key)
                else:
                    return "action", f"unknown person action {action!r}"
            elif kind == "object":
                type_id, object_id = identifiers.get("object_type_id"), identifiers.get("object_id")
                if not type_id or not object_id:
                    return "identifiers", "object identifiers need object_type_id and object_id"
                key = (str(type_id), str(object_id))
                if action == "identify":
                    self.objects[key] = {**self.objects.get(key, {}), **(operation.get("attributes") or {})}
                elif action == "delete":
                    self.objects.pop(key, None)
                    self.relationships = {r for r in self.relationships if r[:2] != key}
                elif action in ("add_relationships", "delete_relationships"):
                    for rel in operation.get("cio_relationships") or []:
                        person = self._find_by(rel.get("identifiers") or {})
                        if person is None:
                            continue
                        if action == "add_relationships":
                            self.relationships.add((*key, person.cio_id))
                        else:
                            self.relationships.discard((*key, person.cio_id))
                else:
                    return "action", f"unknown object action {action!r}"
            else:
                return "type", f"unknown type {kind!r}"
        except TrackError as exc:
            return "batch", str(exc)
        return None

    # -- HTTP: App API ---------------------------------------------------------------------------

    def _routes_app(self) -> None:
        self.route("GET", r"/v1/campaigns", self._app(self._get_campaigns))
        self.route("GET", r"/v1/segments", self._app(self._get_segments))
        self.route("GET", r"/v1/segments/(?P<sid>[^/]+)/membership", self._app(self._get_membership))
        self.route("GET", r"/v1/messages", self._app(self._get_messages))
        self.route("GET", r"/v1/activities", self._app(self._get_activities))
        self.route("GET", r"/v1/customers", self._app(self._get_customers_by_email))
        self.route("POST", r"/v1/customers", self._app(self._search_customers))
        self.route("POST", r"/v1/customers/attributes", self._app(self._post_attributes))
        self.route("GET", r"/v1/customers/(?P<cid>[^/]+)/attributes", self._app(self._get_attributes))
        self.route("GET", r"/v1/esp/suppression/(?P<kind>[^/]+)", self._app(self._get_esp_suppressions))
        self.route("GET", r"/v1/esp/search_suppression/(?P<email>[^/]+)", self._app(self._search_esp_suppression))
        self.route("GET", r"/v1/optouts", self._app(self._get_optouts))

    def _app(self, handler: Callable[..., Response]) -> Callable[..., Response]:
        def wrapped(request: Request, **kwargs: str) -> Response:
            header = request.headers.get("Authorization") or request.headers.get("authorization") or ""
            if header != f"Bearer {self.app_api_key}":
                return cio_error(401, "Unauthorized request")
            with self.lock:
                self._apply_due()
                try:
                    return handler(request, **{k: unquote(v) for k, v in kwargs.items()})
                except TrackError as exc:
                    return cio_error(exc.status, str(exc))

        return wrapped

    def _get_campaigns(self, request: Request) -> Response:
        return Response.json({"campaigns": [_public(c) for c in self.campaigns]})

    def _get_segments(self, request: Request) -> Response:
        return Response.json({"segments": [s.as_json() for s in self.segments.values()]})

    def _get_membership(self, request: Request, sid: str) -> Response:
        segment = self.segments.get(int(sid)) if sid.isdigit() else None
        if segment is None:
            raise TrackError(404, f"segment {sid} not found")
        members = [p for p in self.people.values() if self._in_segment(segment, p)]
        page, next_token = _page(request, members, default_limit=1000, max_limit=30000)
        return Response.json(
            {"identifiers": [p.identifiers() for p in page], "ids": [p.id for p in page], "next": next_token}
        )

    def _get_messages(self, request: Request) -> Response:
        start_ts, end_ts = _opt_int(request, "start_ts"), _opt_int(request, "end_ts")
        if start_ts is None and end_ts is None:
            start_ts = self.now() - SIX_MONTHS
        rows = [
            m
            for m in reversed(self.messages)
            if (start_ts is None or m["created"] >= start_ts)
            and (end_ts is None or m["created"] <= end_ts)
            and (request.arg("type") in (None, "", m["type"]))
            and (request.arg("campaign_id") in (None, "", str(m["campaign_id"])))
            and (request.arg("metric") in (None, "") or request.arg("metric") in m["metrics"])
        ]
        page, next_token = _page(request, rows, default_limit=50, max_limit=1000)
        return Response.json({"messages": copy.deepcopy(page), "next": next_token})

    def _get_activities(self, request: Request) -> Response:
        deleted = (request.arg("deleted") or "false").lower() == "true"
        customer = request.arg("customer_id")
        person = self._find(customer, request.arg("id_type") or "id") if customer else None
        rows = [
            a
            for a in reversed(self.activities)
            if a["_deleted"] == deleted
            and request.arg("type") in (None, "", a["type"])
            and request.arg("name") in (None, "", a["name"])
            and (customer is None or (person is not None and a["customer_identifiers"]["cio_id"] == person.cio_id))
        ]
        page, next_token = _page(request, rows, default_limit=10, max_limit=100)
        return Response.json({"activities": [_public(a) for a in page], "next": next_token})

    def _get_customers_by_email(self, request: Request) -> Response:
        email = (request.arg("email") or "").strip().lower()
        if not email:
            raise TrackError(400, "email is required")
        found = [p.identifiers() for p in self.people.values() if (p.email or "").lower() == email]
        return Response.json({"results": found})

    def _search_customers(self, request: Request) -> Response:
        try:
            body = request.json() or {}
        except ValueError:
            raise TrackError(400, "the request body is not valid JSON") from None
        condition = body.get("filter") if isinstance(body, dict) else None
        if not isinstance(condition, dict) or not condition:
            raise TrackError(400, "a filter is required")
        matches = [p for p in self.people.values() if self._filter(condition, p)]
        page, next_token = _page(request, matches, default_limit=50, max_limit=1000)
        return Response.json(
            {"identifiers": [p.identifiers() for p in page], "ids": [p.id for p in page], "next": next_token}
        )

    def _filter(self, condition: Obj, person: CioPerson) -> bool:
        if "and" in condition:
            return all(self._filter(c, person) for c in condition["and"])
        if "or" in condition:
            return any(self._filter(c, person) for c in condition["or"])
        if "not" in condition:
            return not self._filter(condition["not"], person)
        if "segment" in condition:
            segment = self.segments.get(int(condition["segment"].get("id", -1)))
            return segment is not None and self._in_segment(segment, person)
        if "attribute" in condition:
            spec = condition["attribute"]
            name, operator = spec.get("field"), spec.get("operator")
            value = {"id": person.id, "cio_id": person.cio_id}.get(name, person.attributes.get(name))
            if operator == "exists":
                return value not in (None, "")
            if operator == "eq":
                return value is not None and _s(value) == _s(spec.get("value"))
            raise TrackError(400, f"unsupported operator {operator!r}")
        raise TrackError(400, f"unsupported filter {sorted(condition)}")

    def _post_attributes(self, request: Request) -> Response:
        try:
            body = request.json() or {}
        except ValueError:
            raise TrackError(400, "the request body is not valid JSON") from None
        ids = body.get("ids") if isinstance(body, dict) else None
        if not isinstance(ids, list) or not ids:
            raise TrackError(400, "ids must be a non-empty array")
        if len(ids) > MAX_ATTRIBUTE_IDS:
            raise TrackError(400, f"at most {MAX_ATTRIBUTE_IDS} ids per request, got {len(ids)}")
        found = [self.people[str(i)] for i in ids if str(i) in self.people]
        return Response.json({"customers": [self._customer_json(p) for p in found]})

    def _get_attributes(self, request: Request, cid: str) -> Response:
        person = self._find(cid, request.arg("id_type") or "id")
        if person is None:
            raise TrackError(404, "Customer not found")
        return Response.json({"customer": self._customer_json(person)})

    def _customer_json(self, person: CioPerson) -> Obj:
        attributes = {k: _s(v) for k, v in person.attributes.items()}
        attributes.update(id=person.id, cio_id=person.cio_id)
        return {
            "id": person.id,
            "identifiers": person.identifiers(),
            "attributes": attributes,
            "timestamps": dict(person.timestamps),
            "unsubscribed": person.unsubscribed,
            "devices": [dict(d) for d in person.devices.values()],
        }

    def _get_esp_suppressions(self, request: Request, kind: str) -> Response:
        if kind not in ESP_TYPES:
            raise TrackError(400, f"suppression_type must be one of {', '.join(ESP_TYPES)}")
        limit = _opt_int(request, "limit") or 100
        offset = _opt_int(request, "offset") or 0
        if not 1 <= limit <= 1000:
            raise TrackError(400, "limit must be between 1 and 1000")
        rows = sorted(self.esp_suppressions[kind].values(), key=lambda r: (r["created"], r["email"]))
        return Response.json({"category": kind, "suppressions": [dict(r) for r in rows[offset : offset + limit]]})

    def _search_esp_suppression(self, request: Request, email: str) -> Response:
        found = [
            {**row, "type": kind}
            for kind, rows in self.esp_suppressions.items()
            for row in rows.values()
            if row["email"].lower() == email.lower()
        ]
        return Response.json({"suppressions": found})

    def _get_optouts(self, request: Request) -> Response:
        people = {p.cio_id: p for p in self.people.values()}
        rows = [
            {"customer_id": people[c].id, "cio_id": c, "optouts": [dict(e) for e in entries]}
            for c, entries in self.sms_optouts.items()
            if c in people
            and entries
            and (request.arg("from") in (None, "") or any(e["from"] == request.arg("from") for e in entries))
        ]
        page, next_token = _page(request, rows, default_limit=100, max_limit=1000)
        return Response.json({"optouts": page, "next": next_token})

    # -- seeding ---------------------------------------------------------------------------------

    def _seed(self) -> None:
        self._seed_catalog()
        rng = random.Random(f"customerio:{self.world.seed}")
        self._replay([step for person in self.world.people for step in self._journey(person, rng)])
        self._seed_invalid_emails(rng)

    def _seed_catalog(self) -> None:
        created = self.now()

        def stage(*stages: str) -> Callable[[CioPerson], bool]:
            return lambda p: p.attributes.get("lifecycle_stage") in stages

        segments = (
            Segment(1, "Signed up", "People with an account", "dynamic", created, stage("signed_up", "customer")),
            Segment(2, "Customers", "Paying customers", "dynamic", created, stage("customer")),
            Segment(
                3,
                "Signed up, no source yet",
                "Accounts that have not created a source",
                "dynamic",
                created,
                lambda p: stage("signed_up", "customer")(p) and "source_created_at" not in p.attributes,
            ),
            Segment(
                4,
                "Free plan",
                "Accounts on the free plan",
                "dynamic",
                created,
                lambda p: p.attributes.get("plan") == "free",
            ),
            Segment(
                5,
                "Email unsubscribed",
                "Globally unsubscribed from email",
                "dynamic",
                created,
                lambda p: p.unsubscribed,
            ),
            Segment(6, "Enterprise prospects", "Managed by the sales team (manual)", "manual", created),
        )
        self.segments = {s.id: s for s in segments}
        # (id, name, type, state, trigger, subject, action count)
        plans = (
            (1, "Welcome series", "event", "running", {"event": "signed_up"}, "Welcome to RudderStack", 2),
            (
                2,
                "Onboarding: connect your first source",
                "segment",
                "running",
                {"segment": 3},
                "Connect your first source",
                1,
            ),
            (3, "Upgrade to Pro", "segment", "running", {"segment": 4}, "Unlock more with Pro", 1),
            (
                4,
                "Enterprise quote follow-up",
                "event",
                "running",
                {"event": "enterprise_quote_requested"},
                "Your quote",
                1,
            ),
            (5, "Re-engagement", "segment", "draft", {"segment": 1}, "We miss you", 1),
        )
        for cid, name, kind, state, trigger, subject, actions in plans:
            self.campaigns.append(
                {
                    "id": cid,
                    "deduplicate_id": f"{cid}:{created}",
                    "name": name,
                    "type": kind,
                    "state": state,
                    "active": state == "running",
                    "created": created,
                    "updated": created,
                    "created_by": "marketing-ops@rudderstack.com",
                    "first_started": created if state == "running" else None,
                    "trigger_segment_ids": [trigger["segment"]] if "segment" in trigger else [],
                    "event_name": trigger.get("event"),
                    "filter_segment_ids": [],
                    "tags": ["lifecycle"],
                    "actions": [{"id": cid * 100 + i + 1, "type": "email"} for i in range(actions)],
                    "msg_templates": [{"id": cid * 100 + i + 1, "type": "email"} for i in range(actions)],
                    "_subject": subject,
                }
            )

    def _journey(self, person: Person, rng: random.Random) -> list[tuple[int, Callable[[], None]]]:
        """A world person's life in Customer.io as (unix time, change) steps; empty if never there."""
        cio_changes = [c for c in person.consent_changes if c.system == "customerio"]
        known = person.lead_at or person.signed_up_at
        if known is None and not cio_changes:
            return []
        pid = person.user_id or person.email
        created_at = known or person.created_at
        lifecycle = "lead" if person.lead_at and person.lead_at == created_at else "visitor"
        if person.signed_up_at and person.signed_up_at <= created_at:
            lifecycle = "signed_up"
        first: Obj = {
            "email": person.email,
            "first_name": person.first_name,
            "last_name": person.last_name,
            "company": person.company.name,
            "title": person.title,
            "country": person.country,
            "lifecycle_stage": lifecycle,
            "created_at": self.unix(created_at),
        }
        if lifecycle == "signed_up":
            first["plan"] = "free"
        steps: list[tuple[int, Callable[[], None]]] = [(self.unix(created_at), lambda: self.identify(pid, **first))]

        def later(at: datetime | None, **attributes: Any) -> None:
            if at is not None and at > created_at:
                steps.append((self.unix(at), lambda: self.identify(pid, **attributes)))

        if person.signed_up_at and lifecycle != "signed_up":
            later(person.signed_up_at, lifecycle_stage="signed_up", plan="free")
        later(person.source_created_at, source_created_at=self.unix(person.source_created_at or created_at))
        if person.customer_at:
            later(person.customer_at, lifecycle_stage="customer", plan=person.plan)
        if person.quote_requested_at:
            quote_at = self.unix(person.quote_requested_at)
            steps.append((quote_at, lambda: self._quote(pid)))
        for change in cio_changes:
            at = self.unix(change.at)
            if change.channel == "email":
                steps.append((at, lambda sub=change.subscribed: self._email_consent(pid, sub)))
            elif change.channel == "sms" and not change.subscribed:
                steps.append((at, lambda: self.add_sms_optout(pid)))
        steps.extend(self._campaign_steps(person, pid, rng))
        return steps

    def _quote(self, pid: str) -> None:
        person = self._find(pid)
        if person is not None:
            self.segments[6].members.add(person.cio_id)
            self._track_event({"id": pid}, "enterprise_quote_requested", {}, None, "event")

    def _email_consent(self, pid: str, subscribed: bool) -> None:
        person = self._find(pid)
        if person is None:
            return
        if not subscribed:
            # The unsubscribe link of the person's latest message is where the opt-out happened.
            sent = [m for m in self.messages if m["customer_identifiers"]["cio_id"] == person.cio_id]
            if sent and "unsubscribed" not in sent[-1]["metrics"]:
                sent[-1]["metrics"]["unsubscribed"] = self.now()
        self.identify(pid, unsubscribed=not subscribed)

    def _campaign_steps(self, person: Person, pid: str, rng: random.Random) -> list[tuple[int, Callable[[], None]]]:
        end = self.unix(WORLD_END)
        sends: list[tuple[int, int, int]] = []  # (when, campaign, action)
        if person.signed_up_at:
            signup = self.unix(person.signed_up_at)
            sends += [(signup + 600, 1, 101), (signup + 2 * 86_400, 1, 102)]
            three_days = signup + 3 * 86_400
            if person.source_created_at is None or self.unix(person.source_created_at) > three_days:
                sends.append((three_days, 2, 201))
            five_days = signup + 5 * 86_400
            if person.customer_at is None or self.unix(person.customer_at) > five_days:
                sends.append((five_days, 3, 301))
        if person.quote_requested_at:
            sends.append((self.unix(person.quote_requested_at) + 3600, 4, 401))
        steps = []
        for when, campaign_id, action_id in sends:
            if when >= end:
                continue
            fate = rng.random(), rng.random(), rng.random(), rng.random()
            steps.append((when, lambda c=campaign_id, a=action_id, f=fate, w=when: self._send(pid, c, a, f, w, end)))
        return steps

    def _send(self, pid: str, campaign_id: int, action_id: int, fate: tuple[float, ...], when: int, end: int) -> None:
        person = self._find(pid)
        if person is None or person.unsubscribed or not person.email:
            return  # marketing messages skip unsubscribed people
        if any(person.email in rows for rows in self.esp_suppressions.values()):
            return
        bounce, open_, click, spam = fate
        metrics: Obj = {"sent": when}
        if bounce < 0.015:
            metrics["bounced"] = when + 30
            self.esp_suppressions["bounces"][person.email] = {
                "email": person.email,
                "created": when + 30,
                "reason": "550 5.1.1 The email account that you tried to reach does not exist",
                "status": "550",
            }
        else:
            metrics["delivered"] = when + 5
            if open_ < 0.45 and when + 3600 < end:
                metrics["opened"] = when + 3600
                if click < 0.2:
                    metrics["clicked"] = when + 3700
            if spam < 0.004:
                metrics["spammed"] = when + 4000
                self.esp_suppressions["spam_reports"][person.email] = {
                    "email": person.email,
                    "created": when + 4000,
                    "reason": "The recipient marked the message as spam",
                    "status": "550",
                }
        campaign = next(c for c in self.campaigns if c["id"] == campaign_id)
        self._new_message(person, campaign, action_id, metrics)

    def _seed_invalid_emails(self, rng: random.Random) -> None:
        # Test accounts typed by hand: the provider refuses some addresses outright.
        test_people = [p for p in self.people.values() if (p.email or "").startswith(("asdf@", "test@"))]
        for person in test_people[:3]:
            assert person.email is not None
            self.esp_suppressions["invalid_emails"][person.email] = {
                "email": person.email,
                "created": person.created + 60,
                "reason": "Invalid email address",
                "status": "550",
            }
        blocked = [p for p in self.people.values() if p.email and rng.random() < 0.005]
        for person in blocked:
            assert person.email is not None
            self.esp_suppressions["blocks"][person.email] = {
                "email": person.email,
                "created": person.created + 120,
                "reason": "554 5.7.1 Message rejected by the recipient's server policy",
                "status": "554",
            }


# -- helpers -------------------------------------------------------------------------------------


def _s(value: Any) -> str:
    """An attribute value as the App API renders it: a string."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True)
    return str(value)


def _truthy(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.strip().lower() == "true")


def _public(row: Obj) -> Obj:
    return {k: copy.deepcopy(v) for k, v in row.items() if not k.startswith("_")}


def _opt_int(request: Request, name: str) -> int | None:
    raw = request.arg(name)
    if raw in (None, ""):
        return None
    try:
        return int(raw)
    except ValueError:
        raise TrackError(400, f"{name} must be an integer, got {raw!r}") from None


def _page(request: Request, rows: list[Any], default_limit: int, max_limit: int) -> tuple[list[Any], str]:
    """One page of `rows` from the `start` token; the token for the next page ("" on the last)."""
    limit = _opt_int(request, "limit") or default_limit
    if not 1 <= limit <= max_limit:
        raise TrackError(400, f"limit must be between 1 and {max_limit}")
    offset = _decode_start(request.arg("start"))
    page = rows[offset : offset + limit]
    more = offset + limit < len(rows)
    return page, _encode_start(offset + limit) if more else ""


def _encode_start(offset: int) -> str:
    return base64.urlsafe_b64encode(f"o:{offset}".encode()).decode()


def _decode_start(token: str | None) -> int:
    if not token:
        return 0
    try:
        kind, _, value = base64.urlsafe_b64decode(token.encode()).decode().partition(":")
        if kind != "o":
            raise ValueError(token)
        return int(value)
    except (ValueError, UnicodeDecodeError):
        raise TrackError(400, f"invalid start token {token!r}") from None


_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def _ulid(unix: int, n: int) -> str:
    """A ULID-shaped id: 10 characters of milliseconds, 16 of sequence (sorts by time, then order)."""

    def encode(value: int, width: int) -> str:
        out = []
        for _ in range(width):
            value, digit = divmod(value, 32)
            out.append(_CROCKFORD[digit])
        return "".join(reversed(out))

    return encode(unix * 1000, 10) + encode(n, 16)
