"""The embedded warehouse: one DuckDB file, one writer at a time."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import duckdb

from cdp_assets.warehouse.base import WarehouseError

# DuckDB allows one writing process per file. A second writer waits this long for the first to finish
# (a sensor-started load behind a scheduled one) before giving up with a clear message.
LOCK_WAIT_SECONDS = 120.0
# Rows per row group in what this project writes: a quarter of DuckDB's default (122,880). An insert
# compresses its full row groups on all threads, but the partial one it ends with on one thread, after
# the others; with the default size that tail was up to half of a load chunk's biggest table, and a 1M-
# event load took 14-18% longer (`cdp bench ingest`). Scans are no slower and the file about 6% bigger.
ROW_GROUP_SIZE = 32_768


class DuckDBWarehouse:
    engine = "duckdb"

    def __init__(self, path: str | Path, memory_limit: str = "1500MB", threads: int | None = None):
        self.path = Path(path).resolve()
        self.memory_limit = memory_limit
        self.threads = threads

    def describe(self) -> str:
        return f"DuckDB file {self.path}"

    @contextlib.contextmanager
    def connect(self, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        if read_only and not self.path.exists():
            raise WarehouseError(f"no warehouse at {self.path} yet: run a load first")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise WarehouseError(f"cannot create the folder of {self.path}: {exc.strerror}") from exc
        conn = _INSTANCES.connect(self.path, read_only)
        try:
            # Timestamps are written and compared in UTC whatever the machine's zone is.
            conn.execute("SET TimeZone = 'UTC'")
            # Long statements would draw a progress bar on a terminal, in the middle of a command's output.
            conn.execute("SET enable_progress_bar = false")
            conn.execute(f"SET memory_limit = '{self.memory_limit}'")
            if self.threads:
                conn.execute(f"SET threads = {int(self.threads)}")
            # Spill to a folder next to the file rather than wherever the working directory is.
            conn.execute(f"SET temp_directory = '{self.path.parent / '.duckdb_tmp'}'")
            yield conn
        finally:
            _INSTANCES.release(self.path, conn)

    def table_columns(self, conn: duckdb.DuckDBPyConnection, schema: str, table: str) -> dict[str, str]:
        rows = conn.execute(
            "SELECT column_name, data_type FROM duckdb_columns() "
            "WHERE database_name = current_database() AND schema_name = ? AND table_name = ? "
            "ORDER BY column_index",
            [schema, table],
        ).fetchall()
        return {name: dtype for name, dtype in rows}

    def schema_columns(self, conn: duckdb.DuckDBPyConnection, schema: str) -> dict[str, dict[str, str]]:
        rows = conn.execute(
            "SELECT table_name, column_name, data_type FROM duckdb_columns() "
            "WHERE database_name = current_database() AND schema_name = ? "
            "ORDER BY table_name, column_index",
            [schema],
        ).fetchall()
        tables: dict[str, dict[str, str]] = {}
        for table, column, dtype in rows:
            tables.setdefault(table, {})[column] = dtype
        return tables


@dataclass
class _Instance:
    root: duckdb.DuckDBPyConnection
    alias: str
    read_only: bool
    users: int = 0


class _Instances:
    """One DuckDB instance per warehouse file in this process; every connection is a cursor of it.

    The file is attached to an in-memory instance rather than opened directly, because only ATTACH
    takes a row-group size (see ROW_GROUP_SIZE). DuckDB refuses a second instance on a file one in the
    process holds, so the connections of this process share one, as `duckdb.connect(path)` would
    share its own; the last to close closes it, which checkpoints the file and frees it for other
    processes.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()  # guards `_guards` only
        # One lock per file, held while its instance is opened or closed: opening may wait minutes for
        # another process's writer (see _attach), and connections to other files must not wait with it.
        self._guards: dict[Path, threading.Lock] = {}
        self._open: dict[Path, _Instance] = {}

    def _guard(self, path: Path) -> threading.Lock:
        with self._lock:
            return self._guards.setdefault(path, threading.Lock())

    def connect(self, path: Path, read_only: bool) -> duckdb.DuckDBPyConnection:
        with self._guard(path):
            instance = self._open.get(path)
            if instance is None:
                instance = self._open[path] = _Instance(_attach(path, read_only), _alias(path), read_only)
            elif instance.read_only and not read_only:
                raise WarehouseError(
                    f"cannot write to {path}: this process has it open read-only; close that connection first"
                )
            conn = instance.root.cursor()
            instance.users += 1
        try:
            conn.execute(f"USE {_quote(instance.alias)}")
        except BaseException:
            self.release(path, conn)
            raise
        return conn

    def release(self, path: Path, conn: duckdb.DuckDBPyConnection) -> None:
        conn.close()
        with self._guard(path):
            instance = self._open[path]
            instance.users -= 1
            if instance.users == 0:
                del self._open[path]
                instance.root.close()


_INSTANCES = _Instances()
# Catalog names an in-memory instance has already.
_TAKEN_NAMES = {"memory", "system", "temp"}


def _alias(path: Path) -> str:
    """The name the file's catalog gets: its stem, as `duckdb.connect(path)` would name it."""
    return path.stem if path.stem.lower() not in _TAKEN_NAMES else "warehouse"


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def _attach(path: Path, read_only: bool) -> duckdb.DuckDBPyConnection:
    options = "READ_ONLY" if read_only else f"ROW_GROUP_SIZE {ROW_GROUP_SIZE}"
    deadline = time.monotonic() + LOCK_WAIT_SECONDS
    while True:
        root = duckdb.connect()
        try:
            root.execute(f"ATTACH ? AS {_quote(_alias(path))} ({options})", [str(path)])
            return root
        except duckdb.IOException as exc:
            root.close()
            locked = "lock" in str(exc).lower()
            if not locked:  # not a valid DuckDB file, a directory, no permission...
                raise WarehouseError(f"cannot open {path}: {exc}") from exc
            if time.monotonic() > deadline:
                raise WarehouseError(
                    f"cannot open {path}: {exc}. Another process (a load, dbt, or an open "
                    "DuckDB shell) is writing to it; DuckDB allows one writer at a time."
                ) from exc
            time.sleep(0.5)
        except BaseException:
            root.close()
            raise
