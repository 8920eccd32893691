"""The event load: new landing files into RudderStack's warehouse tables, exactly once.

`load_events` lists the landing location, keeps the file versions the ledger has not seen, and loads
them in chunks of files. Each chunk is one transaction (event rows, discards, users, ledger), so a load
that is killed loses at most the chunk in flight, and running it again loads exactly what is missing.
Every line read is accounted for: loaded + filtered + duplicates + discarded = lines.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable, Collection, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime

import duckdb

from cdp_assets.event_stream import ledger, spec
from cdp_assets.event_stream.chunking import ChunkLimits, ChunkPlanner, target_lines
from cdp_assets.event_stream.classify import Destination, classify, counts_by_file, discard_late
from cdp_assets.event_stream.discovery import KnownPaths, UnreadableSample, discover, key_pointers, unreadable_lines
from cdp_assets.event_stream.fast_path import FastPathMiss
from cdp_assets.event_stream.flatten import Shape
from cdp_assets.event_stream.landing import LandingFile, LandingFileGone, LandingStore
from cdp_assets.event_stream.naming import quote
from cdp_assets.event_stream.staging import RAW_TEXT_LIMIT, StagedFile, create_stage, stage_size
from cdp_assets.event_stream.transformations import Transformation
from cdp_assets.event_stream.value_sql import install_macros
from cdp_assets.event_stream.writer import TableWrite, TableWriter
from cdp_assets.warehouse import Warehouse, WarehouseError, transaction

Progress = Callable[[str, dict], None]
# How many times a batch is extracted again when values turn out to be objects where discovery saw
# scalars (each time teaches the loader the new objects).
MAX_SHAPE_ATTEMPTS = 4


@dataclass
class LoadSummary:
    load_id: str
    landing_url: str
    warehouse: str
    files: int = 0
    lines: int = 0
    loaded: int = 0
    filtered: int = 0
    duplicates: int = 0
    discarded: int = 0
    blank_lines: int = 0
    value_discards: int = 0
    chunks: int = 0
    seconds: float = 0.0
    tables: dict[str, int] = field(default_factory=dict)
    new_columns: dict[str, list[str]] = field(default_factory=dict)
    discard_reasons: dict[str, int] = field(default_factory=dict)
    filter_rules: dict[str, int] = field(default_factory=dict)
    corrupt_files: list[dict] = field(default_factory=list)
    # Listed files that could not be read when their turn came (deleted or replaced since): not in the
    # ledger, so the next load tries them again.
    skipped_files: list[dict] = field(default_factory=list)
    # Table writes that went straight from the parse; and per table, how many times its fast-path insert
    # met a value needing the checks (a new object, a misfit, a new column) and made a chunk rewrite.
    fast_path_writes: int = 0
    fast_path_misses: dict[str, int] = field(default_factory=dict)
    # Where the time went, summed over the chunks: reading lines (stage), deciding each line's fate
    # (classify), flattening, typing and inserting (write), the ledger rows (record), and commit.
    phase_seconds: dict[str, float] = field(default_factory=dict)

    def timed(self, phase: str, started: float) -> float:
        """Add the time since `started` to `phase`; return now, for the next phase to start from."""
        now = time.perf_counter()
        self.phase_seconds[phase] = round(self.phase_seconds.get(phase, 0.0) + now - started, 3)
        return now

    @property
    def balanced(self) -> bool:
        return self.lines == self.loaded + self.filtered + self.duplicates + self.discarded

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class LoadOptions:
    # A chunk is one transaction of whole files: about `chunk_lines` lines (None: one row group per
    # engine thread, see chunking), within caps on compressed bytes, estimated text and files.
    chunk_lines: int | None = None
    chunk_bytes: int = 64 * 1024 * 1024
    chunk_text_bytes: int = 480 * 1024 * 1024
    chunk_files: int = 2000
    transformations: tuple[Transformation, ...] = ()
    destination: Destination = Destination(id="cdp-warehouse", type="DUCKDB")
    schema: str = spec.SCHEMA
    # Insert tables whose columns all exist straight from the parse (see writer.TableWriter).
    fast_path: bool = True


def _planner(conn: duckdb.DuckDBPyConnection, options: LoadOptions) -> ChunkPlanner:
    threads = int(conn.execute("SELECT current_setting('threads')").fetchone()[0])
    return ChunkPlanner(
        ChunkLimits(
            lines=options.chunk_lines or target_lines(threads),
            compressed_bytes=options.chunk_bytes,
            text_bytes=options.chunk_text_bytes,
            files=options.chunk_files,
        )
    )


def load_events(
    landing: LandingStore,
    warehouse: Warehouse,
    options: LoadOptions | None = None,
    progress: Progress | None = None,
) -> LoadSummary:
    """Load every landing file version not yet in the ledger; return what happened to every line."""
    options = options or LoadOptions()
    if warehouse.engine != "duckdb":
        raise WarehouseError(f"the event load has no {warehouse.engine} engine yet")
    notify = progress or (lambda _event, _data: None)
    started = datetime.now(UTC)
    clock = time.perf_counter()
    summary = LoadSummary(load_id=_new_load_id(started), landing_url=landing.url, warehouse=warehouse.describe())
    with _sole_writer(warehouse), warehouse.connect() as conn, _no_vacuum(conn):
        _prepare(conn, options)
        pending = deque(ledger.pending(landing.list_files(), ledger.loaded_versions(conn)))
        notify("listed", {"pending_files": len(pending)})
        known = ledger.known_paths(conn)
        planner = _planner(conn, options)
        while pending:
            chunk = planner.take(pending)
            lines, text_bytes = _load_chunk(conn, landing, chunk, options, summary, known)
            planner.observe(sum(file.size for file in chunk), lines, text_bytes)
            summary.chunks += 1
            notify("chunk_committed", {"chunk": summary.chunks, "files": len(chunk), "lines": summary.lines})
        summary.seconds = round(time.perf_counter() - clock, 3)
        _record_load(conn, summary, started)
    notify("finished", summary.to_dict())
    return summary


# One lock per warehouse for the loads of this process. Connections of one process share one DuckDB
# instance (see duckdb_engine), so DuckDB's file lock does not keep a second load out: two, run at once,
# would both see the same files pending and load them twice. (Processes are kept apart by that lock, and
# Dagster runs by their pool.)
_WRITER_LOCKS: dict[str, threading.Lock] = {}
_WRITER_LOCKS_GUARD = threading.Lock()


@contextlib.contextmanager
def _sole_writer(warehouse: Warehouse) -> Iterator[None]:
    with _WRITER_LOCKS_GUARD:
        lock = _WRITER_LOCKS.setdefault(warehouse.describe(), threading.Lock())
    with lock:
        yield


def _new_load_id(started: datetime) -> str:
    return f"{started.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:8]}"


@contextlib.contextmanager
def _no_vacuum(conn: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """Commit chunks without merging row groups at their checkpoints.

    A chunk's insert into a big table ends its row groups with a partial one, and the next chunk's
    insert can start with a small one; DuckDB's checkpoint then rewrites (decompresses and compresses
    again) the partial row groups and everything it merges them with, on one thread, at every commit:
    2-8 s of a 1M-event load, more in a warehouse that already holds data. Without it, a chunk that
    inserts more than a row group into a table may leave a small row group there (a few thousand rows):
    the table scans at the same speed (measured on 1M pages) and the file is no bigger, and a later
    checkpoint with vacuum on (a backfill's delete, say) merges them. The setting is global to the database
    instance, so it is put back when the load ends, after a checkpoint: otherwise the one DuckDB runs
    when the connection closes would do the merging.
    """
    conn.execute("SET max_vacuum_tasks = 0")
    try:
        yield
    finally:
        # It fails while another connection's transaction is open; the checkpoint at close then merges.
        with contextlib.suppress(duckdb.Error):
            conn.execute("CHECKPOINT")
        conn.execute("RESET max_vacuum_tasks")


def _prepare(conn: duckdb.DuckDBPyConnection, options: LoadOptions) -> None:
    install_macros(conn)
    with transaction(conn):
        ledger.ensure(conn)
        TableWriter(conn, options.schema, datetime.now(UTC)).ensure_standard_tables()


def _load_chunk(
    conn: duckdb.DuckDBPyConnection,
    landing: LandingStore,
    chunk: list[LandingFile],
    options: LoadOptions,
    summary: LoadSummary,
    known: KnownPaths,
) -> tuple[int, int]:
    """Load one chunk in one transaction; return the lines and text bytes it staged."""
    with contextlib.ExitStack() as stack:
        staged = []
        for file in chunk:
            try:
                path = stack.enter_context(landing.local_copy(file))
            except LandingFileGone as gone:
                summary.skipped_files.append({"file": file.key, "reason": str(gone)})
                continue
            staged.append(StagedFile(idx=len(staged), file=file, path=path))
        if not staged:
            return 0, 0
        clock = time.perf_counter()
        create_stage(conn, staged)
        # A file that could not be read at all (gone since it was listed) gets no ledger row: the next
        # load tries it again, if it is still there.
        summary.skipped_files.extend({"file": s.file.key, "reason": s.skipped} for s in staged if s.skipped)
        staged = [s for s in staged if not s.skipped]
        if not staged:
            return 0, 0
        staged_lines, staged_text = stage_size(conn)
        clock = summary.timed("stage", clock)
        uuid_ts = datetime.now(UTC)
        # Classification writes only the connection's temporary tables, so it stays valid when the
        # transaction below has to be run again.
        hashed = key_pointers(known)
        direct = classify(conn, list(options.transformations), options.destination, hashed)
        clock = summary.timed("classify", clock)
        checked: set[str] = set()  # tables whose fast insert stopped: they take the checked path
        while True:
            try:
                with transaction(conn):
                    writer = TableWriter(
                        conn,
                        options.schema,
                        uuid_ts,
                        direct_type=direct,
                        fast=options.fast_path,
                        checked=checked,
                    )
                    writes = _write_tables(writer, known, hashed)
                    clock = summary.timed("write", clock)
                    per_file = counts_by_file(conn)
                    _record_chunk(conn, staged, per_file, summary.load_id, uuid_ts)
                    ledger.save_paths(conn, known)
                    clock = summary.timed("record", clock)
                break
            except FastPathMiss as miss:
                # Rolled back: write the chunk again, that table checked before it is inserted. (Each
                # round adds a table that cannot stop the next, so this ends.) The insert that stopped
                # may have left insertion order off (see TableWriter._unordered).
                conn.execute("RESET SESSION preserve_insertion_order")
                summary.fast_path_misses[miss.table] = summary.fast_path_misses.get(miss.table, 0) + 1
                clock = summary.timed("write", clock)
                checked.add(miss.table)
            except UnreadableSample as found:
                # Rolled back: discard the lines that cannot be loaded, then write the chunk again (each
                # round discards the line met, so this ends).
                direct = discard_late(conn, unreadable_lines(conn, found))
                clock = summary.timed("write", clock)
        summary.timed("commit", clock)
        _accumulate(conn, summary, staged, per_file, writes)
        for view in ("_loaded_all", "_loaded_direct"):
            conn.execute(f"DROP VIEW IF EXISTS {view}")
        scratch = (
            *("_raw", "_parsed", "_seen_rows", "_seen", "_cls", "_loaded", "_bad_lines", "_offsets"),
            *("_chunk_files", "_event_tables"),
        )
        for table in (*scratch, "_direct"):
            conn.execute(f"DROP TABLE IF EXISTS {table}")
    return staged_lines, staged_text


def _merge(shapes: list[Shape], keep: Callable[[tuple], bool] = lambda _path: True) -> Shape:
    merged = Shape()
    for shape in shapes:
        merged.leaves |= {p for p in shape.leaves if keep(p)}
        merged.objects |= shape.objects
        merged.proven_strings |= shape.proven_strings
        for path, kinds in shape.kinds.items():
            for kind, seq in kinds.items():
                merged.add_kind(path, kind, seq)
    return merged


def _jobs(shapes: dict) -> list[tuple[str, str, Shape, str, dict]]:
    """(table, event type, shape, filter over `_cls c`, parameters) for every table this batch feeds."""
    by_type: dict[str, list[Shape]] = {}
    for (event_type, _event_table), shape in shapes.items():
        by_type.setdefault(event_type, []).append(shape)
    jobs = []
    for event_type, type_shapes in sorted(by_type.items()):
        # `tracks` holds the standard and context columns only; properties go to the event's own table.
        keep = (lambda p: p[0] == "context") if event_type == "track" else (lambda _p: True)
        where = "l.event_type = $etype"
        jobs.append(
            (
                spec.TYPE_TABLES[event_type],
                event_type,
                _merge(type_shapes, keep),
                where,
                {"etype": event_type},
            )
        )
    for (event_type, event_table), shape in sorted(shapes.items(), key=lambda kv: str(kv[0])):
        if event_type == "track" and event_table:
            where = "l.event_type = 'track' AND l.event_table = $etable"
            jobs.append((event_table, "track", shape, where, {"etable": event_table}))
    return jobs


def _write_tables(writer: TableWriter, known: KnownPaths, hashed: list[str]) -> list[TableWrite]:
    for attempt in range(MAX_SHAPE_ATTEMPTS):
        # After a miss, discovery reads every distinct payload structure: the next attempt succeeds.
        shapes = discover(writer.conn, known, hashed, thorough=attempt > 0)
        jobs = _jobs(shapes)
        prepared = [
            writer.prepare(table, etype, shape, known.objects, where, params)
            for table, etype, shape, where, params in jobs
        ]
        missed = set().union(*(p.new_objects for p in prepared))
        if not missed:
            break
        # Some value is an object where discovery saw only scalars: learn it and extract again.
        known.objects |= missed
        for p in prepared:
            writer.drop(p)
    else:
        raise RuntimeError("event shapes kept changing while the batch was extracted")
    # Fast inserts that add columns first: they are the ones likely to stop the transaction (on a kind
    # guessed from a few samples), so little work is lost when one does.
    writes = [writer.insert(p) for p in sorted(prepared, key=lambda p: not (p.fast and p.adds_columns))]
    unplaced = _unplaced_discards(writer, shapes, known)
    if unplaced:
        writes.append(TableWrite(spec.DISCARDS_TABLE, value_discards=unplaced))
    users = writer.refresh_users()
    if users:
        writes.append(TableWrite(spec.USERS_TABLE, rows=users))
    set_aside = writer.line_discards()
    if set_aside:
        writes.append(TableWrite(spec.DISCARDS_TABLE, value_discards=set_aside))
    return writes


# Why the properties of a track without an event table are in rudder_discards (see `_unplaced_discards`).
UNNAMED_EVENT = "the event name is blank or has no letters or digits to name a table"


def _unplaced_discards(writer: TableWriter, shapes: dict, known: KnownPaths) -> int:
    """Record the properties of tracks whose name gives no event table: RudderStack loads such a track
    into `tracks` alone (a blank name) or fails it (a name with no letters or digits), dropping its
    properties either way; here they are kept in rudder_discards, under `tracks`, with the reason."""
    shape = shapes.get(("track", None))
    paths = {path for path in shape.leaves if path[0] != "context"} if shape else set()
    if not paths:
        return 0
    where = "l.event_type = 'track' AND l.event_table IS NULL"
    return writer.discard_unplaced(spec.TYPE_TABLES["track"], "track", paths, known.objects, where, {}, UNNAMED_EVENT)


def _record_chunk(
    conn: duckdb.DuckDBPyConnection,
    staged: list[StagedFile],
    per_file: dict[int, dict[str, int]],
    load_id: str,
    now: datetime,
) -> None:
    schema = ledger.SCHEMA
    conn.execute(
        f"""INSERT INTO {schema}.messages (message_id, outcome, table_name, file_key, load_id, id_hash)
            SELECT message_id, status, coalesce(event_table, type_table), file_key, $load_id, id_hash
            FROM _cls WHERE status IN ('loaded', 'filtered')""",
        {"load_id": load_id},
    )
    conn.execute(
        f"""INSERT INTO {schema}.load_errors
            SELECT $load_id, c.file_key, c.line_no, c.reason, left(coalesce(r.raw, '') ||
                   CASE WHEN r.extra IS NOT NULL THEN chr(1) || r.extra ELSE '' END, $limit),
                   strlen(r.raw), $now
            FROM _cls c JOIN _bad_lines r ON r.seq = c.seq""",
        {"load_id": load_id, "limit": RAW_TEXT_LIMIT, "now": now},
    )
    conn.execute(
        f"""INSERT INTO {schema}.filtered
            SELECT $load_id, file_key, line_no, message_id, event_type, event_text, reason
            FROM _cls WHERE status = 'filtered'""",
        {"load_id": load_id},
    )
    conn.execute(
        f"""INSERT INTO {schema}.duplicates
            SELECT $load_id, file_key, line_no, message_id FROM _cls WHERE status = 'duplicate'""",
        {"load_id": load_id},
    )
    rows = []
    for s in staged:
        counts = per_file.get(s.idx, {})
        rows.append(
            (
                s.file.key,
                s.file.etag,
                s.file.size,
                s.file.source_id,
                s.file.upload_date,
                "corrupt" if s.corrupt_reason else "loaded",
                s.corrupt_reason,
                sum(n for status, n in counts.items() if status != "blank"),
                counts.get("blank", 0),
                counts.get("loaded", 0),
                counts.get("filtered", 0),
                counts.get("duplicate", 0),
                counts.get("discarded", 0),
            )
        )
    # One statement for the whole chunk: a row-by-row insert costs a millisecond a file.
    columns = list(zip(*rows, strict=True))
    conn.execute(
        f"INSERT INTO {schema}.files SELECT "
        + ", ".join(f"unnest($c{i})" for i in range(len(columns)))
        + ", $load_id, $now",
        {**{f"c{i}": list(col) for i, col in enumerate(columns)}, "load_id": load_id, "now": now},
    )


def _accumulate(
    conn: duckdb.DuckDBPyConnection,
    summary: LoadSummary,
    staged: list[StagedFile],
    per_file: dict[int, dict[str, int]],
    writes: list,
) -> None:
    totals: Counter[str] = Counter()
    for counts in per_file.values():
        totals.update(counts)
    summary.files += len(staged)
    summary.loaded += totals["loaded"]
    summary.filtered += totals["filtered"]
    summary.duplicates += totals["duplicate"]
    summary.discarded += totals["discarded"]
    summary.blank_lines += totals["blank"]
    summary.lines += sum(n for status, n in totals.items() if status != "blank")
    for write in writes:
        summary.tables[write.table] = summary.tables.get(write.table, 0) + write.rows
        summary.fast_path_writes += write.fast
        summary.value_discards += write.value_discards
        if write.new_columns:
            summary.new_columns.setdefault(write.table, []).extend(write.new_columns)
    if summary.value_discards:
        summary.tables[spec.DISCARDS_TABLE] = summary.value_discards
    for status, reason, count in conn.execute(
        "SELECT status, reason, count(*) FROM _cls WHERE status IN ('discarded', 'filtered') GROUP BY ALL"
    ).fetchall():
        bucket = summary.discard_reasons if status == "discarded" else summary.filter_rules
        bucket[reason] = bucket.get(reason, 0) + count
    for s in staged:
        if s.corrupt_reason:
            counts = per_file.get(s.idx, {})
            summary.corrupt_files.append(
                {
                    "file": s.file.key,
                    "reason": s.corrupt_reason,
                    "lines_recovered": s.recovered_lines or 0,
                    "loaded": counts.get("loaded", 0),
                    "discarded": counts.get("discarded", 0),
                }
            )


def _record_load(conn: duckdb.DuckDBPyConnection, summary: LoadSummary, started: datetime) -> None:
    conn.execute(
        f"INSERT INTO {ledger.SCHEMA}.loads VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            summary.load_id,
            started,
            datetime.now(UTC),
            summary.landing_url,
            summary.files,
            summary.lines,
            summary.loaded,
            summary.filtered,
            summary.duplicates,
            summary.discarded,
            summary.value_discards,
            json.dumps(summary.to_dict()),
        ],
    )


@dataclass
class Forgotten:
    """What `forget_range` removed: the files (now pending again), the rows per table, and the files of
    the range it kept because they are no longer in the landing location."""

    files: int = 0
    rows: dict[str, int] = field(default_factory=dict)
    kept_missing: list[str] = field(default_factory=list)


def forget_range(
    warehouse: Warehouse,
    start: date,
    end: date,
    landing_keys: Collection[str],
    schema: str = spec.SCHEMA,
) -> Forgotten:
    """Remove what the files uploaded between `start` and `end` (inclusive) loaded, and their ledger rows,
    so the next load reads them again: a backfill of that range. Safe to run twice.

    Only files still in the landing location (`landing_keys`) are forgotten: a file gone from it (a bucket
    retention rule, say) could not be loaded again, so its rows stay, and it is reported.
    """
    with _sole_writer(warehouse), warehouse.connect() as conn, transaction(conn):
        ledger.ensure(conn)
        conn.execute(
            f"""CREATE OR REPLACE TEMP TABLE _in_range AS
                SELECT DISTINCT f.file_key, l.key IS NOT NULL AS present
                FROM {ledger.SCHEMA}.files f LEFT JOIN (SELECT unnest($keys) AS key) l ON l.key = f.file_key
                WHERE f.upload_date BETWEEN $start AND $end""",
            {"keys": list(landing_keys), "start": start, "end": end},
        )
        conn.execute("CREATE OR REPLACE TEMP TABLE _forget AS SELECT file_key FROM _in_range WHERE present")
        missing = [r[0] for r in conn.execute("SELECT file_key FROM _in_range WHERE NOT present ORDER BY 1").fetchall()]
        conn.execute(
            f"""CREATE OR REPLACE TEMP TABLE _forget_ids AS
                SELECT message_id FROM {ledger.SCHEMA}.messages WHERE file_key IN (SELECT file_key FROM _forget)"""
        )
        writer = TableWriter(conn, schema, datetime.now(UTC))
        deleted: dict[str, int] = {}
        users = [spec.USERS_TABLE, spec.DISCARDS_TABLE]
        identifies = spec.TYPE_TABLES["identify"]
        if identifies in writer.existing:
            conn.execute(
                f"""CREATE OR REPLACE TEMP TABLE _forget_users AS
                    SELECT DISTINCT user_id FROM {quote(schema)}.{identifies}
                    WHERE id IN (SELECT message_id FROM _forget_ids) AND user_id IS NOT NULL"""
            )
        for table, columns in writer.existing.items():
            if table in users or "id" not in columns:
                continue
            name = f"{quote(schema)}.{quote(table)}"
            count = conn.execute(
                f"SELECT count(*) FROM {name} WHERE id IN (SELECT message_id FROM _forget_ids)"
            ).fetchone()[0]
            if count:
                conn.execute(f"DELETE FROM {name} WHERE id IN (SELECT message_id FROM _forget_ids)")
                deleted[table] = count
        if spec.DISCARDS_TABLE in writer.existing:
            discards = f"{quote(schema)}.{spec.DISCARDS_TABLE}"
            conn.execute(f"DELETE FROM {discards} WHERE row_id IN (SELECT message_id FROM _forget_ids)")
        if identifies in writer.existing:
            writer.rebuild_users("SELECT user_id FROM _forget_users")
        for table in ("messages", "load_errors", "filtered", "duplicates", "files"):
            conn.execute(f"DELETE FROM {ledger.SCHEMA}.{table} WHERE file_key IN (SELECT file_key FROM _forget)")
        files = conn.execute("SELECT count(*) FROM _forget").fetchone()[0]
    return Forgotten(files=files, rows=deleted, kept_missing=missing)
