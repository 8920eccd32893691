"""The `cdp` command: generate events, load them, run the main job, benchmark.

Every subcommand reads its defaults from the environment through `settings` and prints machine-readable
JSON as its last line of output, so scripts and tests can use it as well as people.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from datetime import UTC, date, datetime
from pathlib import Path

from cdp_assets.settings import SettingsError, get_settings


def _print_json(data: dict) -> None:
    print(json.dumps(data, default=str, separators=(",", ":")), flush=True)


def _parse_datetime(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not an ISO date-time: {text!r}") from exc
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _parse_date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from exc


def _fraction(text: str) -> float:
    value = float(text)
    if not 0 <= value <= 0.5:
        raise argparse.ArgumentTypeError("must be between 0 and 0.5")
    return value


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _non_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must be 0 or more")
    return value


# -- generate-events -----------------------------------------------------------------------------


def cmd_generate_events(args: argparse.Namespace) -> int:
    from cdp_assets.event_stream.landing import landing_store
    from cdp_assets.sandbox.event_generator import generate_events

    settings = get_settings()
    store = landing_store(args.out or settings.landing_url, settings.aws_endpoint_url)
    summary = generate_events(
        store,
        args.events,
        seed=args.seed,
        start=args.start,
        bad_fraction=args.bad_fraction,
        events_per_file=args.events_per_file,
    )
    print(f"wrote {summary.events} events in {len(summary.files)} files to {store.url}", file=sys.stderr)
    data = summary.to_dict()
    data["files"] = len(summary.files)
    _print_json(data)
    return 0


# -- load-events ---------------------------------------------------------------------------------


def _load_options(settings, chunk_files: int | None, transformations: str | None):
    from cdp_assets.event_stream.classify import Destination
    from cdp_assets.event_stream.loader import LoadOptions
    from cdp_assets.event_stream.transformations import resolve

    names = (
        tuple(n.strip() for n in transformations.split(",") if n.strip())
        if transformations is not None
        else settings.warehouse_transformations
    )
    return LoadOptions(
        chunk_files=chunk_files or settings.load_chunk_files,
        chunk_lines=settings.load_chunk_lines,
        chunk_bytes=settings.load_chunk_mb * 1024 * 1024,
        transformations=tuple(resolve(names)),
        destination=Destination(id="cdp-warehouse", type=settings.warehouse_engine.upper()),
    )


def _progress(event: str, data: dict) -> None:
    if event == "listed":
        print(f"{data['pending_files']} landing file(s) to load", file=sys.stderr, flush=True)
    elif event == "chunk_committed":
        print(f"chunk {data['chunk']}: {data['files']} file(s), {data['lines']} lines so far", file=sys.stderr)
    elif event == "finished":
        for skipped in data["skipped_files"]:
            print(f"cdp: warning: skipped {skipped['file']}: {skipped['reason']}", file=sys.stderr)


def _summary_line(summary) -> dict:
    data = summary.to_dict()
    keys = ("files", "lines", "loaded", "filtered", "duplicates", "discarded", "blank_lines", "value_discards")
    out = {key: data[key] for key in keys}
    out.update(
        tables=data["tables"],
        discard_reasons=data["discard_reasons"],
        filter_rules=data["filter_rules"],
        corrupt_files=data["corrupt_files"],
        skipped_files=data["skipped_files"],
        new_columns=data["new_columns"],
        seconds=data["seconds"],
        load_id=data["load_id"],
    )
    return out


def cmd_load_events(args: argparse.Namespace) -> int:
    from cdp_assets.event_stream.landing import landing_store
    from cdp_assets.event_stream.loader import load_events
    from cdp_assets.warehouse.duckdb_engine import DuckDBWarehouse

    settings = get_settings()
    store = landing_store(args.landing or settings.landing_url, settings.aws_endpoint_url)
    warehouse = DuckDBWarehouse(args.warehouse) if args.warehouse else _warehouse(settings)
    options = _load_options(settings, args.chunk_files, args.transformations)
    _warn_if_missing(store)
    summary = load_events(store, warehouse, options, progress=_progress)
    _print_json(_summary_line(summary))
    return 0


def _warn_if_missing(store) -> None:
    """A landing folder that does not exist holds nothing to load, which is no error for the sensor
    (nothing has landed yet) but is most often a typo on the command line: say so."""
    from cdp_assets.event_stream.landing import LocalLandingStore

    if isinstance(store, LocalLandingStore) and not store.root.exists():
        print(f"cdp: warning: the landing folder {store.root} does not exist: nothing to load", file=sys.stderr)


def cmd_reload_events(args: argparse.Namespace) -> int:
    from cdp_assets.event_stream.landing import landing_store
    from cdp_assets.event_stream.loader import forget_range, load_events

    if args.end < args.start:
        raise SystemExit("--to must not be before --from")
    settings = get_settings()
    store = landing_store(args.landing or settings.landing_url, settings.aws_endpoint_url)
    warehouse = _warehouse(settings)
    _warn_if_missing(store)
    forgotten = forget_range(warehouse, args.start, args.end, [f.key for f in store.list_files()])
    print(f"forgot {forgotten.files} file(s), rows {forgotten.rows}, uploads {args.start}..{args.end}", file=sys.stderr)
    if forgotten.kept_missing:
        print(
            f"kept what {len(forgotten.kept_missing)} file(s) no longer in {store.url} loaded "
            f"(they could not be loaded again): {', '.join(forgotten.kept_missing[:20])}",
            file=sys.stderr,
        )
    summary = load_events(store, warehouse, _load_options(settings, None, None), progress=_progress)
    _print_json(
        {
            **_summary_line(summary),
            "forgotten": {"files": forgotten.files, **forgotten.rows},
            "kept_missing_files": forgotten.kept_missing,
        }
    )
    return 0


def _warehouse(settings):
    from cdp_assets.warehouse import open_warehouse

    return open_warehouse(settings)


# -- demo ----------------------------------------------------------------------------------------


def prepare_dagster_home(home: Path) -> None:
    """Make DAGSTER_HOME exist with the project's instance config (run queue, no overlapping loads)."""
    home.mkdir(parents=True, exist_ok=True)
    template = Path(__file__).parent / "defs" / "dagster.yaml"
    target = home / "dagster.yaml"
    if template.exists() and not target.exists():
        shutil.copyfile(template, target)
    os.environ["DAGSTER_HOME"] = str(home)


