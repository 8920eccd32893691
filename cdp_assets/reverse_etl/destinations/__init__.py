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


@dataclass
class SendReport:
    outcomes: dict[str, RowOutcome] = field(default_factory=dict)
    stopped: str | None = None  # a quota ran out: why (the run ends as quota_stopped)
    failed: str | None = None  # the API kept failing (retries exhausted, auth): why

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
    """The calls the destination needs for one planned row (payload: the model's diff columns)."""
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
