"""`cdp bench identity` as users run it: a subprocess whose last line of output is the JSON report."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


def test_bench_identity_runs_on_small_data(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "cdp_assets.cli", "bench", "identity", "--edges", "5000", "--workdir", str(tmp_path)],
        capture_output=True,
        text=True,
        env=dict(os.environ),
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])

    assert report["edges"] == 5000
    assert report["identifiers"] > report["components"] > 0
    assert report["longest_chain"] == 50
    model, naive = report["identity_model"], report["naive_propagation"]
    # both find union-find's partition; the model needs far fewer rounds than the chain is long
    assert model["partition_matches_union_find"] is True
    assert naive["partition_matches_union_find"] is True
    assert naive["rounds"] >= report["longest_chain"] // 2
    assert 1 <= model["rounds"] <= 12 < naive["rounds"]
    for seconds in (model["seconds"], model["dbt_wall_seconds"], naive["seconds"], report["union_find"]["seconds"]):
        assert seconds > 0
    assert "identity model (dbt)" in result.stderr and "naive propagation" in result.stderr
    assert list(tmp_path.iterdir()) == []  # the benchmark's warehouse is gone
