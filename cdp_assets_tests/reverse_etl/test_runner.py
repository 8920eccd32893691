"""The runner's own rules, on dry runs (no destination needed): invalid keys, the consent table, the guard."""

from __future__ import annotations

import duckdb
import pytest

from cdp_assets.reverse_etl.guards import ConsentUnavailable
from cdp_assets.reverse_etl.runner import RunOptions, SyncModelError, run_sync
from cdp_assets.reverse_etl.spec import SyncSpec, spec_from_meta
from cdp_assets_tests.reverse_etl.helpers import previews, set_consent


def spec(**changes: object) -> SyncSpec:
    sync = {
        "destination": "customerio",
        "object": "person",
        "mode": "upsert",
        "primary_key": "id",
        "purpose": "marketing",
        "consent_channel": "email",
        "profile_column": "profile_id",
        "fields": {"email": "email"},
        "schedule": "daily",
        **changes,
    }
    return spec_from_meta("sync_people", "sync.people", {"sync": sync})


@pytest.fixture
def people(warehouse: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyConnection:
    warehouse.execute("CREATE TABLE sync.people (id VARCHAR, email VARCHAR, profile_id VARCHAR)")
    warehouse.execute(
        "INSERT INTO sync.people VALUES ('u1', 'a@x.com', 'p1'), (NULL, 'n@x.com', 'p2'), "
        "('u3', 'c@x.com', 'p3'), ('u3', 'c2@x.com', 'p3'), ('u4', 'd@x.com', NULL)"
    )
    set_consent(warehouse, "p1", "opted_in")
    set_consent(warehouse, "p3", "opted_in")
    return warehouse


def test_dry_run_previews_invalid_and_refused_rows_with_their_reason(people: duckdb.DuckDBPyConnection) -> None:
    result = run_sync(people, spec(), None, RunOptions(dry_run=True), "d1")
    assert (result.status, result.planned_adds, result.invalid, result.skipped_consent) == ("dry_run", 2, 3, 1)
    rows = people.execute(
        "SELECT coalesce(pk, '<null>'), op, would_skip_reason FROM reverse_etl.sync_previews ORDER BY 1, 3"
    ).fetchall()
    assert rows == [
        ("<null>", "invalid", "null primary key"),
        ("u1", "add", None),
        ("u3", "invalid", "duplicate primary key"),
        ("u3", "invalid", "duplicate primary key"),
        ("u4", "add", "no profile (profile_id is null): consent unknown"),
    ]
    assert previews(people, "d1")["u1"][1] == [
        {
            "call": "batch",
            "operation": {
                "type": "person",
                "action": "identify",
                "identifiers": {"id": "u1"},
                "attributes": {"email": "a@x.com"},
            },
        }
    ]
    assert people.execute(
        "SELECT status, planned_adds, invalid, skipped_consent, sent, dry_run FROM reverse_etl.sync_runs"
    ).fetchall() == [("dry_run", 2, 3, 1, 0, True)]
    assert people.execute("SELECT count(*) FROM reverse_etl.snapshots").fetchone() == (0,)


def test_a_real_run_needs_a_destination(people: duckdb.DuckDBPyConnection) -> None:
    with pytest.raises(ValueError, match="only a dry run may go without a destination"):
        run_sync(people, spec(), None, RunOptions(), "r1")


def test_a_marketing_sync_without_the_consent_model_refuses_to_run(people: duckdb.DuckDBPyConnection) -> None:
    people.execute("DROP TABLE consent.consent_status")
    with pytest.raises(
        ConsentUnavailable, match="marketing sync 'people' cannot check consent in consent.consent_status"
    ):
        run_sync(people, spec(), None, RunOptions(dry_run=True), "d1")
    # An operational sync does not need it.
    operational = spec(purpose="operational", consent_channel=None)
    assert run_sync(people, operational, None, RunOptions(dry_run=True), "d2").status == "dry_run"


def test_a_mapped_column_missing_from_the_model_fails_before_planning_with_what_is_missing(
    people: duckdb.DuckDBPyConnection,
) -> None:
    mapped = spec(fields={"email": "email", "plan": "plan"})
    people.execute("ALTER TABLE sync.people DROP COLUMN profile_id")
    with pytest.raises(SyncModelError) as raised:
        run_sync(people, mapped, None, RunOptions(dry_run=True), "d1")
    assert str(raised.value) == (
        "sync 'people': its model sync_people (sync.people) has no column plan (from meta.sync.fields), "
        "profile_id (from meta.sync.profile_column); the model has email, id. Nothing was planned or sent: "
        "put the column back in the model or change the spec, then build the model again."
    )
    assert people.execute("SELECT count(*) FROM reverse_etl.sync_previews").fetchone() == (0,)
    assert people.execute("SELECT count(*) FROM reverse_etl.snapshots").fetchone() == (0,)

    people.execute("DROP TABLE sync.people")
    with pytest.raises(SyncModelError, match=r"sync 'people': cannot read its model sync_people \(sync.people\)"):
        run_sync(people, mapped, None, RunOptions(dry_run=True), "d2")
