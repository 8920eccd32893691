"""The two guards a run passes before it may call a destination.

Consent (reference §4.3 rule 8, fail closed): a marketing sync looks up the profile of every row it is
about to add or change in `consent.consent_status` (one row per profile and channel, with `status` and
`eligible`) and refuses every row whose profile is not eligible on the sync's channel: opted out,
suppressed, erased, unknown on a channel that needs an opt-in, or with no consent row at all. It also
refuses a row whose email address is not eligible in `consent.consent_contact_points` (consent per
address: an opt-out on it holds whatever another address of the person says). The model
is supposed to have filtered them already; this is the check on the exact payload. Removes are never
refused: taking someone out of an audience is what an opt-out asks for.

Large change: a run that would change or remove more than `max_change_share` of the rows the
destination holds (per the snapshot) stops before any call, until it is approved. Only rows whose sent
values really differ count (the runner compares what would be sent, nulls left out unless send_nulls):
re-sending unchanged values on a full resync changes nothing in the destination. (A newly mapped column
that is still all null is not even planned as a change: the plan hashes what is sent, see `diff`.)
"""

from __future__ import annotations

from dataclasses import dataclass

from cdp_assets.event_stream.naming import quote
from cdp_assets.reverse_etl.spec import SyncSpec
from cdp_assets.warehouse import Connection

CONSENT_RELATION = "consent.consent_status"
ADDRESS_CONSENT_RELATION = "consent.consent_contact_points"


class ConsentUnavailable(RuntimeError):
    """A marketing sync cannot read consent: it refuses to run rather than send unchecked."""


def _address_column(spec: SyncSpec) -> str | None:
    """The model column holding the email address a row sends, if it sends one."""
    if spec.email_column:
        return spec.email_column
    return next((column for column, dest in spec.fields if dest == "email"), None)


def consent_refusals(conn: Connection, spec: SyncSpec, plan_table: str) -> dict[str, str]:
    """pk -> reason for every add or change of the plan whose profile, or whose email address, may not get
    marketing on the sync's channel."""
    if not spec.marketing:
        return {}
    assert spec.profile_column is not None and spec.consent_channel is not None
    relation = ".".join(quote(part) for part in spec.model.split("."))
    address = _address_column(spec)
    # Consent is kept per address too (reference §4.3 rule 1): an opt-out in effect on the address a row
    # sends refuses it, whatever its profile's status says (an opt-in on another address of the person).
    address_sql = f"CAST(m.{quote(address)} AS VARCHAR)" if address else "NULL"
    address_join = (
        f"LEFT JOIN {ADDRESS_CONSENT_RELATION} a ON a.email = lower(trim({address_sql})) AND a.channel = $channel"
        if address
        else "LEFT JOIN (SELECT NULL AS status, NULL::BOOLEAN AS eligible) a ON false"
    )
    sql = f"""
        SELECT p.pk, CAST(m.{quote(spec.profile_column)} AS VARCHAR) AS profile_id, c.status, c.eligible,
               {address_sql} AS address, a.status AS address_status, a.eligible AS address_eligible
        FROM {quote(plan_table)} p
        JOIN {relation} m ON CAST(m.{quote(spec.primary_key)} AS VARCHAR) = p.pk
        LEFT JOIN {CONSENT_RELATION} c
          ON c.profile_id = CAST(m.{quote(spec.profile_column)} AS VARCHAR) AND c.channel = $channel
        {address_join}
        WHERE p.op IN ('add', 'change') AND (c.eligible IS DISTINCT FROM true OR a.eligible = false)
    """
    try:
        rows = conn.execute(sql, {"channel": spec.consent_channel}).fetchall()
    except Exception as exc:  # a missing consent model must stop a marketing sync, with why
        raise ConsentUnavailable(
            f"marketing sync {spec.name!r} cannot check consent in {CONSENT_RELATION} and "
            f"{ADDRESS_CONSENT_RELATION}: {exc}. Build the consent models (dbt) before running it."
        ) from exc
    refusals = {}
    channel = spec.consent_channel
    for pk, profile_id, status, eligible, email, address_status, _address_eligible in rows:
        if profile_id is None:
            refusals[pk] = f"no profile ({spec.profile_column} is null): consent unknown"
        elif status is None:
            refusals[pk] = f"profile {profile_id} has no consent status on {channel}: not eligible"
        elif eligible is not True:
            refusals[pk] = f"profile {profile_id} is {status} on {channel}: not eligible"
        else:
            refusals[pk] = f"address {email} is {address_status} on {channel}: not eligible"
    return refusals


@dataclass(frozen=True)
class ChangeCheck:
    touched: int  # rows the run would really change or remove in the destination
    destination_rows: int
    threshold: float

    @property
    def share(self) -> float:
        return self.touched / self.destination_rows if self.destination_rows else 0.0

    @property
    def too_large(self) -> bool:
        # An empty destination (first run) has nothing a mistake could wipe out.
        return self.destination_rows > 0 and self.share > self.threshold

    def describe(self) -> str:
        return (
            f"would change or remove {self.touched} of the {self.destination_rows} rows the destination holds "
            f"({self.share:.1%}; max_change_share {self.threshold:.0%})"
        )
