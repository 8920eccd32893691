"""The embedded warehouse's connections: row-group size, sharing the file within a process, locks."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import duckdb
import pytest

from cdp_assets.warehouse import WarehouseError, duckdb_engine
from cdp_assets.warehouse.duckdb_engine import ROW_GROUP_SIZE, DuckDBWarehouse


def _row_groups(conn, table: str) -> list[int]:
    return [
        count
        for (count,) in conn.execute(
            f"SELECT max(count) FROM pragma_storage_info('{table}') WHERE column_id = 0 GROUP BY row_group_id "
            "ORDER BY row_group_id"
        ).fetchall()
    ]


def test_what_the_warehouse_writes_goes_in_small_row_groups(tmp_path: Path) -> None:
    warehouse = DuckDBWarehouse(tmp_path / "warehouse.duckdb")
    with warehouse.connect() as conn:
        assert conn.execute("SELECT current_database()").fetchone()[0] == "warehouse"
        conn.execute("CREATE TABLE t AS SELECT range AS i, 'x' || range AS s FROM range(100000)")
        groups = _row_groups(conn, "t")
    assert groups == [ROW_GROUP_SIZE] * 3 + [100_000 - 3 * ROW_GROUP_SIZE]
    # Closed: checkpointed and released, so any other reader (dbt, a shell) opens it as a plain file.
    assert not (tmp_path / "warehouse.duckdb.wal").exists()
    with duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True) as plain:
        assert plain.execute("SELECT count(*), sum(i) FROM t").fetchone() == (100_000, sum(range(100_000)))


def test_connections_in_one_process_share_the_file_and_keep_their_own_temp_tables(tmp_path: Path) -> None:
    warehouse = DuckDBWarehouse(tmp_path / "w.duckdb")
    with warehouse.connect() as first:
        first.execute("CREATE TABLE t (i INTEGER)")
        first.execute("CREATE TEMP TABLE scratch AS SELECT 1 AS i")
        with warehouse.connect() as second, warehouse.connect(read_only=True) as reader:
            second.execute("INSERT INTO t VALUES (1), (2)")
            assert reader.execute("SELECT count(*) FROM t").fetchone()[0] == 2
            with pytest.raises(duckdb.CatalogException):
                second.execute("SELECT * FROM scratch")
        # The others closing leaves this one working.
        assert first.execute("SELECT count(*) FROM t, scratch").fetchone()[0] == 2
    with duckdb.connect(str(tmp_path / "w.duckdb")) as plain:
        assert plain.execute("SELECT count(*) FROM t").fetchone()[0] == 2


def test_a_write_after_a_read_only_open_in_the_same_process_is_refused(tmp_path: Path) -> None:
    warehouse = DuckDBWarehouse(tmp_path / "w.duckdb")
    with warehouse.connect() as conn:
        conn.execute("CREATE TABLE t (i INTEGER)")
    with warehouse.connect(read_only=True) as reader:
        with pytest.raises(WarehouseError, match="open read-only"), warehouse.connect():
            pass
        assert reader.execute("SELECT count(*) FROM t").fetchone()[0] == 0
    with warehouse.connect() as conn:  # and allowed once the reader has closed
        conn.execute("INSERT INTO t VALUES (1)")


def test_a_file_named_like_a_builtin_catalog_still_opens(tmp_path: Path) -> None:
    with DuckDBWarehouse(tmp_path / "memory.duckdb").connect() as conn:
        conn.execute("CREATE TABLE t AS SELECT 1 AS i")
        assert conn.execute("SELECT i FROM t").fetchone()[0] == 1


def test_a_file_another_process_writes_gives_a_clear_error_after_waiting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "w.duckdb"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import duckdb, sys; c = duckdb.connect({str(path)!r}); print('ready'); sys.stdin.read()",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
        monkeypatch.setattr(duckdb_engine, "LOCK_WAIT_SECONDS", 3.0)
        # While one thread waits for that file, another opens a different warehouse without waiting.
        errors: list[Exception] = []

        def wait_for_the_file() -> None:
            try:
                with DuckDBWarehouse(path).connect():
                    pass
            except WarehouseError as exc:
                errors.append(exc)

        waiter = threading.Thread(target=wait_for_the_file)
        started = time.monotonic()
        waiter.start()
        time.sleep(0.3)
        with DuckDBWarehouse(tmp_path / "other.duckdb").connect() as conn:
            assert conn.execute("SELECT 1").fetchone()[0] == 1
        assert time.monotonic() - started < 2.0
        waiter.join()
        assert time.monotonic() - started >= 3.0
        assert len(errors) == 1 and "DuckDB allows one writer at a time" in str(errors[0])
    finally:
        holder.communicate("")
    with DuckDBWarehouse(path).connect() as conn:  # free again once the other process is done
        assert conn.execute("SELECT 1").fetchone()[0] == 1


@pytest.mark.parametrize("content", [b"", b"not a database" * 100], ids=["empty", "garbage"])
def test_a_file_that_is_no_database_says_so_without_blaming_a_writer(tmp_path, content) -> None:
    path = tmp_path / "broken.duckdb"
    path.write_bytes(content)
    started = time.monotonic()
    with pytest.raises(WarehouseError) as caught:
        DuckDBWarehouse(path).connect().__enter__()
    assert time.monotonic() - started < duckdb_engine.LOCK_WAIT_SECONDS  # not waited for as a lock
    assert str(path) in str(caught.value)
    assert "writer" not in str(caught.value)
