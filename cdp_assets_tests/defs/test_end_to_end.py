"""The main job end to end: landing files, the event load, the SaaS extracts, the dbt build, reverse ETL."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import duckdb

from cdp_assets.cli import demo_report
from cdp_assets.defs.reverse_etl import SPECS
from cdp_assets.event_stream.landing import LocalLandingStore
from cdp_assets.settings import get_settings
from cdp_assets_tests.conftest import write_dump
from cdp_assets_tests.defs.helpers import check_evaluations, materializations, recent_event


def test_main_job_loads_events_then_builds_the_staging_models(
    defs: dg.Definitions, instance: dg.DagsterInstance, landing: LocalLandingStore, warehouse_path: Path
) -> None:
    write_dump(
        landing,
        [
            recent_event("page", anonymousId="anon-1", name="Pricing"),
            recent_event(event="form_submit", anonymousId="anon-1", properties={"form_id": "request-demo"}),
            recent_event("identify", anonymousId="anon-1", userId="u1", traits={"email": " Ada@Example.com "}),
            recent_event(event="signed_up", userId="u1", properties={"plan": "free"}),
        ],
    )
    result = defs.resolve_job_def("cdp_main_job").execute_in_process(instance=instance, raise_on_error=False)
    assert result.success

    found = materializations(result)
    assert found["event_stream/tracks"]["dagster/row_count"] == 2
    assert {"stg_tracks", "stg_pages", "stg_identifies", "stg_users"} <= set(found)
    evaluations = check_evaluations(result)
    assert "stg_tracks:unique_stg_tracks_message_id" in evaluations  # dbt tests ran as asset checks
    assert [key for key, e in evaluations.items() if not e.passed] == []

    # The dbt step ran after the load released the file, against the same warehouse.
    with duckdb.connect(str(warehouse_path), read_only=True) as conn:
        assert conn.execute("SELECT count(*) FROM staging.stg_tracks").fetchone()[0] == 2
        assert conn.execute("SELECT user_id, email FROM staging.stg_users").fetchall() == [("u1", "ada@example.com")]

    # Every sync ran after its model, against the stand-ins, and the demo's report says what each sent.
    report = demo_report(get_settings(), result.success, result.run_id)["data"]
    assert set(report["syncs"]) == {spec.name for spec in SPECS}
    syncs = report["syncs"]
    # An audience with no member among these few events plans nothing: `no_change`, not a failure.
    assert all(s["status"] in ("success", "no_change") and s["sent"] == s["accepted"] for s in syncs.values()), syncs
    assert syncs["customerio_people"]["sent"] > 0 and syncs["salesforce_leads"]["sent"] > 0, syncs
    assert report["models"]["sync.sync_customerio_people"] > 0


def test_the_event_cycle_builds_identity_and_consent_on_a_fresh_warehouse_before_any_extract(
    defs: dg.Definitions, instance: dg.DagsterInstance, landing: LocalLandingStore, warehouse_path: Path
) -> None:
    """The sensor's first run comes before the first daily extract: the SaaS staging views build empty."""
    write_dump(
        landing,
        [
            recent_event("page", anonymousId="anon-9", name="Pricing"),
            recent_event("identify", anonymousId="anon-9", userId="u9", traits={"email": "\tnine@acme.io "}),
        ],
    )
    result = defs.resolve_job_def("event_stream_job").execute_in_process(instance=instance, raise_on_error=False)
    assert result.success
    with duckdb.connect(str(warehouse_path), read_only=True) as conn:
        graph = conn.execute(
            "SELECT identifier_type, identifier, profile_id FROM identity.identity_graph ORDER BY 1"
        ).fetchall()
        assert conn.execute("SELECT count(*) FROM staging.stg_salesforce__leads").fetchone()[0] == 0
        assert not conn.execute(
            "SELECT * FROM duckdb_tables() WHERE starts_with(schema_name, 'raw_')"
        ).fetchall()  # no extract ran
    assert [(t, i) for t, i, _ in graph] == [("anonymous_id", "anon-9"), ("email", "nine@acme.io"), ("user_id", "u9")]
    assert len({p for _, _, p in graph}) == 1
