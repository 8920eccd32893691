"""Customer.io through the real Track API client (`customerio`), paced at about 80 requests/s.

What each kind of row becomes (`render`):

- upsert (and a mirror sync's adds and changes): a v2 batch `identify` with the mapped attributes; up
  to 1,000 operations and under 500 KB a request; a 207 lists the failed operations by `batch_index`,
  mapped back to their rows;
- update_only: `PUT /api/v1/customers/{id}` with `_update: true`, which Customer.io applies only to a
  person that exists (the v2 batch has no update-only identify), one request a row;
- suppression: `unsubscribe` rows the same update-only identify (`unsubscribed: true`, never creating
  anyone); `suppress` rows `POST /api/v1/customers/{id}/suppress` (erasure: delete and block);
- a mirror sync's removes: an update-only identify that clears the mapped attributes;
- audiences, attribute membership: adds and changes a batch `identify` setting the attribute to true
  (with the email, so a new person is reachable); removes an update-only identify setting it to false,
  so leaving an audience never creates anyone;
- audiences, manual segment: `POST /api/v1/segments/{id}/add_customers|remove_customers`, 1,000 ids a
  call; an add first identifies the member (batch, with the email) because add_customers ignores an
  id Customer.io does not know yet, without an error. Customer.io processes the identify later, though,
  so the add can still arrive first: the adds are then checked against the segment's membership (App
  API), and the members it lacks are added again after a wait (doubling each time), up to
  `segment_checks` reads; a member still missing is rejected with why (not committed: the row is
  retried next run). Without an App API key the check cannot be made: the adds are taken on
  Customer.io's 200, and the run's message says so.

A change that moved a member to another identifier first takes the old one out. Calls run removals
first, then additions, so such a move never leaves the person out.

The library's own urllib3 retries are switched off (`Retry(0)`): every retry goes through our
`ApiPolicy`, which counts it and honours Retry-After on 429. The client raises an exception without the
response on any non-2xx, so a response hook keeps the last one for the policy and the error message.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import requests
from customerio import CustomerIOException
from urllib3.util.retry import Retry as Urllib3Retry

from cdp_assets.reverse_etl.destinations import (
    Message,
    OutgoingRow,
    RowOutcome,
    SendReport,
    mapped_values,
    unencodable,
)
from cdp_assets.reverse_etl.spec import SyncSpec
from cdp_assets.sources.customerio import AppClient, CustomerIOConfig, track_client
from cdp_assets.sources.policy import (
    ApiPolicy,
    CallStats,
    Decision,
    QuotaExhausted,
    RetriesExhausted,
    Retry,
    RetryAfterTooLong,
    retry_after,
)

TRACK_RATE_PER_SECOND = 80.0  # Track API allows about 100/s (saas-apis.md §8); stay below it
MAX_BATCH_OPERATIONS = 1000
MAX_BATCH_BYTES = 450 * 1024  # the API's limit is 500 KB; leave room for the envelope
MAX_SEGMENT_IDS = 1000
# After a manual-segment add: how often the segment's membership is read before a member it still lacks
# is rejected, and the first wait between reads (doubled each time; 2 + 4 + 8 s at most by default).
SEGMENT_CHECKS = 4
SEGMENT_SETTLE_SECONDS = 2.0
MEMBERSHIP_PAGE = 30_000  # the App API's largest page of segment membership
# Calls that take someone out run before calls that put someone in (a moved member is never left out).
CALL_ORDER = ("segment_remove", "update", "suppress", "batch", "segment_add")


def _identifier_path(key: str, value: str) -> str:
    """A v1 path identifier: an id or email as is, a cio_id as `cio_<id>`."""
    return f"cio_{value}" if key == "cio_id" else value


def render(
    spec: SyncSpec, op: str, pk: str, payload: Mapping[str, Any] | None, previous: Mapping[str, Any] | None
) -> Message:
    if spec.kind == "audience":
        return _render_audience(spec, op, payload, previous)
    key = spec.destination_key
    if spec.mode == "suppression":
        action = (payload or {}).get(spec.action_column or "")
        if action == "suppress":
            return [{"call": "suppress", "id": _identifier_path(key, pk)}]
        if action != "unsubscribe":
            # The runner has already recorded such rows as invalid; a render cannot guess.
            raise ValueError(f"suppression row {pk!r}: action must be unsubscribe or suppress, got {action!r}")
        return [{"call": "update", "id": _identifier_path(key, pk), "attributes": mapped_values(spec, payload)}]
    if op == "remove":
        cleared = {target: None for _, target in spec.fields}
        return [{"call": "update", "id": _identifier_path(key, pk), "attributes": cleared}]
    attributes = mapped_values(spec, payload)
    if spec.mode == "update_only":
        return [{"call": "update", "id": _identifier_path(key, pk), "attributes": attributes}]
    operation = {"type": "person", "action": "identify", "identifiers": {key: pk}, "attributes": attributes}
    return [{"call": "batch", "operation": operation}]


def _render_audience(
    spec: SyncSpec, op: str, payload: Mapping[str, Any] | None, previous: Mapping[str, Any] | None
) -> Message:
    membership = spec.membership
    assert membership is not None and spec.identifier is not None
    new_id = (payload or {}).get(spec.identifier)
    old_id = (previous or {}).get(spec.identifier)
    calls: Message = []
    if op in ("remove", "change") and old_id is not None and (op == "remove" or old_id != new_id):
        if membership.type == "attribute":
            calls.append({"call": "update", "id": str(old_id), "attributes": {membership.attribute: False}})
        else:
            calls.append({"call": "segment_remove", "segment_id": membership.segment_id, "id": str(old_id)})
    if op in ("add", "change"):
        if new_id is None:
            raise ValueError(f"audience {spec.name}: a member without {spec.identifier}")
        attributes: dict[str, Any] = {membership.attribute or "": True} if membership.type == "attribute" else {}
        email = (payload or {}).get(spec.email_column or "")
        if email is not None:
            attributes["email"] = email
        operation = {
            "type": "person",
            "action": "identify",
            "identifiers": {"id": str(new_id)},
            "attributes": attributes,
        }
        calls.append({"call": "batch", "operation": operation})
        if membership.type == "manual_segment":
            # add_customers silently ignores an id Customer.io does not know (200, nothing added), so
            # the member is identified first (the batch runs before segment adds, see CALL_ORDER), as
            # the attribute membership does: otherwise the add would be recorded accepted, committed,
            # and never sent again.
            calls.append({"call": "segment_add", "segment_id": membership.segment_id, "id": str(new_id)})
    return calls


class _Stop(Exception):
    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind  # stopped | failed


class CustomerIODestination:
    def __init__(
        self,
        config: CustomerIOConfig,
        segment_checks: int = SEGMENT_CHECKS,
        segment_settle_seconds: float = SEGMENT_SETTLE_SECONDS,
    ) -> None:
        if segment_checks < 1:
            raise ValueError(f"segment_checks must be at least 1, got {segment_checks}")
        self.config = config
        self.segment_checks = segment_checks
        self.segment_settle_seconds = segment_settle_seconds
        self._app: AppClient | None = None  # the App API, opened on the first membership check
        self._notes: list[str] = []
        self.client = track_client(config)
        # Our policy is the only retry layer: it counts retries and honours Retry-After.
        self.client.http.get_adapter("https://track.customer.io").max_retries = Urllib3Retry(0, read=False)
        self._last: requests.Response | None = None
        self.client.http.hooks["response"].append(self._remember)
        self.policy = ApiPolicy(
            name="customerio_track",
            classify=self._classify,
            rate_per_second=TRACK_RATE_PER_SECOND,
            max_attempts=config.max_attempts,
        )

    @property
    def stats(self) -> CallStats:
        return self.policy.stats

    def close(self) -> None:
        self.client.close()
        if self._app is not None:
            self._app.session.close()

    def _remember(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        self._last = response

    def _classify(self, exc: BaseException) -> Decision:
        response = self._last
        if isinstance(exc, CustomerIOException) and response is not None:
            if response.status_code == 429 or response.status_code >= 500:
                return Retry(retry_after(response.headers))
            return None
        if isinstance(exc.__cause__, requests.ConnectionError | requests.Timeout):
            return Retry()
        return None

    def _call(self, fn: Callable[[], requests.Response]) -> requests.Response:
        def attempt() -> requests.Response:
            self._last = None
            return fn()

        try:
            response = self.policy.call(attempt)
        except CustomerIOException as exc:
            if self._last is not None and self._last.status_code in (401, 403):
                raise _Stop("failed", f"Customer.io refused the Track API credentials: {self._error(exc)}") from exc
            raise
        except QuotaExhausted as exc:
            raise _Stop("stopped", str(exc)) from exc
        except RetryAfterTooLong as exc:
            # Customer.io asked to come back later than we wait: like a quota, the rest goes next run.
            raise _Stop("stopped", f"Customer.io rate-limited the Track API: {exc}") from exc
        except RetriesExhausted as exc:
            # The client's own message repeats the request body (people's data): keep it out of the ledger.
            cause = exc.__cause__ or exc
            detail = f"still failing after {self.policy.max_attempts} attempts: {self._error(cause)}"
            if self._last is not None and self._last.status_code == 429:
                # Customer.io has no daily quota; a rate limit that does not lift is the same for a run.
                raise _Stop("stopped", f"Customer.io kept rate-limiting (429), {detail}") from exc
            raise _Stop("failed", f"Customer.io {detail}") from exc
        return response

    def _reached(self, exc: BaseException) -> bool:
        """Whether the failed call's request left this process: it got a response, or the connection
        failed or timed out (the server may have seen it). Anything else (the client could not build
        the request) failed before any request, so its rows were not sent."""
        if self._last is not None:
            return True
        cause = exc.__cause__ or exc
        return isinstance(cause, requests.ConnectionError | requests.Timeout)

    def _error(self, exc: BaseException) -> str:
        response = self._last
        if response is not None:
            return f"HTTP {response.status_code}: {response.text[:500]}"
        cause = exc.__cause__ or exc  # a connection error: the client wraps it with the request body
        return f"{type(cause).__name__}: {cause}"[:500]

    # -- sending ---------------------------------------------------------------------------------

    def send(self, rows: Sequence[OutgoingRow]) -> SendReport:
        report = SendReport()
        errors: dict[str, list[str]] = {}
        done: dict[str, int] = {}  # pk -> calls that succeeded
        reached: set[str] = set()  # rows at least one request carried (answered or not)
        calls_by_kind: dict[str, list[tuple[str, dict[str, Any]]]] = {kind: [] for kind in CALL_ORDER}
        for row in rows:
            problem = unencodable(row.message)
            if problem is not None:
                # The client would raise before any request, failing every row batched with it.
                report.outcomes[row.pk] = RowOutcome(False, problem, sent=False)
                continue
            for call in row.message:
                calls_by_kind[call["call"]].append((row.pk, call))

        def failed(pk: str, message: str, was_reached: bool) -> None:
            errors.setdefault(pk, []).append(message)
            if was_reached:
                reached.add(pk)

        def succeeded(pk: str) -> None:
            done[pk] = done.get(pk, 0) + 1
            reached.add(pk)

        try:
            for kind in CALL_ORDER:
                calls = calls_by_kind[kind]
                if not calls:
                    continue
                if kind == "batch":
                    self._send_batches(calls, succeeded, failed)
                elif kind in ("segment_add", "segment_remove"):
                    self._send_segments(kind, calls, succeeded, failed)
                else:
                    self._send_single(kind, calls, succeeded, failed)
        except _Stop as stop:
            if stop.kind == "stopped":
                report.stopped = str(stop)
            else:
                report.failed = str(stop)
        report.notes, self._notes = self._notes, []
        for row in rows:
            if row.pk in report.outcomes:
                continue
            if row.pk in errors:
                report.outcomes[row.pk] = RowOutcome(False, "; ".join(errors[row.pk]), sent=row.pk in reached)
            elif done.get(row.pk, 0) == len(row.message):
                report.outcomes[row.pk] = RowOutcome(True)
        return report

    def _send_single(
        self,
        kind: str,
        calls: list[tuple[str, dict[str, Any]]],
        succeeded: Callable[[str], None],
        failed: Callable[[str, str, bool], None],
    ) -> None:
        for pk, call in calls:
            if kind == "suppress":
                fn = lambda call=call: self.client.suppress(call["id"])  # noqa: E731
            else:
                attributes = {**call["attributes"], "_update": True}
                fn = lambda call=call, attributes=attributes: self.client.identify(call["id"], **attributes)  # noqa: E731
            try:
                self._call(fn)
            except _Stop:
                raise
            except CustomerIOException as exc:
                failed(pk, self._error(exc), self._reached(exc))
            else:
                succeeded(pk)

    def _send_batches(
        self,
        calls: list[tuple[str, dict[str, Any]]],
        succeeded: Callable[[str], None],
        failed: Callable[[str, str, bool], None],
    ) -> None:
        for chunk in _chunks_by_size(calls):
            operations = [call["operation"] for _, call in chunk]
            try:
                response = self._call(lambda operations=operations: self.client.batch(operations))
            except _Stop:
                raise
            except CustomerIOException as exc:
                message, was_reached = self._error(exc), self._reached(exc)
                for pk, _ in chunk:
                    failed(pk, message, was_reached)
                continue
            item_errors = _batch_errors(response, len(chunk)) if response.status_code == 207 else {}
            if item_errors is None:
                # A 207 says some operations failed; a body that does not say which (not JSON, cut
                # short, another shape) leaves every one in doubt: all rejected, so all go again next
                # run (an identify is idempotent) rather than some being committed unsent.
                message = f"HTTP 207 without a readable list of the failed operations: {response.text[:300]}"
                for pk, _ in chunk:
                    failed(pk, message, True)
                continue
            for index, (pk, _) in enumerate(chunk):
                if index in item_errors:
                    failed(pk, item_errors[index], True)
                else:
                    succeeded(pk)

    def _send_segments(
        self,
        kind: str,
        calls: list[tuple[str, dict[str, Any]]],
        succeeded: Callable[[str], None],
        failed: Callable[[str, str, bool], None],
    ) -> None:
        by_segment: dict[int, list[tuple[str, str]]] = {}
        for pk, call in calls:
            by_segment.setdefault(int(call["segment_id"]), []).append((pk, str(call["id"])))
        action = "add_customers" if kind == "segment_add" else "remove_customers"
        added: dict[int, list[tuple[str, str]]] = {}
        for segment_id, members in by_segment.items():
            if action == "remove_customers":
                # An id that is not in the segment (or that nobody has) is no member: nothing to check.
                self._post_members(action, segment_id, members, succeeded, failed)
            else:
                added[segment_id] = self._post_members(action, segment_id, members, None, failed)
        if added:
            self._confirm_adds(added, succeeded, failed)

    def _post_members(
        self,
        action: str,
        segment_id: int,
        members: list[tuple[str, str]],
        succeeded: Callable[[str], None] | None,
        failed: Callable[[str, str, bool], None],
    ) -> list[tuple[str, str]]:
        """add_customers or remove_customers of (pk, id) members, 1,000 ids a call; the members of the
        calls Customer.io answered 2xx (passed to `succeeded` when given)."""
        url = f"{self.client.base_url}/segments/{segment_id}/{action}"
        answered: list[tuple[str, str]] = []
        for start in range(0, len(members), MAX_SEGMENT_IDS):
            chunk = members[start : start + MAX_SEGMENT_IDS]
            body = {"ids": list(dict.fromkeys(member_id for _, member_id in chunk))}
            try:
                self._call(lambda body=body, url=url: self.client.send_request("POST", url, body))
            except _Stop:
                raise
            except CustomerIOException as exc:
                message, was_reached = self._error(exc), self._reached(exc)
                for pk, _ in chunk:
                    failed(pk, message, was_reached)
            else:
                answered += chunk
                if succeeded is not None:
                    for pk, _ in chunk:
                        succeeded(pk)
        return answered

    def _confirm_adds(
        self,
        added: dict[int, list[tuple[str, str]]],
        succeeded: Callable[[str], None],
        failed: Callable[[str, str, bool], None],
    ) -> None:
        """Count an add as done only once the segment has the member. add_customers answers 200 and
        ignores an id Customer.io does not know, and the identify sent before it may not have been
        processed yet: the members the segment lacks are added again after a wait, and those it still
        lacks after `segment_checks` reads are rejected (the row is retried next run)."""
        if not self.config.app_api_key:
            for members in added.values():
                for pk, _ in members:
                    succeeded(pk)
            count = sum(len(members) for members in added.values())
            self._notes.append(
                f"{count} manual-segment add(s) not checked: without an App API key (CUSTOMERIO_APP_API_KEY) "
                "the segment's membership cannot be read, so they are taken on Customer.io's 200 (it ignores "
                "an id it does not know yet)"
            )
            return
        waiting = {segment_id: _by_id(members) for segment_id, members in added.items()}
        delay = self.segment_settle_seconds
        waited = 0.0
        for check in range(1, self.segment_checks + 1):
            if check > 1:
                self.policy.sleep(delay)
                self.policy.stats.waited_seconds += delay
                waited += delay
                delay *= 2
            for segment_id in list(waiting):
                try:
                    members = self._segment_ids(segment_id)
                except Exception as exc:  # whatever the App API did (HTTP error, refused key, not JSON): say it
                    message = (
                        f"add_customers answered 200, but manual segment {segment_id}'s membership could not be "
                        f"read to check it: {type(exc).__name__}: {str(exc)[:300]}; the row is sent again next run"
                    )
                    for pks in waiting.pop(segment_id).values():
                        for pk in pks:
                            failed(pk, message, True)
                    continue
                for member_id in [m for m in waiting[segment_id] if m in members]:
                    for pk in waiting[segment_id].pop(member_id):
                        succeeded(pk)
                if not waiting[segment_id]:
                    del waiting[segment_id]
            if not waiting or check == self.segment_checks:
                break
            # Customer.io may have processed the identify by now: the add again (it is idempotent).
            for segment_id, ids in list(waiting.items()):
                members_left = [(pk, member_id) for member_id, pks in ids.items() for pk in pks]
                answered = {
                    member_id
                    for _, member_id in self._post_members("add_customers", segment_id, members_left, None, failed)
                }
                waiting[segment_id] = {m: pks for m, pks in ids.items() if m in answered}
        for segment_id, ids in waiting.items():
            for member_id, pks in ids.items():
                message = (
                    f"Customer.io did not add {member_id!r} to manual segment {segment_id}: still not a member "
                    f"after {self.segment_checks} checks over {waited:g} s (add_customers ignores an id nobody "
                    "has; the identify sent before it may not be processed yet, or the person is suppressed); "
                    "the row is sent again next run"
                )
                for pk in pks:
                    failed(pk, message, True)

    def _segment_ids(self, segment_id: int) -> set[str]:
        """The ids of a segment's members, from the App API (its pages of up to 30,000)."""
        if self._app is None:
            # Its calls count in this destination's stats (api_calls, retries, waits).
            self._app = AppClient(self.config, self.policy.stats)
        found: set[str] = set()
        for page in self._app.pages(f"segments/{segment_id}/membership", "ids", {"limit": MEMBERSHIP_PAGE}):
            found.update(str(member_id) for member_id in page if member_id not in (None, ""))
        return found


