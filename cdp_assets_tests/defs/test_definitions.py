"""The code location loads, in process and through the `dagster` CLI, with the expected surface."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import yaml

from cdp_assets.event_stream.tracking_plan import TRACKED_EVENTS
from cdp_assets_tests.defs.helpers import VENV_BIN, event_stream_keys

REPO = Path(__file__).resolve().parents[2]
STANDARD = {"tracks", "pages", "identifies", "users", "screens", "groups", "aliases", "rudder_discards"}
# `dagster definitions validate` includes interpreter start-up and every import; a load this slow
# makes `dagster dev` reloads and every run worker start painful (P9).
MAX_LOAD_SECONDS = 15.0


def test_definitions_load_and_validate(defs: dg.Definitions) -> None:
    dg.Definitions.validate_loadable(defs)
    keys = {k.to_user_string() for k in event_stream_keys(defs)}
    assert keys == {f"event_stream/{t}" for t in STANDARD} | {f"event_stream/{e.table}" for e in TRACKED_EVENTS}
    assert "event_stream/signed_up" in keys and "event_stream/form_submit" in keys

    graph = defs.resolve_asset_graph()
    # dbt models are keyed by name, grouped by folder, and hang off the loader's keys (sources.yml meta).
    stg_tracks = graph.get(dg.AssetKey("stg_tracks"))
    assert stg_tracks.group_name == "staging"
    assert dg.AssetKey(["event_stream", "tracks"]) in stg_tracks.parent_keys
    assert {graph.get(k).group_name for k in event_stream_keys(defs)} == {"event_stream"}
    checks = {c.to_user_string() for c in graph.asset_check_keys}
    assert "event_stream/tracks:message_id_unique" in checks
    assert "event_stream/rudder_discards:discards_ratio" in checks
    assert "event_stream/tracks:tracks_fresh" in checks
    assert "stg_tracks:unique_stg_tracks_message_id" in checks  # a dbt test, as an asset check

    for name in ("event_stream_job", "event_stream_reload_job", "cdp_main_job"):
        # One step at a time in one process: the load closes DuckDB before dbt opens it.
        assert defs.resolve_job_def(name).executor_def.name == "in_process"
    assert defs.resolve_sensor_def("landing_files_sensor").minimum_interval_seconds == 30
    assert defs.resolve_schedule_def("event_stream_schedule").cron_schedule == "*/30 * * * *"


def test_every_warehouse_writer_shares_one_pool(defs: dg.Definitions) -> None:
    for job_name in ("event_stream_job", "event_stream_reload_job", "cdp_main_job"):
        job = defs.resolve_job_def(job_name)
        pools = {node.name: node.definition.pool for node in job.graph.nodes}
        assert pools["event_stream_load"] == "warehouse_writer", job_name
        assert pools["cdp_dbt_models"] == "warehouse_writer", job_name


def test_instance_template_queues_runs_that_need_a_busy_pool() -> None:
    template = yaml.safe_load((REPO / "cdp_assets" / "defs" / "dagster.yaml").read_text())
    with dg.instance_for_test(overrides=template) as instance:
        config = instance.get_concurrency_config()
        assert config.pool_config.default_pool_limit == 1
        assert config.pool_config.pool_granularity.value == "run"


def test_dagster_cli_validates_the_code_location(tmp_path: Path) -> None:
    env = {**os.environ, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    env.pop("DAGSTER_HOME", None)  # the CLI then uses a temporary home under its working directory
    dagster = VENV_BIN / "dagster" if (VENV_BIN / "dagster").exists() else Path(sys.executable).parent / "dagster"
    started = time.perf_counter()
    proc = subprocess.run(
        [str(dagster), "definitions", "validate", "-m", "cdp_assets.definitions"],
        cwd=tmp_path,  # it leaves .tmp_dagster_home_* in its working directory
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    seconds = time.perf_counter() - started
    print(f"\n`dagster definitions validate -m cdp_assets.definitions`: {seconds:.2f} s, exit {proc.returncode}")
    output = proc.stdout + proc.stderr
    print("\n".join(line for line in output.splitlines() if "alidation" in line or "passed" in line))
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "Validation successful for code location cdp_assets.definitions" in output
    assert seconds < MAX_LOAD_SECONDS
