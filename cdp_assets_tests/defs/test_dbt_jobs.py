"""What each job builds: the asset keys in its selection, and dbt tests as asset checks. No runs.

- `saas_daily_job` (daily): the SaaS extracts, then every dbt model they feed, which is everything
  from identity to the sync feeds; not the event load.
- `event_stream_job` (every 30 minutes and on new files): the event load and the dbt models fed by
  it, with the staging views they read; not the SaaS extracts, and no reverse ETL.
"""

from __future__ import annotations

import dagster as dg
import pytest

SAAS_GROUPS = ("salesforce", "stripe", "customerio", "facebook_ads", "google_ads")
# The models built on both events and SaaS tables: every one of them is refreshed by both jobs.
SHARED_MODELS = (
    "identity_graph",
    "consent_events",
    "consent_status",
    "customer_profiles",
    "account_status",
    "profile_billing",
    "audience_signed_up_no_source",
    "audience_enterprise_quote_requested",
    "audience_became_customer",
    "sync_customerio_people",
    "sync_customerio_suppressions",
    "sync_salesforce_leads",
    "sync_salesforce_accounts",
)
EVENT_ONLY_MODELS = ("stg_tracks", "stg_identifies", "stg_pages", "stg_users")


def _selected(defs: dg.Definitions, job: str) -> set[str]:
    return {key.to_user_string() for key in defs.resolve_job_def(job).asset_layer.selected_asset_keys}


def _dbt_models(defs: dg.Definitions) -> set[str]:
    graph = defs.resolve_asset_graph()
    return {key.to_user_string() for key in graph.get_all_asset_keys() if "dbt" in graph.get(key).kinds}


@pytest.fixture(scope="module")
def saas_daily(defs: dg.Definitions) -> set[str]:
    return _selected(defs, "saas_daily_job")


@pytest.fixture(scope="module")
def event_cycle(defs: dg.Definitions) -> set[str]:
    return _selected(defs, "event_stream_job")


def test_the_models_are_assets_keyed_by_name(defs: dg.Definitions) -> None:
    models = _dbt_models(defs)
    assert set(SHARED_MODELS) <= models
    graph = defs.resolve_asset_graph()
    parents = {k.to_user_string() for k in graph.get(dg.AssetKey("consent_events")).parent_keys}
    # the dbt sources are the event-load and extract assets themselves: the graph joins with no glue
    assert {"event_stream/tracks", "event_stream/identifies", "stg_customerio__suppressions"} <= parents
    staging_parents = {k.to_user_string() for k in graph.get(dg.AssetKey("stg_customerio__suppressions")).parent_keys}
    assert staging_parents == {"customerio/suppressions"}


def test_daily_job_extracts_then_builds_everything_the_extracts_feed(
    defs: dg.Definitions, saas_daily: set[str]
) -> None:
    graph = defs.resolve_asset_graph()
    extracts = {k.to_user_string() for k in graph.get_all_asset_keys() if k.path[0] in SAAS_GROUPS}
    assert extracts and extracts <= saas_daily
    assert set(SHARED_MODELS) <= saas_daily
    saas_staging = {m for m in _dbt_models(defs) if any(m.startswith(f"stg_{g}__") for g in SAAS_GROUPS)}
    assert saas_staging and saas_staging <= saas_daily
    assert not {k for k in saas_daily if k.startswith("event_stream/")}
    # every model of the daily job depends on an extract, so its single dbt step runs after them
    for model in saas_daily & _dbt_models(defs):
        ancestors = graph.get_ancestor_asset_keys(dg.AssetKey(model))
        assert any(a.path[0] in SAAS_GROUPS for a in ancestors), model


def test_event_cycle_refreshes_only_what_depends_on_events(defs: dg.Definitions, event_cycle: set[str]) -> None:
    assert {"event_stream/tracks", "event_stream/identifies"} <= event_cycle
    assert set(SHARED_MODELS) | set(EVENT_ONLY_MODELS) <= event_cycle
    assert not {k for k in event_cycle if k.split("/")[0] in SAAS_GROUPS}, "no SaaS extract every 30 minutes"
    assert not {k for k in event_cycle if k.startswith("reverse_etl/")}
    graph = defs.resolve_asset_graph()
    # SaaS staging views come along (re-creating a view moves no data; before the first extract it is
    # what lets identity and consent build), but no SaaS-only table model
    saas_only = {k for k in event_cycle if k.startswith("stg_") and "__" in k}
    assert saas_only and all(graph.get(dg.AssetKey(k)).group_name == "staging" for k in saas_only)
    # and everything else in it depends on the events
    for key in event_cycle - {k for k in event_cycle if k.startswith("event_stream/")} - saas_only:
        ancestors = {a.to_user_string() for a in graph.get_ancestor_asset_keys(dg.AssetKey(key.split("/")))}
        assert any(a.startswith("event_stream/") for a in ancestors), key


def test_dbt_tests_are_asset_checks_of_the_new_models(defs: dg.Definitions) -> None:
    graph = defs.resolve_asset_graph()
    checks: dict[str, set[str]] = {}
    for check in graph.asset_check_keys:
        checks.setdefault(check.asset_key.to_user_string(), set()).add(check.name)
    assert any(name.startswith("unique_consent_status") for name in checks["consent_status"])
    assert any(name.startswith("accepted_values_consent_status_status") for name in checks["consent_status"])
    assert any(name.startswith("unique_customer_profiles_profile_id") for name in checks["customer_profiles"])
    assert any(name.startswith("unique_account_status_account_id") for name in checks["account_status"])
    # the consent guard on every marketing feed and audience
    for model in ("sync_customerio_people", *[m for m in SHARED_MODELS if m.startswith("audience_")]):
        assert any(name.startswith("only_eligible_profiles") for name in checks[model]), model
    for model in SHARED_MODELS:
        assert checks.get(model), f"{model} has no dbt test as an asset check"
    # identity's run gates are checks of identity_graph: a failing one stops what reads the graph
    for gate in ("identity_profile_size", "identity_change_share", "identity_quarantined_share"):
        assert any(name.startswith(gate) for name in checks["identity_graph"]), gate


def test_approving_an_identity_change_is_run_config_of_the_dbt_build(defs: dg.Definitions) -> None:
    """Launchpad config `approve_identity_change` lets one build through the gates (dbt var)."""
    from cdp_assets.defs.dbt import DbtBuildConfig, build_args

    job = defs.resolve_job_def("saas_daily_job")
    node = next(n for n in job.graph.node_dict if n.startswith("cdp_dbt_models"))
    fields = job.run_config_schema.config_type.fields["ops"].config_type.fields[node].config_type.fields
    assert "approve_identity_change" in fields["config"].config_type.fields
    assert build_args(DbtBuildConfig()) == ["build"]
    assert build_args(DbtBuildConfig(approve_identity_change=True)) == [
        "build",
        "--vars",
        '{"identity_gates_approved": true}',
    ]
