"""Reverse ETL as Dagster assets: one asset per spec in the dbt manifest, launched like marketing ops do.

The runs here go through the real definitions: the asset reads a hand-built model table in the test's
warehouse, and `SaasResource` finds the Customer.io stand-in this test started (as `cdp sandbox` would
have), so the test can read what the stand-in received.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import dagster as dg
import duckdb
import pytest

from cdp_assets.defs.reverse_etl import CONSENT_CHECK, GROUP, SPECS
from cdp_assets.sandbox.run import Running, running, write_urls
from cdp_assets.settings import get_settings

PEOPLE = dg.AssetKey([GROUP, "customerio_people"])


def test_every_spec_in_the_manifest_is_an_asset_downstream_of_its_model(defs: dg.Definitions) -> None:
    graph = defs.resolve_asset_graph()
    names = {spec.name for spec in SPECS}
    # The four sync feeds and the three audiences of dbt_project/models.
    assert {"customerio_people", "customerio_suppressions", "salesforce_leads", "salesforce_accounts"} <= names
    assert {"audience_signed_up_no_source", "audience_enterprise_quote_requested", "audience_became_customer"} <= names
    for spec in SPECS:
        node = graph.get(dg.AssetKey([GROUP, spec.name]))
        assert node.group_name == GROUP
        assert node.parent_keys == {dg.AssetKey([spec.model_name])}
        checks = {key.name for key in graph.asset_check_keys if key.asset_key == node.key}
        assert (CONSENT_CHECK in checks) == (spec.purpose == "marketing"), spec.name
    daily = defs.resolve_job_def("reverse_etl_daily_job")
    daily_syncs = {dg.AssetKey([GROUP, s.name]) for s in SPECS if s.schedule == "daily"}
    assert daily.asset_layer.selected_asset_keys == daily_syncs
    assert defs.resolve_sensor_def("reverse_etl_after_daily_build") is not None


@pytest.fixture
def customerio() -> Iterator[Running]:
    with running(("customerio",)) as started:
        write_urls(get_settings().data_dir / "sandbox.json", started)
        yield started["customerio"]


def _people_table(rows: list[dict[str, Any]]) -> None:
    """sync.sync_customerio_people with every column its spec maps, and consent for its people."""
    spec = next(s for s in SPECS if s.name == "customerio_people")
    columns = sorted({spec.primary_key, *(c for c, _ in spec.fields), spec.profile_column or "profile_id"})
    path = get_settings().duckdb_path
    path.parent.mkdir(parents=True, exist_ok=True)
    with duckdb.connect(str(path)) as conn:
        conn.execute("CREATE SCHEMA IF NOT EXISTS sync")
        conn.execute("CREATE SCHEMA IF NOT EXISTS consent")
        conn.execute(
            f"CREATE OR REPLACE TABLE sync.sync_customerio_people ({', '.join(f'{c} VARCHAR' for c in columns)})"
        )
        insert = (
            f"INSERT INTO sync.sync_customerio_people ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
        )
        for row in rows:
            conn.execute(insert, [row.get(c) for c in columns])
        conn.execute(
            """CREATE OR REPLACE TABLE consent.consent_status AS
               SELECT profile_id, 'email' AS channel, status, status IN ('opted_in', 'unknown') AS eligible,
                      false AS needs_opt_in, 'test' AS source, NULL::TIMESTAMPTZ AS updated_at,
                      'planted by the test' AS reason, NULL AS decided_by
               FROM (VALUES ('p1', 'opted_in'), ('p2', 'unknown'), ('p3', 'opted_out')) AS t(profile_id, status)"""
        )
        # consent per address (the dbt model consent_contact_points): no address has a status of its own here.
        conn.execute(
            """CREATE OR REPLACE TABLE consent.consent_contact_points AS
               SELECT NULL::VARCHAR AS email, profile_id, channel, status, eligible, needs_opt_in, source,
                      updated_at, reason, decided_by
               FROM consent.consent_status WHERE false"""
        )


def _run(defs: dg.Definitions, instance: dg.DagsterInstance, **config: bool) -> dg.ExecuteInProcessResult:
    job = defs.resolve_implicit_global_asset_job_def()
    node = defs.resolve_assets_def(PEOPLE).node_def.name
    return job.execute_in_process(
        instance=instance,
        asset_selection=[PEOPLE],
        run_config={"ops": {node: {"config": config}}} if config else None,
        raise_on_error=False,
    )


def _sent_text(app: Any) -> str:
    return json.dumps([r.json() if r.body else None for r in app.requests() if r.method in ("PUT", "POST")])


def test_a_planted_opted_out_person_is_refused_and_the_consent_check_fails(
    defs: dg.Definitions, instance: dg.DagsterInstance, customerio: Running
) -> None:
    _people_table(
        [
            {"id": "u1", "email": "one@acme.io", "profile_id": "p1", "first_name": "One"},
            {"id": "u2", "email": "two@acme.io", "profile_id": "p2", "first_name": "Two"},
            {"id": "u3", "email": "planted@acme.io", "profile_id": "p3", "first_name": "Planted"},
        ]
    )
    # A dry run first: the preview says who would be sent and who refused; nothing reaches the API.
    dry = _run(defs, instance, dry_run=True)
    assert dry.success
    assert customerio.app.requests() == []
    (dry_mat,) = dry.asset_materializations_for_node(defs.resolve_assets_def(PEOPLE).node_def.name)
    assert dry_mat.metadata["dry_run"].value is True
    preview = dry_mat.metadata["preview"].value  # the row-level preview the launcher reads in the UI
    assert preview.index("| u3 | add |") < preview.index("| u1 | add |")  # refusals first
    assert "opted_out" in preview.split("| u3 |")[1].split("\n")[0]

    result = _run(defs, instance)
    assert result.success  # refusing people is the guard working, not a failed run
    checks = {c.check_name: c for c in result.get_asset_check_evaluations()}
    assert checks[CONSENT_CHECK].passed is False
    assert checks[CONSENT_CHECK].metadata["skipped_consent"].value == 1
    sent = _sent_text(customerio.app)
    assert "one@acme.io" in sent and "two@acme.io" in sent
    assert "planted@acme.io" not in sent and '"u3"' not in sent
    (materialization,) = result.asset_materializations_for_node(defs.resolve_assets_def(PEOPLE).node_def.name)
    metadata = {k: v.value for k, v in materialization.metadata.items()}
    assert metadata["skipped_consent"] == 1
    assert metadata["accepted"] == 2
    assert metadata["planned_adds"] == 3
    with duckdb.connect(str(get_settings().duckdb_path), read_only=True) as conn:
        statuses = dict(
            conn.execute(
                "SELECT pk, status FROM reverse_etl.sync_row_results WHERE run_id = ? ORDER BY pk", [result.run_id]
            ).fetchall()
        )
        previews = dict(
            conn.execute(
                "SELECT pk, would_skip_reason IS NOT NULL FROM reverse_etl.sync_previews WHERE run_id = ?",
                [dry.run_id],
            ).fetchall()
        )
    assert statuses == {"u1": "accepted", "u2": "accepted", "u3": "skipped_consent"}
    assert previews == {"u1": False, "u2": False, "u3": True}


def test_the_large_change_guard_fails_the_step_until_approved(
    defs: dg.Definitions, instance: dg.DagsterInstance, customerio: Running
) -> None:
    # Five eligible people (two consented profiles; the guard reads consent by profile).
    people = [
        {"id": f"u{i}", "email": f"p{i}@acme.io", "profile_id": f"p{1 + i % 2}", "first_name": "A"} for i in range(5)
    ]
    _people_table(people)
    assert _run(defs, instance).success
    first = len(customerio.app.requests())
    _people_table([{**p, "first_name": "Changed"} for p in people])  # every row changes: 100% > 20%
    blocked = _run(defs, instance)
    assert not blocked.success
    failure = blocked.get_step_failure_events()[0].step_failure_data.user_failure_data
    assert "large-change" in failure.description
    assert failure.metadata["planned_changes"].value == 5
    assert len(customerio.app.requests()) == first  # stopped before any API call
    approved = _run(defs, instance, approve_large_change=True)
    assert approved.success
    assert len(customerio.app.requests()) > first


def test_daily_syncs_are_requested_once_per_successful_daily_build(instance: dg.DagsterInstance) -> None:
    from cdp_assets.defs.reverse_etl import reverse_etl_after_daily_build

    @dg.op
    def build() -> None:
        return None

    # A stand-in for a finished saas_daily_job run: the sensor reads only the run and its success event.
    finished = (
        dg.GraphDefinition(name="saas_daily_job", node_defs=[build]).to_job().execute_in_process(instance=instance)
    )
    context = dg.build_run_status_sensor_context(
        sensor_name="reverse_etl_after_daily_build",
        dagster_event=finished.get_run_success_event(),
        dagster_instance=instance,
        dagster_run=finished.dagster_run,
    )
    request = reverse_etl_after_daily_build(context)
    assert request.run_key == f"after-{finished.run_id}"  # a re-evaluated tick cannot start a second run
    assert reverse_etl_after_daily_build.job_name == "reverse_etl_daily_job"
