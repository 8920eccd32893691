"""The embedded warehouse: one DuckDB file, one writer at a time."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path

import duckdb

from cdp_assets.warehouse.base import WarehouseError

# DuckDB allows one writing process per file. A second writer waits this long for the first to finish
# (a sensor-started load behind a scheduled one) before giving up with a clear message.
LOCK_WAIT_SECONDS = 120.0


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
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = self._open(read_only)
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
            conn.close()

    def _open(self, read_only: bool) -> duckdb.DuckDBPyConnection:
        deadline = time.monotonic() + LOCK_WAIT_SECONDS
        while True:
            try:
                return duckdb.connect(str(self.path), read_only=read_only)
            except duckdb.IOException as exc:
                if "lock" not in str(exc).lower() or time.monotonic() > deadline:
                    raise WarehouseError(
                        f"cannot open {self.path}: {exc}. Another process (a load, dbt, or an open "
                        "DuckDB shell) is writing to it; DuckDB allows one writer at a time."
                    ) from exc
                time.sleep(0.5)

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