def cmd_demo(args: argparse.Namespace) -> int:
    from cdp_assets.event_stream.landing import landing_store
    from cdp_assets.sandbox.event_generator import generate_events
    from cdp_assets.sandbox.world import EPOCH, HISTORY

    settings = get_settings()
    if settings.env != "local":
        raise SystemExit("cdp demo runs on the embedded default only (CDP_ENV=local)")
    if args.fresh and settings.data_dir.exists():
        shutil.rmtree(settings.data_dir)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("CDP_DUCKDB_PATH", str(settings.duckdb_path))
    prepare_dagster_home(settings.dagster_home)

    store = landing_store(settings.landing_url, settings.aws_endpoint_url)
    existing = sum(1 for _ in store.list_files())
    if existing:
        print(f"landing already has {existing} file(s): not generating (use --fresh to start over)", file=sys.stderr)
    else:
        # On the sandbox world's clock, so the web events and the SaaS stand-ins tell one story: consent
        # compares signals by time, and an opt-in stamped today would beat every opt-out the stand-ins
        # recorded in the world's past. (The tracks freshness check warns about it; that is expected.)
        summary = generate_events(
            store, args.events, seed=args.seed, bad_fraction=args.bad_fraction, start=EPOCH, span=HISTORY
        )
        print(f"generated {summary.events} events in {len(summary.files)} files", file=sys.stderr)

    from dagster import DagsterInstance

    from cdp_assets.definitions import build_definitions

    job = build_definitions().resolve_job_def("cdp_main_job")
    with DagsterInstance.get() as instance:
        # INFO, not DEBUG: the step logs matter here, the engine's event stream does not.
        run_config = {
            "loggers": {"console": {"config": {"log_level": "INFO"}}},
            # The stand-ins (extracts and syncs) serve the same world as the generated events.
            "resources": {"saas": {"config": {"seed": args.seed}}},
        }
        result = job.execute_in_process(instance=instance, raise_on_error=False, run_config=run_config)
    report = demo_report(settings, result.success, result.run_id)
    print(report["text"], file=sys.stderr)
    _print_json(report["data"])
    return 0 if result.success else 1


