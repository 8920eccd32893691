"""The dbt project as assets: one `DbtProject`, one `@dbt_assets`, one `DbtCliResource` (P8).

No `from __future__ import annotations`: Dagster reads the asset function's resource annotations.

Sources keep the keys pinned in `sources.yml` (`meta.dagster.asset_key: [event_stream, <table>]`), so
each model hangs off the event-load asset that writes its table with no glue code. Models are grouped
by their folder (`staging`, `identity`, `consent`, `marts`, `audiences`, `sync`). dbt tests become
asset checks (cdp_assets_tests/defs/test_dbt_jobs.py checks them and what each job selects).

The manifest is built at import when it is missing or older than the project's files (a fresh clone, or
a model edited since the last parse), so `dagster definitions validate` and the tests load anywhere; a
deployment builds it at image build time and never pays for it at load.
"""

import contextlib
import json
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DbtCliResource, DbtProject, dbt_assets

from cdp_assets import settings as cdp_settings
from cdp_assets.dbt_cli import dbt_executable
from cdp_assets.defs.resources import WAREHOUSE_POOL, WarehouseResource

# Files whose change makes the manifest stale (parsing is what turns them into the manifest).
_PROJECT_INPUTS = ("dbt_project.yml", "profiles.yml", "packages.yml", "dependencies.yml")
_PROJECT_FOLDERS = ("models", "macros", "tests", "seeds", "snapshots", "analyses")


@contextlib.contextmanager
def dbt_environment(duckdb_path: Path) -> Iterator[None]:
    """The environment dbt needs, for the length of one dbt call.

    The dev profile reads the DuckDB path from CDP_DUCKDB_PATH (profiles.yml), and DbtCliResource has
    no way to pass a variable to its subprocess but the process environment. It is set to the file the
    loader writes (even when only CDP_DATA_DIR was given) and the previous value restored afterwards;
    steps run one at a time in the run's process, so no other step sees the change.
    """
    # The manifest preparer builds its own DbtCliResource, which finds `dbt` on PATH only (P6): put the
    # dbt this project uses first, so a parse at import works when the venv is not on PATH.
    dbt = Path(dbt_executable())
    changes = {
        "CDP_DUCKDB_PATH": str(duckdb_path),
        # A job that builds part of the graph runs a test only when every model it reads is built in
        # the same run: the 30-minute job builds the SaaS staging views identity reads, and a
        # relationships test between one of them and a view it does not build would fail on a fresh
        # warehouse (dbt's default, eager, runs a test when any of its models is selected).
        "DBT_INDIRECT_SELECTION": os.environ.get("DBT_INDIRECT_SELECTION", "cautious"),
    }
    if dbt.is_absolute():
        changes["PATH"] = os.pathsep.join([str(dbt.parent), os.environ.get("PATH", "")])
    previous = {name: os.environ.get(name) for name in changes}
    os.environ.update(changes)
    try:
        yield
    finally:
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def manifest_is_stale(project: DbtProject) -> bool:
    manifest = project.manifest_path
    if not manifest.exists():
        return True
    built = manifest.stat().st_mtime
    root = Path(project.project_dir)
    inputs = [root / name for name in _PROJECT_INPUTS if (root / name).exists()]
    for folder in _PROJECT_FOLDERS:
        if (root / folder).is_dir():
            inputs.extend(p for p in (root / folder).rglob("*") if p.is_file())
    return any(p.stat().st_mtime > built for p in inputs)


def build_project() -> DbtProject:
    project = DbtProject(project_dir=cdp_settings.DBT_PROJECT_DIR, target=cdp_settings.get_settings().dbt_target)
    with dbt_environment(cdp_settings.get_settings().duckdb_path):
        if manifest_is_stale(project):
            project.preparer.prepare(project)
        else:
            project.prepare_if_dev()  # under `dagster dev`, re-parse on every reload
    return project


class CdpDbtTranslator(DagsterDbtTranslator):
    """Models keyed by name alone, grouped by folder; sources keep `meta.dagster.asset_key`.

    The default would prefix a model's key with its custom schema (`staging/stg_tracks`); the design
    keys dbt models by name, so moving a model to another schema does not rename its asset.
    """

    def get_asset_spec(self, manifest: Mapping[str, Any], unique_id: str, project: DbtProject | None) -> dg.AssetSpec:
        asset_spec = super().get_asset_spec(manifest, unique_id, project)
        props = self.get_resource_props(manifest, unique_id)
        if props["resource_type"] in ("model", "seed", "snapshot"):
            return asset_spec.replace_attributes(
                key=dg.AssetKey([props["name"]]), group_name=folder_group(props["fqn"])
            )
        return asset_spec


def folder_group(fqn: list[str]) -> str:
    """`[project, folder, ..., name]` to the first folder under `models/`; "dbt" for a top-level model."""
    return fqn[1] if len(fqn) > 2 else "dbt"


project = build_project()


class DbtBuildConfig(dg.Config):
    """Run config of the dbt build (Launchpad)."""

    # Lets this one run through identity's run gates (identity_graph's identity_profile_size and
    # identity_change_share tests, macros/identity/identity_gates.sql) after a person has looked at
    # the change they stopped: the dbt var identity_gates_approved.
    approve_identity_change: bool = False


def build_args(config: DbtBuildConfig) -> list[str]:
    args = ["build"]
    if config.approve_identity_change:
        args += ["--vars", json.dumps({"identity_gates_approved": True})]
    return args


@dbt_assets(
    manifest=project.manifest_path,
    project=project,
    name="cdp_dbt_models",
    dagster_dbt_translator=CdpDbtTranslator(),
    # DuckDB has one writer: the models build in the same pool as the event load, after it.
    pool=WAREHOUSE_POOL,
)
def cdp_dbt_models(
    context: dg.AssetExecutionContext, dbt: DbtCliResource, warehouse: WarehouseResource, config: DbtBuildConfig
) -> Iterator[Any]:
    settings = warehouse.settings()
    # Run artifacts (run_results.json, logs) go to the data folder, one folder per run, rather than
    # one more folder per call under dbt_project/target (P10); parsing state still comes from there.
    target = settings.data_dir / "dbt" / context.run.run_id
    # `dbt build`: models and their tests in DAG order, so a failing test stops what depends on it.
    with dbt_environment(settings.duckdb_path):
        yield from dbt.cli(build_args(config), context=context, target_path=target).stream()


defs = dg.Definitions(
    assets=[cdp_dbt_models],
    resources={"dbt": DbtCliResource(project_dir=project, dbt_executable=dbt_executable())},
)
