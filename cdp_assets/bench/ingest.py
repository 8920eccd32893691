"""`cdp bench ingest`: the event load against a naive DuckDB load of the same files, in one run.

Generation is not timed. Each load runs in its own child process on a fresh warehouse file, so each
one's peak memory is its own (read from the child's rusage) and neither warms the other's caches more
than the page cache does.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from statistics import median

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


def run(
    events: int,
    seed: int = 7,
    workdir: Path | None = None,
    files_dir: Path | None = None,
    history: int = 0,
    rounds: int = 1,
) -> dict:
    """Generate `events` events (not timed), then time our load and the naive load of the same files.

    Our load also runs on the first quarter of the files alone: its peak memory, next to the full run's,
    shows whether memory grows with the number of files (it should not: a chunk bounds it).
    With `files_dir`, the generated files are kept there and reused by the next run of the same size and
    seed (generation takes about as long as the loads). With `history`, the full load's warehouse first
    records that many earlier messages (not timed), as a warehouse that has been loading for a while
    has: every load deduplicates against all of them.

    With `rounds` > 1 the two loads run that many times, back to back, each round in the other order (a
    machine whose speed drifts then favours neither), and the figures reported are the medians: the
    speed of a shared machine can swing by a quarter within minutes, more than one pair can tell apart.
    Every round's pair is in `rounds`; peak memory is the highest of any round.
    """
    with tempfile.TemporaryDirectory(prefix="cdp-bench-", dir=workdir) as tmp:
        root = Path(tmp)
        landing, gen_seconds, generated_lines = _landing(root, events, seed, files_dir)
        files = sorted(landing.rglob("*.json.gz"))
        size = sum(f.stat().st_size for f in files)
        quarter = root / "quarter"
        for f in files[: max(1, len(files) // 4)]:
            target = quarter / f.relative_to(landing)
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(f, target)
            except OSError:  # another file system than the kept files
                shutil.copyfile(f, target)
        small = _child(["load", str(quarter), str(root / "quarter.duckdb")])
        pairs = [_round(root, landing, history, naive_first=index % 2 == 1) for index in range(rounds)]
    ours, naive = pairs[0]
    # The phases of the round whose event load took the median time (the lower one of an even count).
    typical = sorted((o for o, _n in pairs), key=lambda o: o.seconds)[(len(pairs) - 1) // 2]
    for other, _naive in pairs:
        if {k: other.output[k] for k in _COUNTS} != {k: ours.output[k] for k in _COUNTS}:
            raise RuntimeError("the event load's counts differ between rounds of the same files")
    load_seconds = median(o.seconds for o, _n in pairs)
    naive_seconds = median(n.seconds for _o, n in pairs)
    lines = ours.output["lines"]
    result = {
        "events": events,
        "files": len(files),
        "compressed_mb": round(size / 1e6, 1),
        "generate_seconds": None if gen_seconds is None else round(gen_seconds, 1),
        "load_seconds": round(load_seconds, 2),
        "load_events_per_s": round(lines / load_seconds),
        "load_peak_mb": round(max(o.peak_mb for o, _n in pairs)),
        "naive_seconds": round(naive_seconds, 2),
        "naive_events_per_s": round(naive.output["rows"] / naive_seconds),
        "naive_peak_mb": round(max(n.peak_mb for _o, n in pairs)),
        "ratio_load_to_naive": round(median(o.seconds / n.seconds for o, n in pairs), 2),
        "rounds": [
            {
                "load_seconds": round(o.seconds, 2),
                "naive_seconds": round(n.seconds, 2),
                "ratio": round(o.seconds / n.seconds, 2),
            }
            for o, n in pairs
        ],
        "quarter_files_peak_mb": round(small.peak_mb),
        "lines": lines,
        "loaded": ours.output["loaded"],
        "filtered": ours.output["filtered"],
        "discarded": ours.output["discarded"],
        "tables": len(ours.output["tables"]),
        "load_phase_seconds": typical.output.get("phase_seconds", {}),
        "history_messages": history,
        "generated_lines": generated_lines,
        "files_reused": gen_seconds is None,
    }
    return result


# What every round's event load must agree on.
_COUNTS = ("lines", "loaded", "filtered", "duplicates", "discarded", "tables")


def _round(root: Path, landing: Path, history: int, naive_first: bool) -> tuple[Run, Run]:
    """One timed pair, each load on a fresh warehouse file (the last round's are removed first, so rounds
    do not fill the disk)."""
    warehouse, naive_file = root / "cdp.duckdb", root / "naive.duckdb"
    for path in (warehouse, naive_file):
        path.unlink(missing_ok=True)
        Path(f"{path}.wal").unlink(missing_ok=True)
    if history:
        recorded = _child(["history", str(warehouse), str(history)]).output["messages"]
        if recorded != history:
            raise RuntimeError(f"the ledger holds {recorded} earlier messages, not {history}")
    if naive_first:
        naive = _child(["naive", str(landing), str(naive_file)])
        ours = _child(["load", str(landing), str(warehouse)])
    else:
        ours = _child(["load", str(landing), str(warehouse)])
        naive = _child(["naive", str(landing), str(naive_file)])
    return ours, naive


def _landing(root: Path, events: int, seed: int, files_dir: Path | None) -> tuple[Path, float | None, int]:
    """The landing folder of the benchmark's files, the seconds generating them took (None: reused),
    and how many events they hold."""
    landing = root / "landing" if files_dir is None else files_dir / f"events-{events}-seed-{seed}"
    marker = landing / "generated.json"
    if files_dir is not None and marker.exists():
        return landing, None, json.loads(marker.read_text())["events"]
    if landing.exists():  # an interrupted generation: start again
        shutil.rmtree(landing)
    t = time.perf_counter()
    generated = generate_events(LocalLandingStore(landing), events, seed=seed, start=datetime(2026, 11, 1, tzinfo=UTC))
    seconds = time.perf_counter() - t
    # Written last, so a folder with it holds every file.
    marker.write_text(json.dumps({"events": generated.events, "seed": seed}))
    return landing, seconds, generated.events


def format_report(result: dict) -> str:
    r = result
    return "\n".join(
        [
            f"cdp bench ingest: {r['events']:,} events in {r['files']:,} files ({r['compressed_mb']} MB gzip), "
            + (
                "reused from an earlier run"
                if r.get("files_reused")
                else f"generated in {r['generate_seconds']} s (not timed)"
            ),
            f"  event load   {r['load_seconds']:>8.2f} s  {r['load_events_per_s']:>9,} events/s  "
            f"peak {r['load_peak_mb']:,} MB  (a quarter of the files: peak {r['quarter_files_peak_mb']:,} MB)",
            f"  naive load   {r['naive_seconds']:>8.2f} s  {r['naive_events_per_s']:>9,} events/s  "
            f"peak {r['naive_peak_mb']:,} MB",
            *(
                [f"  the event load deduplicated against {r['history_messages']:,} earlier messages"]
                if r.get("history_messages")
                else []
            ),
            f"  ratio event load / naive: {r['ratio_load_to_naive']}x  "
            f"(loaded {r['loaded']:,}, discarded {r['discarded']:,}, {r['tables']} tables)",
            *(
                [
                    f"  medians of {len(r['rounds'])} rounds; each round's ratio: "
                    + ", ".join(f"{p['ratio']}x ({p['load_seconds']} / {p['naive_seconds']} s)" for p in r["rounds"])
                ]
                if len(r.get("rounds", [])) > 1
                else []
            ),
            "  event load by phase: "
            + ", ".join(f"{phase} {seconds:.1f} s" for phase, seconds in r.get("load_phase_seconds", {}).items()),
        ]
    )


def _load_child(landing: str, warehouse: str) -> None:
    from cdp_assets.event_stream.loader import load_events
    from cdp_assets.warehouse.duckdb_engine import DuckDBWarehouse

    summary = load_events(LocalLandingStore(landing), DuckDBWarehouse(warehouse))
    print(json.dumps(summary.to_dict()))


def _history_child(warehouse: str, messages: str) -> None:
    """Record `messages` earlier messages in the ledger of a new warehouse, as earlier loads would."""
    from cdp_assets.event_stream import ledger
    from cdp_assets.warehouse.duckdb_engine import DuckDBWarehouse

    with DuckDBWarehouse(warehouse).connect() as conn:
        ledger.ensure(conn)
        conn.execute(
            f"""INSERT INTO {ledger.SCHEMA}.messages (message_id, outcome, table_name, file_key, load_id, id_hash)
                SELECT id, 'loaded', 'tracks', 'bench-history', 'bench-history', {ledger.id_hash("id")}
                FROM (SELECT gen_random_uuid()::VARCHAR AS id FROM range($n))""",
            {"n": int(messages)},
        )
        recorded = conn.execute(f"SELECT count(*) FROM {ledger.SCHEMA}.messages").fetchone()[0]
    print(json.dumps({"messages": recorded}))


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
    {"load": _load_child, "naive": _naive_child, "history": _history_child}[mode](*rest)
