"""The SaaS extracts as Dagster assets: keys that join dbt, runs against the sandbox, run metadata."""

from __future__ import annotations

import dagster as dg
import duckdb
import pytest

from cdp_assets.defs.saas import SOURCES
from cdp_assets.sandbox.run import running, write_urls
from cdp_assets.settings import get_settings


def test_every_source_table_is_an_asset_in_its_group(defs: dg.Definitions) -> None:
    graph = defs.resolve_asset_graph()
    for name, source in SOURCES.items():
        tables = list(source.build(source.sandbox_config("http://127.0.0.1:9"), None).resources)
        for table in tables:
            key = dg.AssetKey([name, table])
            assert graph.has(key), key
            assert graph.get(key).group_name == name
    assert defs.get_schedule_def("saas_daily_schedule").cron_schedule == "0 5 * * *"


@pytest.mark.parametrize("name", list(SOURCES))
def test_an_extract_fills_its_raw_schema_from_its_own_sandbox(
    defs: dg.Definitions, instance: dg.DagsterInstance, name: str
) -> None:
    job = defs.resolve_implicit_global_asset_job_def()
    selection = [
        dg.AssetKey([name, t]) for t in SOURCES[name].build(SOURCES[name].sandbox_config("http://x:9"), None).resources
    ]
    result = job.execute_in_process(instance=instance, asset_selection=selection)
    assert result.success
    materializations = result.asset_materializations_for_node(f"{name}_extract")
    assert {m.asset_key for m in materializations} == set(selection)
    metadata = materializations[0].metadata
    assert metadata["sandbox"].value is True
    assert metadata["api_calls"].value > 0
    with duckdb.connect(str(get_settings().duckdb_path), read_only=True) as conn:
        rows = dict(
            conn.execute(
                "SELECT table_name, estimated_size FROM duckdb_tables() WHERE schema_name = ?", [f"raw_{name}"]
            ).fetchall()
        )
    loaded = {m.asset_key.path[1] for m in materializations if m.metadata.get("rows_loaded")}
    assert loaded and loaded <= set(rows), (loaded, rows)


def test_a_running_sandbox_is_used_and_a_second_run_loads_nothing_new(
    defs: dg.Definitions, instance: dg.DagsterInstance
) -> None:
    settings = get_settings()
    selection = [dg.AssetKey(["stripe", t]) for t in ("customers", "events")]
    job = defs.resolve_implicit_global_asset_job_def()

    def counts() -> tuple[int, int, int]:
        with duckdb.connect(str(settings.duckdb_path), read_only=True) as conn:
            return conn.execute(
                "SELECT (SELECT count(*) FROM raw_stripe.customers), (SELECT count(DISTINCT id) FROM "
                "raw_stripe.customers), (SELECT count(*) FROM raw_stripe.events)"
            ).fetchone()

    with running(("stripe",)) as started:
        write_urls(settings.data_dir / "sandbox.json", started)
        first = job.execute_in_process(instance=instance, asset_selection=selection)
        calls_after_first = len(started["stripe"].app.log)
        after_first = counts()
        second = job.execute_in_process(instance=instance, asset_selection=selection)
    assert first.success and second.success
    # Both runs asked the running sandbox (its request log grew), not one of their own.
    assert calls_after_first > 0 and len(started["stripe"].app.log) > calls_after_first
    # Nothing changed in the sandbox: merge keeps one row per id and the events feed adds nothing.
    assert counts() == after_first
    assert after_first[0] == after_first[1]


def test_dagster_asset_materialize_extracts_every_source_from_the_sandbox(isolated_env) -> None:
    """What a data engineer types: `dagster asset materialize`, in the local environment, no accounts."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    Path(os.environ["DAGSTER_HOME"]).mkdir(parents=True, exist_ok=True)
    selection = " or ".join(f"group:{name}" for name in SOURCES)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "dagster",
            "asset",
            "materialize",
            "-m",
            "cdp_assets.definitions",
            "--select",
            selection,
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    with duckdb.connect(str(get_settings().duckdb_path), read_only=True) as conn:
        filled = {
            schema: rows
            for schema, rows in conn.execute(
                "SELECT schema_name, sum(estimated_size) FROM duckdb_tables() WHERE schema_name LIKE 'raw_%' GROUP BY 1"
            ).fetchall()
        }
    # dlt also keeps a `<dataset>_staging` schema per source for its merges.
    assert {s for s in filled if not s.endswith("_staging")} == {f"raw_{name}" for name in SOURCES}
    assert all(filled[f"raw_{name}"] > 0 for name in SOURCES), filled