_LOAD_FIELDS = ("files", "lines", "loaded", "filtered", "duplicates", "discarded", "value_discards")
_MODEL_SCHEMAS = ("identity", "consent", "marts", "audiences", "sync")
_SYNC_FIELDS = (
    "status",
    "planned_adds",
    "planned_changes",
    "planned_removes",
    "sent",
    "accepted",
    "rejected",
    "skipped_consent",
    "api_calls",
)


def _sync_runs(conn, run_id: str) -> dict[str, dict]:
    """What each reverse-ETL sync of the run planned and sent, from its ledger (none before the first)."""
    exists = conn.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE schema_name = 'reverse_etl' AND table_name = 'sync_runs'"
    ).fetchone()[0]
    if not exists:
        return {}
    rows = conn.execute(
        f"SELECT sync, {', '.join(_SYNC_FIELDS)} FROM reverse_etl.sync_runs WHERE run_id = ? ORDER BY sync", [run_id]
    ).fetchall()
    return {row[0]: dict(zip(_SYNC_FIELDS, row[1:], strict=True)) for row in rows}


def demo_report(settings, success: bool, run_id: str) -> dict:
    """What the demo did, read back from the warehouse (rows per table, discards, where things are)."""
    import duckdb

    conn = duckdb.connect(str(settings.duckdb_path), read_only=True)
    try:
        tables = dict(
            conn.execute(
                "SELECT schema_name || '.' || table_name, estimated_size FROM duckdb_tables() "
                # dlt's own bookkeeping (_dlt_* tables, <dataset>_staging schemas) is not the demo's data.
                "WHERE (schema_name = 'event_stream' OR (starts_with(schema_name, 'raw_') "
                "AND NOT ends_with(schema_name, '_staging'))) AND NOT starts_with(table_name, '_dlt') "
                "ORDER BY schema_name <> 'event_stream', 1"
            ).fetchall()
        )
        views = [
            row[0]
            for row in conn.execute(
                "SELECT schema_name || '.' || view_name FROM duckdb_views() "
                "WHERE NOT internal AND schema_name = 'staging'"
            ).fetchall()
        ]
        last = conn.execute(
            f"SELECT {', '.join(_LOAD_FIELDS)} FROM event_load.loads ORDER BY started_at DESC LIMIT 1"
        ).fetchone()
        reasons = dict(conn.execute("SELECT reason, count(*) FROM event_load.load_errors GROUP BY 1").fetchall())
        models = dict(
            conn.execute(
                "SELECT schema_name || '.' || table_name, estimated_size FROM duckdb_tables() "
                f"WHERE schema_name IN ({', '.join(repr(s) for s in _MODEL_SCHEMAS)}) "
                "AND NOT ends_with(table_name, '_previous') ORDER BY 1"
            ).fetchall()
        )
        syncs = _sync_runs(conn, run_id)
    finally:
        conn.close()
    data = {
        "success": success,
        "run_id": run_id,
        "warehouse": str(settings.duckdb_path),
        "tables": tables,
        "staging_views": views,
        "last_load": dict(zip(_LOAD_FIELDS, last, strict=True)) if last else {},
        "discard_reasons": reasons,
        "models": models,
        "syncs": syncs,
    }
    lines = [
        f"main job {'succeeded' if success else 'FAILED'} (run {run_id})",
        f"warehouse: {settings.duckdb_path}",
        *(f"  {name:45s} {rows:>10,} rows" for name, rows in tables.items()),
        f"  staging views: {len(views)} ({', '.join(v for v in views if '__' not in v)}, and the SaaS ones)",
        f"line discards by reason: {reasons or 'none'}",
        "dbt models (identity, consent, marts, audiences, sync feeds):",
        *(f"  {name:45s} {rows:>10,} rows" for name, rows in models.items()),
        "reverse ETL (this run):" if syncs else "reverse ETL: no sync ran",
        *(
            f"  {name:38s} {s['status']:12s} planned +{s['planned_adds']} ~{s['planned_changes']} "
            f"-{s['planned_removes']}  sent {s['sent']}, accepted {s['accepted']}, rejected {s['rejected']}, "
            f"refused (consent) {s['skipped_consent']}, {s['api_calls']} API calls"
            for name, s in syncs.items()
        ),
        f"open the UI:  make ui   (or: DAGSTER_HOME={settings.dagster_home} .venv/bin/dagster dev)",
    ]
    return {"data": data, "text": "\n".join(lines)}


