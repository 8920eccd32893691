"""Destinations: where a sync's rows go, through the real client libraries.

The runner hands a destination the rows it must send (`OutgoingRow`: op, primary key, the exact message
for the destination); the destination sends them in as few calls as the API allows, paced and retried
by an `ApiPolicy`, and answers per row (`SendReport`): accepted, or rejected with the destination's
error. A quota that runs out stops it cleanly (`stopped`), an API that keeps failing stops it too
(`failed`); either way the rows it did not reach are simply not in the report, and what was accepted
before stays accepted.

What a row's message is (`render`) is a pure function of the spec and the row, so a dry run can show
exactly what a real run would send without opening a destination.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from cdp_assets.sources.policy import CallStats

if TYPE_CHECKING:
    from cdp_assets.reverse_etl.spec import SyncSpec
    from cdp_assets.sources.customerio import CustomerIOConfig
    from cdp_assets.sources.salesforce import SalesforceConfig

Message = list[dict[str, Any]]  # the calls one row needs, each a JSON-able dict


@dataclass(frozen=True)
class OutgoingRow:
    pk: str
    op: str  # add | change | remove
    message: Message


@dataclass(frozen=True)
class RowOutcome:
    accepted: bool
    error: str | None = None
    # False: the row failed on our side before any request carried it (say, a message the client
    # cannot encode). It is not counted as sent, and is recorded as not_sent with the error.
    sent: bool = True


@dataclass
class SendReport:
    outcomes: dict[str, RowOutcome] = field(default_factory=dict)
    stopped: str | None = None  # a quota ran out: why (the run ends as quota_stopped)
    failed: str | None = None  # the API kept failing (retries exhausted, auth): why
    notes: list[str] = field(default_factory=list)  # what the run's message should also say

    @property
    def interrupted(self) -> bool:
        return self.stopped is not None or self.failed is not None


class Destination(Protocol):
    """One open connection to a destination for one sync run."""

    stats: CallStats

    def send(self, rows: Sequence[OutgoingRow]) -> SendReport: ...

    def close(self) -> None: ...


class DestinationConfigError(ValueError):
    """The destination a spec names has no configuration."""


def render(
    spec: SyncSpec, op: str, pk: str, payload: Mapping[str, Any] | None, previous: Mapping[str, Any] | None
) -> Message:
    """The calls the destination needs for one planned row (payload: the model's diff columns).

    Raises ValueError for a row that must not be sent (the runner records it as invalid with why)."""
    if op != "remove":
        # JSON has no inf or NaN: the Customer.io client fails the whole batch on inf and turns NaN
        # into null (clearing the attribute even with send_nulls false), and Salesforce would get
        # `Infinity`. A removal sends the previous (accepted, so finite) values, never these.
        bad = non_finite_values(payload)
        if bad:
            found = ", ".join(f"column {column} is {value}" for column, value in bad)
            raise ValueError(f"{found}, not a finite number: JSON cannot carry it, so the row is not sent")
    if spec.destination == "customerio":
        from cdp_assets.reverse_etl.destinations import customerio

        return customerio.render(spec, op, pk, payload, previous)
    if spec.destination == "salesforce":
        from cdp_assets.reverse_etl.destinations import salesforce

        return salesforce.render(spec, op, pk, payload, previous)
    raise DestinationConfigError(f"unknown destination {spec.destination!r}")


def open_destination(
    spec: SyncSpec, customerio: CustomerIOConfig | None, salesforce: SalesforceConfig | None
) -> Destination:
    if spec.destination == "customerio":
        if customerio is None:
            raise DestinationConfigError(
                f"sync {spec.name!r} writes to Customer.io, but no Customer.io config was given"
            )
        from cdp_assets.reverse_etl.destinations.customerio import CustomerIODestination

        return CustomerIODestination(customerio)
    if spec.destination == "salesforce":
        if salesforce is None:
            raise DestinationConfigError(f"sync {spec.name!r} writes to Salesforce, but no Salesforce config was given")
        from cdp_assets.reverse_etl.destinations.salesforce import SalesforceDestination

        return SalesforceDestination(salesforce)
    raise DestinationConfigError(f"unknown destination {spec.destination!r}")


def mapped_values(spec: SyncSpec, payload: Mapping[str, Any] | None, keep_nulls: bool | None = None) -> dict[str, Any]:
    """The payload's mapped columns under their destination names; nulls dropped unless send_nulls."""
    keep = spec.send_nulls if keep_nulls is None else keep_nulls
    values: dict[str, Any] = {}
    for column, target in spec.fields:
        value = (payload or {}).get(column)
        if value is None and not keep:
            continue
        values[target] = value
    return values


def non_finite_values(payload: Mapping[str, Any] | None) -> list[tuple[str, float]]:
    """(column, value) of every inf, -inf or NaN in a payload, nested lists and objects included
    (`scores[1]`, `address.lat`), so the invalid row's reason names where the model went wrong."""
    found: list[tuple[str, float]] = []

    def walk(path: str, value: Any) -> None:
        if isinstance(value, float) and not math.isfinite(value):
            found.append((path, value))
        elif isinstance(value, Mapping):
            for key, item in value.items():
                walk(f"{path}.{key}", item)
        elif isinstance(value, list | tuple):
            for index, item in enumerate(value):
                walk(f"{path}[{index}]", item)

    for column, value in (payload or {}).items():
        walk(str(column), value)
    return found


def unencodable(message: Message) -> str | None:
    """Why a message cannot go out as strict JSON (None when it can). Destinations check each row
    before batching it, so one bad row fails alone, locally, instead of sinking its whole batch."""
    try:
        json.dumps(message, allow_nan=False)
    except (TypeError, ValueError) as exc:
        return f"the message cannot be encoded as JSON, so it was not sent: {exc}"
    return None
