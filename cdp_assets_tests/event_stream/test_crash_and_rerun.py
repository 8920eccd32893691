"""Crash safety: a load killed with SIGKILL between chunks or inside a chunk's transaction loses at most
the chunk in flight, and the next load leaves exactly the tables one clean load of the same files gives."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from datetime import UTC, datetime
from pathlib import Path

import pytest

from cdp_assets_tests.conftest import event, write_dump
from cdp_assets_tests.event_stream.helpers import ES, LEDGER, load, query, snapshot

T0 = datetime(2026, 11, 1, 10, 0, tzinfo=UTC)

# The load, run in a child process that kills itself (SIGKILL: no cleanup, no rollback, no atexit) at
# a chosen point: right after a chunk commits (from the progress callback), or inside a chunk's
# transaction, after its first table (`between_tables`) or after its last step, the ledger rows
# (`in_transaction`). Those two wrap a loader function in the child only: production code has no hook.
CHILD = textwrap.dedent(
    """
    import os, signal, sys
    from cdp_assets.event_stream import loader
    from cdp_assets.event_stream.landing import LocalLandingStore
    from cdp_assets.warehouse.duckdb_engine import DuckDBWarehouse

    landing, warehouse, mode = sys.argv[1:4]

    def die():
        sys.stdout.flush()
        os.kill(os.getpid(), signal.SIGKILL)

    progress = None
    if mode == "after_commit":
        def progress(event, data):
            if event == "chunk_committed":
                print(f"committed chunk {data['chunk']}")
                die()
    elif mode == "in_transaction":
        record_chunk = loader._record_chunk
        def record_chunk_then_die(conn, staged, *args, **kwargs):
            record_chunk(conn, staged, *args, **kwargs)
            files = conn.execute("SELECT count(*) FROM event_load.files").fetchone()[0]
            if files == 2:
                # The second chunk's rows, ledger included, are written but not committed.
                tracks = conn.execute("SELECT count(*) FROM event_stream.tracks").fetchone()[0]
                print(f"in transaction: files={files} tracks={tracks}")
                die()
        loader._record_chunk = record_chunk_then_die
    elif mode == "between_tables":
        from cdp_assets.event_stream.writer import TableWriter
        insert = TableWriter.insert
        def insert_then_die(self, prepared):
            result = insert(self, prepared)
            if self.conn.execute("SELECT count(*) FROM event_load.files").fetchone()[0] == 1:
                # The second chunk: its first table written, the others and the ledger not yet.
                print(f"wrote {prepared.table}")
                die()
            return result
        TableWriter.insert = insert_then_die
    options = loader.LoadOptions(chunk_files=1)
    loader.load_events(LocalLandingStore(landing), DuckDBWarehouse(warehouse), options, progress)
    print("finished")
    """
)


def _run_child(landing_root: Path, warehouse: Path, mode: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", CHILD, str(landing_root), str(warehouse), mode],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert result.returncode == -signal.SIGKILL, (result.returncode, result.stdout, result.stderr)
    assert "finished" not in result.stdout
    return result.stdout


def _identify(message_id: str, user_id: str, minute: int, **traits) -> dict:
    stamp = f"2026-11-01T10:{minute:02d}:00.000Z"
    return event(
        "identify",
        messageId=message_id,
        userId=user_id,
        receivedAt=stamp,
        sentAt=stamp,
        originalTimestamp=stamp,
        context={"traits": traits},
    )


@pytest.fixture(scope="module")
def crash_landing(tmp_path_factory):
    """Five files, one chunk each; later files add tables, columns, users, duplicates, bad lines."""
    from cdp_assets.event_stream.landing import LocalLandingStore

    root = tmp_path_factory.mktemp("crash")
    store = LocalLandingStore(root / "landing")
    contents = [
        [_identify("i-1", "u-1", 1, email="a@example.com"), event(messageId="t-1", properties={"n": 1})],
        [
            _identify("i-2", "u-1", 2, plan="pro"),
            event(messageId="t-2", event="Signed Up", properties={"n": 2, "source": "ad"}),
            event(messageId="t-1"),
            "not json",
        ],
        [event(messageId="t-3", properties={"n": "three", "extra": True}), event("page", messageId="p-1", name="Home")],
        [_identify("i-3", "u-2", 3, email="b@example.com"), "", event(messageId="f-1", integrations={"All": False})],
        [event(messageId="t-4", event="Signed Up", properties={"n": 4.5})],
    ]
    for i, lines in enumerate(contents):
        write_dump(store, lines, uploaded_at=T0.replace(minute=i))
    clean = root / "clean.duckdb"
    summary = load(store, clean, chunk_files=1)
    assert summary.chunks == 5
    return root / "landing", store, snapshot(clean)


@pytest.mark.parametrize("mode", ["after_commit", "in_transaction", "between_tables"])
def test_a_killed_load_then_a_rerun_equals_one_clean_load(crash_landing, tmp_path, mode) -> None:
    landing_root, store, clean = crash_landing
    warehouse = tmp_path / f"{mode}.duckdb"

    output = _run_child(landing_root, warehouse, mode)
    expected = {
        "after_commit": "committed chunk 1",
        "in_transaction": "in transaction: files=2 tracks=2",
        "between_tables": "wrote identifies",
    }
    assert output.strip() == expected[mode]

    # What survived the kill: exactly the first chunk, committed; nothing of the one in flight.
    assert query(warehouse, f"SELECT count(*) FROM {LEDGER}.files") == [(1,)]
    assert {r[0] for r in query(warehouse, f"SELECT id FROM {ES}.tracks")} == {"t-1"}
    assert query(warehouse, f"SELECT id, context_traits_email FROM {ES}.users") == [("u-1", "a@example.com")]
    assert query(warehouse, f"SELECT count(*) FROM {LEDGER}.messages") == [(2,)]
    assert query(warehouse, f"SELECT count(*) FROM {LEDGER}.loads") == [(0,)]

    rerun = load(store, warehouse, chunk_files=1)
    assert (rerun.files, rerun.chunks) == (4, 4)
    assert snapshot(warehouse) == clean

    again = load(store, warehouse, chunk_files=1)
    assert (again.files, again.lines) == (0, 0)
    assert snapshot(warehouse) == clean


def test_killed_twice_in_a_row_then_finished(crash_landing, tmp_path) -> None:
    landing_root, store, clean = crash_landing
    warehouse = tmp_path / "twice.duckdb"
    assert _run_child(landing_root, warehouse, "after_commit").strip() == "committed chunk 1"
    # The second run dies inside its first chunk (the second file), before committing it.
    assert _run_child(landing_root, warehouse, "in_transaction").strip() == "in transaction: files=2 tracks=2"
    assert query(warehouse, f"SELECT count(*) FROM {LEDGER}.files") == [(1,)]
    assert _run_child(landing_root, warehouse, "after_commit").strip() == "committed chunk 1"
    assert query(warehouse, f"SELECT count(*) FROM {LEDGER}.files") == [(2,)]
    load(store, warehouse, chunk_files=1)
    assert snapshot(warehouse) == clean
