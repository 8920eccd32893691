"""`cdp bench ingest`: the event load against a naive DuckDB load of the same files, in one run.

Generation is not timed. Each load runs in its own child process on a fresh warehouse file, so each
one's peak memory is its own (read from the child's rusage) and neither warms the other's caches more
than the page cache does.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cdp_assets.event_stream.landing import LocalLandingStore
from cdp_assets.sandbox.event_generator import generate_events

NAIVE_SQL = "CREATE TABLE raw AS SELECT * FROM read_json_auto(?, format = 'newline_delimited', ignore_errors = true)"


@dataclass
class Run:
    seconds: float
    peak_mb: float
    output: dict


def _child(args: list[str]) -> Run:
    """Run `python -m cdp_assets.bench.ingest <args>` and read its peak RSS from the OS."""
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "cdp_assets.bench.ingest", *args], stdout=subprocess.PIPE, text=True)
    _pid, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    out = proc.stdout.read() if proc.stdout else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"benchmark child {args[0]} failed:\n{out}")
    return Run(seconds, usage.ru_maxrss / 1024, json.loads(out.strip().splitlines()[-1]))


def run(events: int, seed: int = 7, workdir: Path | None = None, chunk_files: int | None = None) -> dict:
    with tempfile.TemporaryDirectory(prefix="cdp-bench-", dir=workdir) as tmp:
        root = Path(tmp)
        landing = root / "landing"
        t = time.perf_counter()
        generated = generate_events(
            LocalLandingStore(landing), events, seed=seed, start=datetime(2026, 11, 1, tzinfo=UTC)
        )
        gen_seconds = time.perf_counter() - t
        files = sorted(str(p) for p in landing.rglob("*.json.gz"))
        size = sum(Path(f).stat().st_size for f in files)
        args = ["load", str(landing), str(root / "cdp.duckdb")]
        if chunk_files:
            args.append(str(chunk_files))
        ours = _child(args)
        naive = _child(["naive", str(landing), str(root / "naive.duckdb")])
    lines = ours.output["lines"]
    result = {
        "events": events,
        "files": len(files),
        "compressed_mb": round(size / 1e6, 1),
        "generate_seconds": round(gen_seconds, 1),
        "load_seconds": round(ours.seconds, 2),
        "load_events_per_s": round(lines / ours.seconds),
        "load_peak_mb": round(ours.peak_mb),
        "naive_seconds": round(naive.seconds, 2),
        "naive_events_per_s": round(naive.output["rows"] / naive.seconds),
        "naive_peak_mb": round(naive.peak_mb),
        "ratio_load_to_naive": round(ours.seconds / naive.seconds, 2),
        "loaded": ours.output["loaded"],
        "discarded": ours.output["discarded"],
        "tables": len(ours.output["tables"]),
        "generated_lines": generated.events,
    }
    return result


def _load_child(landing: str, warehouse: str, chunk_files: str | None = None) -> None:
    from cdp_assets.event_stream.loader import LoadOptions, load_events
    from cdp_assets.warehouse.duckdb_engine import DuckDBWarehouse

    options = LoadOptions(chunk_files=int(chunk_files)) if chunk_files else LoadOptions()
    summary = load_events(LocalLandingStore(landing), DuckDBWarehouse(warehouse), options)
    print(json.dumps(summary.to_dict()))


def _naive_child(landing: str, warehouse: str) -> None:
    import duckdb

    files = sorted(str(p) for p in Path(landing).rglob("*.json.gz"))
    conn = duckdb.connect(warehouse)
    conn.execute(NAIVE_SQL, [files])
    rows = conn.execute("SELECT count(*) FROM raw").fetchone()[0]
    conn.close()
    print(json.dumps({"rows": rows, "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


if __name__ == "__main__":
    mode, *rest = sys.argv[1:]
    {"load": _load_child, "naive": _naive_child}[mode](*rest)
