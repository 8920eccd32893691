"""dbt as a subprocess on one warehouse file: the command line the benchmarks and tests share.

Dagster runs dbt through `DbtCliResource` (defs/dbt.py); everything else that needs a dbt run of its own
(a benchmark on generated data, a test on a hand-built warehouse) goes through `run_dbt`, so the
profile, target, artifact and log folders are chosen in one place.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from cdp_assets.settings import DBT_PROJECT_DIR


def dbt_executable() -> str:
    """The dbt beside this interpreter when there is one, so `.venv/bin/python` works without the venv
    on PATH; else the one on PATH."""
    beside = Path(sys.executable).parent / "dbt"
    return str(beside) if beside.exists() else (shutil.which("dbt") or "dbt")


def run_dbt(
    args: Sequence[str],
    warehouse: Path,
    workdir: Path,
    variables: Mapping[str, Any] | None = None,
    timeout: float | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run `dbt <args>` with the dev target on the DuckDB file `warehouse`; artifacts (run_results.json)
    go to `workdir/dbt_target`, logs to `workdir/dbt_logs`. The caller checks the return code."""
    command = [
        dbt_executable(),
        *args,
        "--project-dir",
        str(DBT_PROJECT_DIR),
        "--profiles-dir",
        str(DBT_PROJECT_DIR),
        "--target",
        "dev",
        "--target-path",
        str(workdir / "dbt_target"),
        "--log-path",
        str(workdir / "dbt_logs"),
    ]
    if variables:
        command += ["--vars", yaml.safe_dump(dict(variables), default_flow_style=True)]
    env = {**os.environ, "CDP_DUCKDB_PATH": str(warehouse)}
    return subprocess.run(command, cwd=workdir, env=env, capture_output=True, text=True, timeout=timeout, check=False)