def _by_id(members: list[tuple[str, str]]) -> dict[str, list[str]]:
    """id -> the pks of the rows that add it (two rows can address one person)."""
    grouped: dict[str, list[str]] = {}
    for pk, member_id in members:
        grouped.setdefault(member_id, []).append(pk)
    return grouped


def _batch_errors(response: requests.Response, operations: int) -> dict[int, str] | None:
    """batch_index -> why, from a 207's `{"errors": [{batch_index, reason, field, message}]}`; None when
    the body does not name every failed operation's index."""
    try:
        body = response.json()
    except ValueError:
        return None
    errors = body.get("errors") if isinstance(body, dict) else None
    if not isinstance(errors, list):
        return None
    found: dict[int, str] = {}
    for error in errors:
        index = error.get("batch_index") if isinstance(error, dict) else None
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < operations:
            return None
        found[index] = f"{error.get('reason', 'invalid')} {error.get('field', '')}: {error.get('message', '')}".strip()
    return found


def _chunks_by_size(calls: list[tuple[str, dict[str, Any]]]) -> list[list[tuple[str, dict[str, Any]]]]:
    """Batches of at most 1,000 operations and MAX_BATCH_BYTES of JSON."""
    chunks: list[list[tuple[str, dict[str, Any]]]] = []
    current: list[tuple[str, dict[str, Any]]] = []
    size = 0
    for item in calls:
        item_size = len(json.dumps(item[1]["operation"], default=str)) + 1
        if current and (len(current) >= MAX_BATCH_OPERATIONS or size + item_size > MAX_BATCH_BYTES):
            chunks.append(current)
            current, size = [], 0
        current.append(item)
        size += item_size
    if current:
        chunks.append(current)
    return chunks
