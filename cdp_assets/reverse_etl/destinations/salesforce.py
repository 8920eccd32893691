"""Salesforce through simple-salesforce's REST client, with sObject Collections (at most 200 records a call).

- update_only and suppression: `PATCH /composite/sobjects` with each record's `Id` and the mapped
  fields; a record that does not exist fails on its own (INVALID_CROSS_REFERENCE_KEY): never created;
- upsert: `PATCH /composite/sobjects/{Object}/{ExternalIdField}`, the primary key sent as the external
  id (created when no record has it);
- mirror removes: the update of the mapped fields to null (Salesforce keeps the record; "clear fields").

Every call is `allOrNone: false`, so one bad record does not sink the other 199: the per-record results
come back in the order sent and are mapped to their rows (`CODE: message`); records that only lost a
row lock (`UNABLE_TO_LOCK_ROW`) are sent again, up to twice. A 403
`REQUEST_LIMIT_EXCEEDED` stops the run (the `SalesforceClient` policy raises `QuotaExhausted`); what
was accepted before is kept.

Timestamps arrive from the warehouse as `YYYY-MM-DD HH:MM:SS[.ffffff][+HH]` text (DuckDB's JSON of a
timestamp); they are sent in ISO 8601 (`...T...Z`), the form Salesforce's datetime fields take.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

import requests
from simple_salesforce.exceptions import SalesforceError

from cdp_assets.reverse_etl.destinations import (
    Message,
    OutgoingRow,
    RowOutcome,
    SendReport,
    mapped_values,
    unencodable,
)
from cdp_assets.reverse_etl.spec import SyncSpec
from cdp_assets.sources.policy import CallStats, QuotaExhausted, RetriesExhausted
from cdp_assets.sources.salesforce import SalesforceClient, SalesforceConfig

COLLECTION_LIMIT = 200
LOCK_RETRIES = 2  # UNABLE_TO_LOCK_ROW is a transient per-record failure (saas-apis.md §2.3)
_WAREHOUSE_TIMESTAMP = re.compile(r"^(\d{4}-\d{2}-\d{2}) (\d{2}:\d{2}:\d{2}(?:\.\d{1,6})?)([+-]\d{2}(?::?\d{2})?)?$")


def _salesforce_value(value: Any) -> Any:
    if isinstance(value, str):
        match = _WAREHOUSE_TIMESTAMP.match(value)
        if match:
            day, clock, zone = match.groups()
            if zone in (None, "+00", "+00:00", "+0000"):
                return f"{day}T{clock}Z"
            return f"{day}T{clock}{zone if ':' in zone or len(zone) == 5 else zone + ':00'}"
    return value


def _fields(spec: SyncSpec, payload: Mapping[str, Any] | None, keep_nulls: bool | None = None) -> dict[str, Any]:
    return {k: _salesforce_value(v) for k, v in mapped_values(spec, payload, keep_nulls).items()}


def render(
    spec: SyncSpec, op: str, pk: str, payload: Mapping[str, Any] | None, previous: Mapping[str, Any] | None
) -> Message:
    attributes = {"type": spec.object}
    if op == "remove":
        cleared = {target: None for _, target in spec.fields}
        return [{"call": "update", "record": {"attributes": attributes, "Id": pk, **cleared}}]
    if spec.mode == "upsert":
        record = {"attributes": attributes, **_fields(spec, payload), spec.destination_key: pk}
        return [{"call": "upsert", "key": spec.destination_key, "record": record}]
    return [{"call": "update", "record": {"attributes": attributes, "Id": pk, **_fields(spec, payload)}}]


class _Stop(Exception):
    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


class SalesforceDestination:
    def __init__(self, config: SalesforceConfig, batch_size: int = COLLECTION_LIMIT) -> None:
        if not 1 <= batch_size <= COLLECTION_LIMIT:
            raise ValueError(f"batch_size must be between 1 and {COLLECTION_LIMIT}, got {batch_size}")
        self.client = SalesforceClient(config)
        self.batch_size = batch_size

    @property
    def stats(self) -> CallStats:
        return self.client.stats

    def close(self) -> None:
        self.client.session.close()

    def send(self, rows: Sequence[OutgoingRow]) -> SendReport:
        report = SendReport()
        groups: dict[str, list[tuple[str, dict[str, Any]]]] = {}
        for row in rows:
            problem = unencodable(row.message)
            if problem is not None:
                # Failed here, before any request: it must not take the other records of its call down.
                report.outcomes[row.pk] = RowOutcome(False, problem, sent=False)
                continue
            for call in row.message:
                record = call["record"]
                path = "composite/sobjects"
                if call["call"] == "upsert":
                    path = f"composite/sobjects/{record['attributes']['type']}/{call['key']}"
                groups.setdefault(path, []).append((row.pk, record))
        try:
            for path, records in groups.items():
                for start in range(0, len(records), self.batch_size):
                    self._send_chunk(path, records[start : start + self.batch_size], report)
        except _Stop as stop:
            if stop.kind == "stopped":
                report.stopped = str(stop)
            else:
                report.failed = str(stop)
        return report

    def _send_chunk(self, path: str, chunk: list[tuple[str, dict[str, Any]]], report: SendReport) -> None:
        """One collection call; records that lost a row lock (UNABLE_TO_LOCK_ROW, transient) go again."""
        pending = chunk
        for attempt in range(1, LOCK_RETRIES + 2):
            results = self._call(path, pending, report)
            if results is None:
                return
            locked = []
            for (pk, record), result in zip(pending, results, strict=True):
                if result.get("success"):
                    report.outcomes[pk] = RowOutcome(True)
                    continue
                errors = result.get("errors") or []
                codes = {e.get("statusCode") for e in errors if isinstance(e, Mapping)}
                if codes == {"UNABLE_TO_LOCK_ROW"} and attempt <= LOCK_RETRIES:
                    locked.append((pk, record))
                else:
                    report.outcomes[pk] = RowOutcome(False, _errors(errors))
            if not locked:
                return
            self.client.stats.retries += 1
            self.client.policy.sleep(self.client.config.backoff_seconds * attempt)
            pending = locked

    def _call(
        self, path: str, chunk: list[tuple[str, dict[str, Any]]], report: SendReport
    ) -> list[dict[str, Any]] | None:
        """The per-record results of one PATCH, in the order sent; None when the whole call was refused."""
        # Strict JSON: Python's default would write `Infinity`/`NaN`, which no JSON parser takes, and
        # default=str would send a repr. `send` has set aside every record that cannot be encoded.
        body = json.dumps({"allOrNone": False, "records": [record for _, record in chunk]}, allow_nan=False)
        try:
            sf = self.client.connect()
            answer = self.client.policy.call(lambda: sf.restful(path, method="PATCH", data=body))
        except QuotaExhausted as exc:
            raise _Stop("stopped", str(exc)) from exc
        except RetriesExhausted as exc:
            raise _Stop("failed", str(exc)) from exc
        except requests.JSONDecodeError as exc:
            # A 2xx whose body is not JSON (cut short, or an HTML page from a proxy): the records may or
            # may not have been written, and nothing says which. They are rejected with why, so they go
            # again next run (an update is idempotent), and the run goes on with the next call.
            for pk, _ in chunk:
                report.outcomes[pk] = RowOutcome(False, f"Salesforce's answer is not JSON: {type(exc).__name__}: {exc}")
            return None
        except SalesforceError as exc:
            if exc.status == 400:
                # The request as a whole was refused (malformed): every row in it is rejected with why.
                for pk, _ in chunk:
                    report.outcomes[pk] = RowOutcome(False, f"HTTP 400: {_errors(exc.content)}")
                return None
            raise _Stop("failed", f"Salesforce answered {exc.status}: {_errors(exc.content)}") from exc
        results = answer if isinstance(answer, list) else []
        if len(results) != len(chunk):
            raise _Stop("failed", f"Salesforce answered {len(results)} results for {len(chunk)} records")
        # A result that is not an object says nothing about its record: a failure, with what it was.
        return [
            r
            if isinstance(r, dict)
            else {"success": False, "errors": [{"statusCode": "UNREADABLE_RESULT", "message": str(r)[:200]}]}
            for r in results
        ]


def _errors(errors: Any) -> str:
    if isinstance(errors, list):
        parts = []
        for error in errors:
            if isinstance(error, Mapping):
                code = error.get("statusCode") or error.get("errorCode") or "ERROR"
                parts.append(f"{code}: {error.get('message', '')}".strip())
        if parts:
            return "; ".join(parts)
    return str(errors)[:500]
