"""Sync specs from dbt meta: the real examples parse, and every mistake names the model and the key."""

from __future__ import annotations

from typing import Any

import pytest

from cdp_assets.reverse_etl.spec import Membership, SyncSpecError, spec_from_meta, specs_from_manifest

PEOPLE = {
    "destination": "customerio",
    "object": "person",
    "mode": "upsert",
    "primary_key": "id",
    "destination_key": "id",
    "purpose": "marketing",
    "consent_channel": "email",
    "profile_column": "profile_id",
    "fields": {"email": "email", "plan": "plan", "profile_id": "cdp_profile_id"},
    "send_nulls": False,
    "schedule": "daily",
}
AUDIENCE = {
    "description": "Requested an enterprise quote.",
    "channel": "email",
    "destination": "customerio",
    "membership": {"type": "manual_segment", "segment_id": 6},
    "primary_key": "profile_id",
    "identifier": "customerio_identifier",
    "schedule": "on_demand",
    "columns": ["enterprise_quote_requested_at", "plan"],
}


def node(name: str, schema: str, meta: dict[str, Any], in_config: bool = True) -> dict[str, Any]:
    return {
        "resource_type": "model",
        "name": name,
        "schema": schema,
        "alias": name,
        "description": f"the {name} model",
        "meta": {} if in_config else meta,
        "config": {"meta": meta if in_config else {}},
    }


def test_specs_from_a_manifest() -> None:
    manifest = {
        "nodes": {
            "model.cdp.sync_customerio_people": node("sync_customerio_people", "sync", {"sync": PEOPLE}, False),
            "model.cdp.audience_enterprise_quote_requested": node(
                "audience_enterprise_quote_requested", "audiences", {"audience": AUDIENCE}
            ),
            "model.cdp.customer_profiles": node("customer_profiles", "marts", {"owner": "analytics"}),
            "seed.cdp.x": {"resource_type": "seed", "name": "x", "config": {"meta": {"sync": {}}}},
        }
    }
    audience, people = specs_from_manifest(manifest)
    assert (people.name, people.model, people.model_name, people.kind) == (
        "customerio_people",
        "sync.sync_customerio_people",
        "sync_customerio_people",
        "sync",
    )
    assert (people.purpose, people.consent_channel, people.max_change_share, people.schedule) == (
        "marketing",
        "email",
        0.2,
        "daily",
    )
    assert people.field_map == {"email": "email", "plan": "plan", "profile_id": "cdp_profile_id"}
    assert people.description == "the sync_customerio_people model"
    assert (audience.name, audience.kind, audience.mode, audience.purpose, audience.consent_channel) == (
        "audience_enterprise_quote_requested",
        "audience",
        "mirror",
        "marketing",
        "email",
    )
    assert audience.membership == Membership("manual_segment", segment_id=6)
    assert audience.profile_column == "profile_id" and audience.identifier == "customerio_identifier"
    assert audience.description == "Requested an enterprise quote."


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"destination": "hubspot"}, "destination: must be one of customerio, salesforce, got 'hubspot'"),
        ({"object": "Lead"}, "object: must be one of person, got 'Lead'"),
        ({"mode": "create_only"}, "mode: must be one of upsert, update_only, mirror, suppression"),
        ({"consent_channel": None}, "consent_channel: a marketing sync needs the channel"),
        ({"profile_column": None}, "profile_column: a marketing sync needs the column"),
        ({"fields": {}}, "fields: must map model columns to destination fields"),
        ({"fields": {"Email Address": "email"}}, "fields.Email Address: 'Email Address' is not a plain"),
        ({"primary_key": "id; drop table x"}, "primary_key: 'id; drop table x' is not a plain"),
        ({"schedule": "hourly"}, "schedule: 'hourly' is neither daily, on_demand nor a 5-field cron"),
        ({"max_change_share": 1.5}, "max_change_share: must be a number in (0, 1], got 1.5"),
        ({"send_nulls": "no"}, "send_nulls: must be true or false, got 'no'"),
        ({"fields_typo": 1}, "meta.sync: unknown key(s) fields_typo"),
        ({"mode": "suppression", "purpose": "operational", "consent_channel": None}, "action_column: a Customer.io"),
        ({"destination_key": "uuid"}, "destination_key: Customer.io identifies people by id, email or cio_id"),
    ],
)
def test_a_bad_sync_spec_names_the_model_and_the_key(change: dict[str, Any], message: str) -> None:
    with pytest.raises(SyncSpecError) as raised:
        spec_from_meta("sync_customerio_people", "sync.sync_customerio_people", {"sync": {**PEOPLE, **change}})
    assert str(raised.value).startswith("model 'sync_customerio_people': ")
    assert message in str(raised.value)


def test_salesforce_update_only_needs_the_record_id_and_cron_schedules_are_kept() -> None:
    sync = {
        "destination": "salesforce",
        "object": "Account",
        "mode": "update_only",
        "primary_key": "id",
        "purpose": "operational",
        "fields": {"plan": "Plan__c"},
        "schedule": "0 6 * * *",
    }
    spec = spec_from_meta("sync_salesforce_accounts", "sync.sync_salesforce_accounts", {"sync": sync})
    assert (spec.name, spec.destination_key, spec.schedule) == ("salesforce_accounts", "Id", "0 6 * * *")
    with pytest.raises(SyncSpecError, match="update_only to Salesforce addresses records by Id, got 'Domain__c'"):
        spec_from_meta("sync_salesforce_accounts", "sync.a", {"sync": {**sync, "destination_key": "Domain__c"}})


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"membership": {"type": "list"}}, "membership.type: must be one of attribute, manual_segment"),
        ({"membership": {"type": "manual_segment", "segment_id": "six"}}, "membership.segment_id: must be"),
        ({"membership": {"type": "attribute"}}, "membership.attribute: an attribute membership needs"),
        ({"channel": None}, "channel: is required"),
        ({"destination": "salesforce"}, "destination: must be one of customerio"),
    ],
)
def test_a_bad_audience_spec_names_the_model_and_the_key(change: dict[str, Any], message: str) -> None:
    with pytest.raises(SyncSpecError, match=r"^model 'audience_x': ") as raised:
        spec_from_meta("audience_x", "audiences.audience_x", {"audience": {**AUDIENCE, **change}})
    assert message in str(raised.value)


def test_two_models_with_one_sync_name_are_refused() -> None:
    manifest = {
        "nodes": {
            "a": node("sync_customerio_people", "sync", {"sync": PEOPLE}),
            "b": node("customerio_people", "sync", {"sync": PEOPLE}),
        }
    }
    with pytest.raises(SyncSpecError, match="several models give the same sync name: customerio_people"):
        specs_from_manifest(manifest)