# -- sandbox -------------------------------------------------------------------------------------


def cmd_sandbox(args: argparse.Namespace) -> int:
    import signal
    import threading

    from cdp_assets.sandbox.run import SANDBOX_NAMES, running, write_urls

    settings = get_settings()
    names = tuple(args.only.split(",")) if args.only else SANDBOX_NAMES
    unknown = set(names) - set(SANDBOX_NAMES)
    if unknown:
        raise SystemExit(f"unknown stand-in(s): {', '.join(sorted(unknown))}; known: {', '.join(SANDBOX_NAMES)}")
    urls_file = settings.data_dir / "sandbox.json"
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with running(names, seed=args.seed) as started:
        write_urls(urls_file, started)
        for name, item in started.items():
            print(f"{name:14s} {item.url}", file=sys.stderr)
        print(
            f"URLs written to {urls_file}; local extracts use these stand-ins while they run. Ctrl-C stops.",
            file=sys.stderr,
        )
        _print_json({name: item.url for name, item in started.items()})
        try:
            while not stop.wait(1.0):
                pass
        except KeyboardInterrupt:
            pass
        finally:
            urls_file.unlink(missing_ok=True)
    return 0


# -- bench ---------------------------------------------------------------------------------------


def cmd_bench_ingest(args: argparse.Namespace) -> int:
    from cdp_assets.bench.ingest import format_report, run

    result = run(
        args.events,
        seed=args.seed,
        workdir=args.workdir,
        files_dir=args.keep_files,
        history=args.history,
        rounds=args.rounds,
    )
    print(format_report(result), file=sys.stderr)
    _print_json(result)
    return 0


def cmd_bench_reverse_etl(args: argparse.Namespace) -> int:
    from cdp_assets.bench.reverse_etl import format_report, run

    result = run(args.rows, args.changed, workdir=args.workdir)
    print(format_report(result), file=sys.stderr)
    _print_json(result)
    return 0


def cmd_bench_identity(args: argparse.Namespace) -> int:
    from cdp_assets.bench.identity import format_report, run

    result = run(args.edges, seed=args.seed, max_chain=args.max_chain, workdir=args.workdir)
    print(format_report(result), file=sys.stderr)
    _print_json(result)
    return 0


