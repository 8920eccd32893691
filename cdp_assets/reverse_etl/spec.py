"""Sync specs: what analytics engineers declare in dbt `meta`, validated into one frozen `SyncSpec`.

Two kinds, both read from the dbt manifest:

- `meta.sync` on a model under `models/sync/` (format at the top of `models/sync/_sync.yml`): the
  asset is named after the model without its `sync_` prefix (`sync_customerio_people` ->
  `customerio_people`);
- `meta.audience` on a model under `models/audiences/` (format in `models/audiences/_audiences.yml`):
  a mirror of membership into Customer.io (a boolean attribute or a manual segment), always marketing,
  consent enforced on the audience's channel; the asset keeps the model's name.

Every mistake is reported with the model and the key it is about, so the author can fix the YAML
without reading Python. Nothing here touches the warehouse or a destination.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cdp_assets.event_stream.naming import quote

DESTINATION_OBJECTS = {"customerio": ("person",), "salesforce": ("Lead", "Contact", "Account")}
MODES = ("upsert", "update_only", "mirror", "suppression")
PURPOSES = ("marketing", "operational")
SUPPRESSION_ACTIONS = ("unsubscribe", "suppress")
MEMBERSHIP_TYPES = ("attribute", "manual_segment")
DEFAULT_MAX_CHANGE_SHARE = 0.2

_SYNC_KEYS = {
    "destination",
    "object",
    "mode",
    "primary_key",
    "destination_key",
    "purpose",
    "consent_channel",
    "profile_column",
    "fields",
    "send_nulls",
    "action_column",
    "schedule",
    "max_change_share",
}
_AUDIENCE_KEYS = {
    "description",
    "channel",
    "destination",
    "membership",
    "primary_key",
    "identifier",
    "schedule",
    "columns",
    "max_change_share",
}


class SyncSpecError(ValueError):
    """A sync or audience spec that cannot be run; the message names the model and the key."""


@dataclass(frozen=True)
class Membership:
    """How audience membership shows in Customer.io."""

    type: str  # attribute | manual_segment
    attribute: str | None = None
    segment_id: int | None = None


@dataclass(frozen=True)
class SyncSpec:
    name: str  # asset name: model name without `sync_`; audiences keep their model name
    model: str  # the relation "schema.table" dbt builds
    model_name: str
    kind: str  # sync | audience
    destination: str
    object: str
    mode: str
    primary_key: str
    purpose: str
    consent_channel: str | None
    schedule: str
    description: str
    max_change_share: float = DEFAULT_MAX_CHANGE_SHARE
    destination_key: str = "id"  # what the primary key is in the destination (Customer.io id, Salesforce Id)
    profile_column: str | None = None  # the consent guard's key; audiences: the primary key
    fields: tuple[tuple[str, str], ...] = ()  # (model column, destination field), in the YAML's order
    send_nulls: bool = False
    action_column: str | None = None  # suppression: unsubscribe | suppress per row
    membership: Membership | None = None  # audiences
    identifier: str | None = None  # audiences: the column the destination addresses the person by
    email_column: str | None = None  # audiences: sent with an add so a new person is reachable
    extra: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def field_map(self) -> dict[str, str]:
        return dict(self.fields)

    @property
    def sends_removes(self) -> bool:
        return self.mode == "mirror"

    @property
    def marketing(self) -> bool:
        return self.purpose == "marketing"

    @property
    def diff_columns(self) -> list[str]:
        """The model columns whose change makes a row worth sending (the diff hashes only these)."""
        if self.kind == "audience":
            assert self.identifier is not None
            return sorted({self.identifier, *([self.email_column] if self.email_column else [])})
        columns = [column for column, _ in self.fields]
        if self.action_column and self.action_column not in columns:
            columns.append(self.action_column)
        return columns


def _fail(model: str, key: str, problem: str) -> SyncSpecError:
    return SyncSpecError(f"model {model!r}: {key}: {problem}")


def _identifier(model: str, key: str, value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise _fail(model, key, f"must be a column name, got {value!r}")
    try:
        quote(value)
    except ValueError:
        raise _fail(model, key, f"{value!r} is not a plain lower-case column name") from None
    return value


def _choice(model: str, key: str, value: Any, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise _fail(model, key, f"must be one of {', '.join(allowed)}, got {value!r}")
    return str(value)


def _schedule(model: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _fail(model, "schedule", f"must be daily, on_demand or a cron expression, got {value!r}")
    value = value.strip()
    if value not in ("daily", "on_demand") and len(value.split()) != 5:
        raise _fail(model, "schedule", f"{value!r} is neither daily, on_demand nor a 5-field cron expression")
    return value


def _share(model: str, value: Any) -> float:
    if value is None:
        return DEFAULT_MAX_CHANGE_SHARE
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < float(value) <= 1:
        raise _fail(model, "max_change_share", f"must be a number in (0, 1], got {value!r}")
    return float(value)


def _relation(model: str, relation: str) -> str:
    parts = relation.split(".")
    if len(parts) != 2:
        raise _fail(model, "relation", f"expected schema.table, got {relation!r}")
    for part in parts:
        _identifier(model, "relation", part)
    return relation


def _unknown(model: str, section: str, meta: Mapping[str, Any], allowed: set[str]) -> None:
    unknown = sorted(set(meta) - allowed)
    if unknown:
        raise _fail(
            model, f"meta.{section}", f"unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}"
        )


def spec_from_meta(model_name: str, relation: str, meta: Mapping[str, Any], description: str = "") -> SyncSpec:
    """The spec of one model from its `meta` (which holds `sync` or `audience`)."""
    has_sync, has_audience = "sync" in meta, "audience" in meta
    if has_sync == has_audience:
        raise _fail(model_name, "meta", "needs exactly one of `sync` or `audience`")
    if has_sync:
        return _sync_spec(model_name, _relation(model_name, relation), meta["sync"], description)
    return _audience_spec(model_name, _relation(model_name, relation), meta["audience"], description)


def _sync_spec(model: str, relation: str, sync: Any, description: str) -> SyncSpec:
    if not isinstance(sync, Mapping):
        raise _fail(model, "meta.sync", f"must be a mapping, got {type(sync).__name__}")
    _unknown(model, "sync", sync, _SYNC_KEYS)
    for required in ("destination", "object", "mode", "primary_key", "purpose", "fields", "schedule"):
        if sync.get(required) in (None, ""):
            raise _fail(model, required, "is required")
    destination = _choice(model, "destination", sync["destination"], tuple(DESTINATION_OBJECTS))
    obj = _choice(model, "object", sync["object"], DESTINATION_OBJECTS[destination])
    mode = _choice(model, "mode", sync["mode"], MODES)
    purpose = _choice(model, "purpose", sync["purpose"], PURPOSES)
    primary_key = _identifier(model, "primary_key", sync["primary_key"])
    default_key = "id" if destination == "customerio" else "Id"
    destination_key = str(sync.get("destination_key") or default_key)
    raw_fields = sync["fields"]
    if not isinstance(raw_fields, Mapping) or not raw_fields:
        raise _fail(model, "fields", "must map model columns to destination fields")
    fields = tuple((_identifier(model, f"fields.{c}", c), str(d)) for c, d in raw_fields.items())
    if any(not d for _, d in fields):
        raise _fail(model, "fields", "every model column needs a destination field name")
    profile_column = sync.get("profile_column")
    if profile_column is not None:
        profile_column = _identifier(model, "profile_column", profile_column)
    consent_channel = sync.get("consent_channel")
    if purpose == "marketing":
        if not consent_channel:
            raise _fail(model, "consent_channel", "a marketing sync needs the channel its people must be eligible on")
        if not profile_column:
            raise _fail(model, "profile_column", "a marketing sync needs the column naming each row's profile")
    elif consent_channel:
        raise _fail(model, "consent_channel", "only a marketing sync has a consent channel")
    action_column = sync.get("action_column")
    if mode == "suppression":
        if purpose == "marketing":
            raise _fail(model, "purpose", "a suppression sync is operational: it only stops contact")
        if destination == "customerio":
            if not action_column:
                raise _fail(model, "action_column", "a Customer.io suppression sync needs it (unsubscribe | suppress)")
            action_column = _identifier(model, "action_column", action_column)
    elif action_column:
        raise _fail(model, "action_column", "only a suppression sync has one")
    if destination == "salesforce" and mode in ("update_only", "suppression", "mirror") and destination_key != "Id":
        raise _fail(model, "destination_key", f"{mode} to Salesforce addresses records by Id, got {destination_key!r}")
    if destination == "customerio" and destination_key not in ("id", "email", "cio_id"):
        raise _fail(
            model, "destination_key", f"Customer.io identifies people by id, email or cio_id, got {destination_key!r}"
        )
    send_nulls = sync.get("send_nulls", False)
    if not isinstance(send_nulls, bool):
        raise _fail(model, "send_nulls", f"must be true or false, got {send_nulls!r}")
    return SyncSpec(
        name=model.removeprefix("sync_"),
        model=relation,
        model_name=model,
        kind="sync",
        destination=destination,
        object=obj,
        mode=mode,
        primary_key=primary_key,
        purpose=purpose,
        consent_channel=str(consent_channel) if consent_channel else None,
        schedule=_schedule(model, sync["schedule"]),
        description=description,
        max_change_share=_share(model, sync.get("max_change_share")),
        destination_key=destination_key,
        profile_column=profile_column,
        fields=fields,
        send_nulls=send_nulls,
        action_column=action_column,
        extra=dict(sync),
    )


def _audience_spec(model: str, relation: str, audience: Any, description: str) -> SyncSpec:
    if not isinstance(audience, Mapping):
        raise _fail(model, "meta.audience", f"must be a mapping, got {type(audience).__name__}")
    _unknown(model, "audience", audience, _AUDIENCE_KEYS)
    for required in ("description", "channel", "membership", "identifier", "schedule"):
        if audience.get(required) in (None, ""):
            raise _fail(model, required, "is required")
    destination = _choice(model, "destination", audience.get("destination", "customerio"), ("customerio",))
    membership = audience["membership"]
    if not isinstance(membership, Mapping):
        raise _fail(
            model, "membership", "must be {type: attribute, attribute: ...} or {type: manual_segment, segment_id: ...}"
        )
    kind = _choice(model, "membership.type", membership.get("type"), MEMBERSHIP_TYPES)
    if kind == "attribute":
        attribute = membership.get("attribute")
        if not isinstance(attribute, str) or not attribute:
            raise _fail(model, "membership.attribute", "an attribute membership needs the attribute's name")
        parsed = Membership("attribute", attribute=attribute)
    else:
        segment_id = membership.get("segment_id")
        if isinstance(segment_id, bool) or not isinstance(segment_id, int) or segment_id <= 0:
            raise _fail(model, "membership.segment_id", f"must be a manual segment's numeric id, got {segment_id!r}")
        parsed = Membership("manual_segment", segment_id=segment_id)
    primary_key = _identifier(model, "primary_key", audience.get("primary_key", "profile_id"))
    columns = audience.get("columns") or []
    if not isinstance(columns, list):
        raise _fail(model, "columns", f"must be a list of column names, got {columns!r}")
    return SyncSpec(
        name=model,
        model=relation,
        model_name=model,
        kind="audience",
        destination=destination,
        object="person",
        mode="mirror",
        primary_key=primary_key,
        purpose="marketing",
        consent_channel=str(audience["channel"]),
        schedule=_schedule(model, audience["schedule"]),
        description=str(audience["description"]) or description,
        max_change_share=_share(model, audience.get("max_change_share")),
        destination_key="id",
        profile_column=primary_key,
        membership=parsed,
        identifier=_identifier(model, "identifier", audience["identifier"]),
        # Every audience row has the standard `email` column (macro audience_select).
        email_column="email",
        extra=dict(audience),
    )


def specs_from_manifest(manifest: Mapping[str, Any]) -> list[SyncSpec]:
    """Every sync and audience declared in a dbt manifest (`manifest.json` as a dict), validated."""
    specs: list[SyncSpec] = []
    for node in (manifest.get("nodes") or {}).values():
        if node.get("resource_type") != "model":
            continue
        meta = {**(node.get("meta") or {}), **((node.get("config") or {}).get("meta") or {})}
        if "sync" not in meta and "audience" not in meta:
            continue
        name = node["name"]
        relation = f"{node.get('schema')}.{node.get('alias') or name}"
        specs.append(spec_from_meta(name, relation, meta, node.get("description") or ""))
    names = [s.name for s in specs]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise SyncSpecError(f"several models give the same sync name: {', '.join(duplicates)}")
    return sorted(specs, key=lambda s: s.name)
