"""The `cdp` command as users run it: a subprocess, its last line of output being JSON."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest


def cdp(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [sys.executable, "-m", "cdp_assets.cli", *args], capture_output=True, text=True, env=dict(os.environ)
    )
    if check and result.returncode != 0:
        raise AssertionError(f"cdp {' '.join(args)} failed ({result.returncode}):\n{result.stderr}")
    return result


def last_json(result: subprocess.CompletedProcess) -> dict:
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_generate_then_load_accounts_for_every_line(isolated_env: Path) -> None:
    generated = last_json(
        cdp(
            "generate-events",
            "--events",
            "3000",
            "--seed",
            "3",
            "--start",
            "2026-11-01T00:00:00Z",
            "--bad-fraction",
            "0.02",
        )
    )
    assert generated["events"] == 3000
    assert sum(generated["bad_lines_by_reason"].values()) == 60

    summary = last_json(cdp("load-events"))
    for key in ("files", "lines", "loaded", "filtered", "duplicates", "discarded"):
        assert isinstance(summary[key], int), key
    assert summary["files"] == generated["files"]
    assert summary["lines"] == 3000
    assert summary["lines"] == summary["loaded"] + summary["filtered"] + summary["duplicates"] + summary["discarded"]
    # The generator's bad lines: five kinds are discarded, duplicates are duplicates, type conflicts load.
    bad = generated["bad_lines_by_reason"]
    assert summary["discarded"] == sum(
        bad[k] for k in ("invalid_json", "not_an_object", "missing_ids", "unknown_type", "oversized")
    )
    assert summary["duplicates"] == bad["duplicate"]
    assert summary["discard_reasons"] == {
        k: bad[k] for k in ("invalid_json", "not_an_object", "missing_ids", "unknown_type", "oversized")
    }
    assert summary["tables"]["pages"] > 0 and summary["tables"]["identifies"] > 0

    with duckdb.connect(str(isolated_env / "warehouse.duckdb"), read_only=True) as conn:
        tracks = conn.execute("SELECT count(*) FROM event_stream.tracks").fetchone()[0]
        assert tracks == summary["tables"]["tracks"]
        # The generator's type conflicts (a string `revenue`) arrive in the same batch as the numbers, and
        # within a batch a string wins (RudderStack's rule): the column is text and no value is lost.
        revenue = conn.execute(
            "SELECT data_type FROM duckdb_columns() WHERE schema_name = 'event_stream' "
            "AND table_name = 'pricing_calculated' AND column_name = 'revenue'"
        ).fetchone()
        assert revenue == ("VARCHAR",)

    again = last_json(cdp("load-events"))
    assert (again["files"], again["lines"], again["loaded"]) == (0, 0, 0)


def test_load_into_another_warehouse_and_reload_a_range(isolated_env: Path, tmp_path: Path) -> None:
    cdp("generate-events", "--events", "500", "--start", "2026-11-01T00:00:00Z")
    other = tmp_path / "other.duckdb"
    first = last_json(cdp("load-events", "--warehouse", str(other)))
    assert first["loaded"] == 500 and other.exists()
    assert not (isolated_env / "warehouse.duckdb").exists()

    cdp("load-events")
    reloaded = last_json(cdp("reload-events", "--from", "2026-10-01", "--to", "2026-12-31"))
    assert reloaded["loaded"] == 500 and reloaded["duplicates"] == 0
    assert sum(reloaded["forgotten"].get(t, 0) for t in ("pages", "identifies", "tracks", "groups", "aliases")) > 0


def test_bad_arguments_get_clear_errors(isolated_env: Path) -> None:
    result = cdp("load-events", "--transformations", "no_such_rule", check=False)
    assert result.returncode == 1
    assert "unknown transformation(s) no_such_rule" in result.stderr
    assert "Traceback" not in result.stderr

    result = cdp("generate-events", "--events", "10", "--bad-fraction", "0.9", check=False)
    assert result.returncode == 2 and "between 0 and 0.5" in result.stderr

    os.environ["CDP_ENV"] = "staging"
    try:
        result = cdp("load-events", check=False)
    finally:
        del os.environ["CDP_ENV"]
    assert result.returncode == 2 and "CDP_ENV must be one of local, prod" in result.stderr

    result = cdp("load-events", "--landing", "ftp://example.com/x", check=False)
    assert result.returncode == 1 and "unsupported landing URL" in result.stderr


@pytest.mark.parametrize("bad", ["not-a-date", "2026-13-01"])
def test_reload_rejects_bad_dates(bad: str) -> None:
    result = cdp("reload-events", "--from", bad, "--to", "2026-11-02", check=False)
    assert result.returncode == 2 and "not a date" in result.stderr


def test_bench_ingest_runs_on_small_data(tmp_path: Path) -> None:
    kept = tmp_path / "kept"
    result = cdp("bench", "ingest", "--events", "3000", "--keep-files", str(kept))
    report = last_json(result)
    assert report["files_reused"] is False and report["generate_seconds"] > 0
    # A few generated server events are routed away from the warehouse (integrations.Snowflake false).
    assert report["events"] == report["lines"] == 3000
    assert report["loaded"] + report["filtered"] == 3000 and report["loaded"] > 2900
    for key in ("load_seconds", "naive_seconds", "load_events_per_s", "naive_events_per_s", "load_peak_mb"):
        assert report[key] > 0, key
    assert report["ratio_load_to_naive"] == pytest.approx(report["load_seconds"] / report["naive_seconds"], rel=0.1)
    assert "naive load" in result.stderr and "event load" in result.stderr
    # Where the event load's time went: every phase measured, together at most the whole child run.
    phases = report["load_phase_seconds"]
    assert set(phases) == {"stage", "classify", "write", "record", "commit"}
    assert all(s >= 0 for s in phases.values()) and sum(phases.values()) <= report["load_seconds"]
    assert "event load by phase: stage" in result.stderr
    # The kept files serve the next run of the same size and seed: the same lines, nothing generated.
    # This time the load deduplicates against earlier messages first recorded in its ledger.
    # Two rounds this time: the medians of both, and each round's pair.
    result = cdp(
        "bench", "ingest", "--events", "3000", "--keep-files", str(kept), "--history", "20000", "--rounds", "2"
    )
    again = last_json(result)
    assert again["files_reused"] is True and again["generate_seconds"] is None
    assert (again["files"], again["lines"], again["loaded"]) == (report["files"], report["lines"], report["loaded"])
    assert report["history_messages"] == 0 and again["history_messages"] == 20000
    assert "deduplicated against 20,000 earlier messages" in result.stderr
    assert len(report["rounds"]) == 1 and len(again["rounds"]) == 2
    ratios = [r["ratio"] for r in again["rounds"]]
    assert again["ratio_load_to_naive"] == pytest.approx(sum(ratios) / 2, abs=0.011)
    assert again["load_seconds"] == pytest.approx(sum(r["load_seconds"] for r in again["rounds"]) / 2, abs=0.011)
    assert "medians of 2 rounds" in result.stderr


def test_sandbox_serves_every_stand_in_until_stopped(isolated_env: Path) -> None:
    import signal
    import time
    import urllib.error
    import urllib.request

    proc = subprocess.Popen(
        [sys.executable, "-m", "cdp_assets.cli", "sandbox"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        urls = json.loads(proc.stdout.readline())
        assert set(urls) == {"salesforce", "stripe", "google_ads", "facebook_ads", "customerio"}
        assert all(u.startswith(("http://127.0.0.1:", "grpc://127.0.0.1:")) for u in urls.values())
        assert json.loads((isolated_env / "sandbox.json").read_text()) == urls
        # It answers as Stripe does: no key, a 401 in Stripe's error shape.
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with pytest.raises(urllib.error.HTTPError) as refused:
            opener.open(urls["stripe"] + "/v1/customers?limit=1", timeout=5)
        assert refused.value.code == 401
        assert "error" in json.loads(refused.value.read())
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)
    deadline = time.monotonic() + 5
    while (isolated_env / "sandbox.json").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not (isolated_env / "sandbox.json").exists()


def test_bad_locations_are_clear_errors_not_tracebacks(isolated_env: Path, tmp_path: Path) -> None:
    # A landing folder that does not exist loads nothing, with a warning (most often a typo).
    missing = cdp("load-events", "--landing", str(tmp_path / "nope"), "--warehouse", str(tmp_path / "wh.duckdb"))
    assert "does not exist: nothing to load" in missing.stderr and last_json(missing)["files"] == 0
    for args, message in [
        (("generate-events", "--out", "/proc/nope", "--events", "10"), "cannot write"),
        (("load-events", "--landing", str(tmp_path), "--warehouse", "/proc/nope/wh.duckdb"), "cannot create"),
    ]:
        result = cdp(*args, check=False)
        assert result.returncode != 0 and "Traceback" not in result.stderr, result.stderr
        assert message in result.stderr