# -- parser --------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cdp", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    gen = sub.add_parser("generate-events", help="write synthetic RudderStack dump files")
    gen.add_argument("--out", help="folder or s3://bucket/prefix (default: CDP_LANDING_URL)")
    gen.add_argument("--events", type=_positive, required=True)
    gen.add_argument("--seed", type=int, default=7)
    gen.add_argument("--start", type=_parse_datetime, help="time of the first event (default: ends about now)")
    gen.add_argument("--bad-fraction", type=_fraction, default=0.0, help="share of bad lines, 0..0.5")
    gen.add_argument("--events-per-file", type=_positive, default=10_000)
    gen.set_defaults(func=cmd_generate_events)

    load = sub.add_parser("load-events", help="load new landing files into the warehouse")
    load.add_argument("--landing", help="folder or s3://bucket/prefix (default: CDP_LANDING_URL)")
    load.add_argument("--warehouse", help="DuckDB file (default: CDP_DUCKDB_PATH)")
    load.add_argument("--chunk-files", type=_positive, help="at most this many files per transaction")
    load.add_argument("--transformations", help="comma-separated names (default: CDP_WAREHOUSE_TRANSFORMATIONS)")
    load.set_defaults(func=cmd_load_events)

    reload = sub.add_parser("reload-events", help="backfill: load again the files uploaded in a date range")
    reload.add_argument("--from", dest="start", type=_parse_date, required=True)
    reload.add_argument("--to", dest="end", type=_parse_date, required=True)
    reload.add_argument("--landing", help="folder or s3://bucket/prefix (default: CDP_LANDING_URL)")
    reload.set_defaults(func=cmd_reload_events)

    demo = sub.add_parser("demo", help="run the main job end to end on the embedded default")
    demo.add_argument("--events", type=_positive, default=50_000)
    demo.add_argument("--seed", type=int, default=7)
    demo.add_argument("--bad-fraction", type=_fraction, default=0.002)
    demo.add_argument("--fresh", action="store_true", help="delete the data folder first")
    demo.set_defaults(func=cmd_demo)

    sandbox = sub.add_parser("sandbox", help="run the SaaS stand-ins on 127.0.0.1 until stopped")
    sandbox.add_argument("--seed", type=int, default=7)
    sandbox.add_argument("--only", help="comma-separated stand-ins (default: all)")
    sandbox.set_defaults(func=cmd_sandbox)

    bench = sub.add_parser("bench", help="benchmarks")
    bench_sub = bench.add_subparsers(dest="bench", required=True)
    ingest = bench_sub.add_parser("ingest", help="event load against a naive DuckDB load of the same files")
    ingest.add_argument("--events", type=_positive, default=1_000_000)
    ingest.add_argument("--seed", type=int, default=7)
    ingest.add_argument("--workdir", type=Path, help="where the benchmark's warehouses go (default: a temp folder)")
    ingest.add_argument(
        "--keep-files",
        type=Path,
        metavar="DIR",
        help="keep the generated files in DIR and reuse them in later runs of the same --events and --seed",
    )
    ingest.add_argument(
        "--history",
        type=_non_negative,
        default=0,
        metavar="N",
        help="first record N earlier messages in the event load's ledger (deduplication checks every one)",
    )
    ingest.add_argument(
        "--rounds",
        type=_positive,
        default=1,
        metavar="N",
        help="time both loads N times, alternating which goes first, and report the medians and every round",
    )
    ingest.set_defaults(func=cmd_bench_ingest)
    retl = bench_sub.add_parser("reverse-etl", help="the sync diff engine against a naive Python comparison")
    retl.add_argument("--rows", type=_positive, default=1_000_000)
    retl.add_argument("--changed", type=_fraction, default=0.01, help="share of rows changed since the last sync")
    retl.add_argument("--workdir", type=Path, help="where the benchmark's warehouse goes (default: a temp folder)")
    retl.set_defaults(func=cmd_bench_reverse_etl)
    identity = bench_sub.add_parser(
        "identity", help="the identity model's connected components against naive propagation and union-find"
    )
    identity.add_argument("--edges", type=_positive, default=1_000_000)
    identity.add_argument("--seed", type=int, default=7)
    identity.add_argument(
        "--max-chain", type=_positive, help="identifiers in the longest chain (default: edges/100, at most 1,000)"
    )
    identity.add_argument("--workdir", type=Path, help="where the benchmark's warehouse goes (default: a temp folder)")
    identity.set_defaults(func=cmd_bench_identity)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except SettingsError as exc:
        print(f"cdp: configuration error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # the command line reports, it does not dump a traceback at users
        from cdp_assets.event_stream.landing import LandingError
        from cdp_assets.event_stream.transformations import UnknownTransformation
        from cdp_assets.warehouse import WarehouseError

        if isinstance(exc, LandingError | WarehouseError | UnknownTransformation):
            print(f"cdp: {exc}", file=sys.stderr)
            return 1
        raise


if __name__ == "__main__":
    sys.exit(main())
