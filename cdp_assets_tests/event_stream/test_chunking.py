"""Chunk planning: how many files a load transaction takes, and the load's commits without vacuum."""

from __future__ import annotations

import os
from collections import deque
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from cdp_assets.event_stream.chunking import (
    DEFAULT_COMPRESSED_BYTES_PER_LINE,
    ROW_GROUP_ROWS,
    TAIL_FRACTION,
    ChunkLimits,
    ChunkPlanner,
    target_lines,
)
from cdp_assets.event_stream.landing import LandingFile, LocalLandingStore
from cdp_assets.event_stream.loader import LoadOptions, load_events
from cdp_assets.warehouse.duckdb_engine import DuckDBWarehouse
from cdp_assets_tests.conftest import event, write_dump
from cdp_assets_tests.event_stream.helpers import ES, assert_ledger_balanced, query

T0 = datetime(2026, 11, 1, 10, 30, tzinfo=UTC)
UNLIMITED = 1 << 40


def _files(*sizes: int) -> deque[LandingFile]:
    return deque(LandingFile(key=f"f{i}", size=s, etag=str(i), modified=T0) for i, s in enumerate(sizes))


def _limits(lines: int = UNLIMITED, compressed: int = UNLIMITED, text: int = UNLIMITED, files: int = 10_000):
    return ChunkLimits(lines=lines, compressed_bytes=compressed, text_bytes=text, files=files)


def _plan(planner: ChunkPlanner, pending: deque[LandingFile]) -> list[list[str]]:
    chunks = []
    while pending:
        chunks.append([f.key for f in planner.take(pending)])
    return chunks


def test_target_is_one_row_group_per_thread():
    assert target_lines(2) == 2 * ROW_GROUP_ROWS == 245_760
    assert target_lines(0) == ROW_GROUP_ROWS


def test_first_chunk_estimates_lines_from_typical_ratio():
    per_line = DEFAULT_COMPRESSED_BYTES_PER_LINE
    # Ten files of 100 lines each (estimated): a target of 300 lines takes three at a time.
    planner = ChunkPlanner(_limits(lines=300))
    pending = _files(*[int(100 * per_line)] * 10)
    assert [len(c) for c in _plan(planner, pending)] == [3, 3, 3, 1]


def test_later_chunks_use_the_ratio_loaded_chunks_showed():
    planner = ChunkPlanner(_limits(lines=1000))
    pending = _files(*[10_000] * 40)
    assert len(planner.take(pending)) == 17  # 170 bytes a line: 58 lines a file, 17 files fit 1000
    # It turned out to hold 500 lines a file (20 bytes a line): two files make the target.
    planner.observe(compressed_bytes=17 * 10_000, lines=17 * 500, text_bytes=17 * 100_000)
    assert planner.compressed_bytes_per_line() == 20
    assert len(planner.take(pending)) == 2


def test_a_small_tail_joins_the_last_chunk_but_a_bigger_one_does_not():
    per_line = int(DEFAULT_COMPRESSED_BYTES_PER_LINE)
    within = int(100 * TAIL_FRACTION)  # what may join a chunk of 100 lines
    planner = ChunkPlanner(_limits(lines=100))
    assert _plan(planner, _files(100 * per_line, within * per_line)) == [["f0", "f1"]]
    assert _plan(planner, _files(100 * per_line, (within + 2) * per_line)) == [["f0"], ["f1"]]


@pytest.mark.parametrize(
    ("limits", "expected"),
    [
        (_limits(compressed=25_000), [3, 3, 3, 1]),  # 8 KB files: three fit 25 KB
        (_limits(text=150_000), [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]),  # text is 12x: 96 KB a file
        (_limits(text=250_000), [2, 2, 2, 2, 2]),
        (_limits(files=4), [4, 4, 2]),
    ],
)
def test_each_cap_bounds_a_chunk(limits: ChunkLimits, expected: list[int]):
    planner = ChunkPlanner(limits)
    assert [len(c) for c in _plan(planner, _files(*[8_000] * 10))] == expected


def test_a_file_over_every_cap_still_makes_a_chunk_of_its_own():
    planner = ChunkPlanner(_limits(lines=10, compressed=100, text=100, files=1))
    assert _plan(planner, _files(5_000, 50, 6_000)) == [["f0"], ["f1"], ["f2"]]


def _dumps(store: LocalLandingStore, files: int, lines: int) -> None:
    """Files of `lines` page events each, with random text (compressing as real events do, not to
    nothing), so every file has about the same compressed size."""
    for n in range(files):
        batch = [event("page", name=f"p{n}", properties={"session": os.urandom(64).hex()}) for _ in range(lines)]
        write_dump(store, batch, uploaded_at=T0 + timedelta(minutes=30 * n))


def test_load_takes_files_in_chunks_of_the_target_lines(tmp_path: Path):
    store = LocalLandingStore(tmp_path / "landing")
    _dumps(store, files=20, lines=50)
    path = tmp_path / "warehouse.duckdb"
    committed: list[int] = []
    progress = lambda name, data: committed.append(data["lines"]) if name == "chunk_committed" else None  # noqa: E731
    summary = load_events(store, DuckDBWarehouse(path), LoadOptions(chunk_lines=220), progress)
    assert summary.balanced and summary.lines == summary.loaded == 1000
    # The first chunk's estimate is the typical ratio; from then on, the ratio these files showed: 4
    # files of 50 lines a chunk (5 would be 250); the last takes what is left, up to 25% more than 220.
    steps = [b - a for a, b in zip([0, *committed], committed, strict=False)]
    assert summary.chunks == len(steps) > 3 and sum(steps) == 1000
    assert all(step == 200 for step in steps[1:-1]), steps
    assert 0 < steps[-1] <= 250, steps
    assert query(path, f"SELECT count(*) FROM {ES}.pages") == [(1000,)]
    assert_ledger_balanced(path)


def test_chunks_commit_without_vacuum_and_the_setting_comes_back(tmp_path: Path):
    """During the load DuckDB's checkpoints do not merge row groups; after it, the instance's setting is
    what it was (it is global: another connection to the same file shares it)."""
    store = LocalLandingStore(tmp_path / "landing")
    _dumps(store, files=3, lines=20)
    warehouse = DuckDBWarehouse(tmp_path / "warehouse.duckdb")
    seen: list[int] = []
    with warehouse.connect() as other:
        default = other.execute("SELECT current_setting('max_vacuum_tasks')").fetchone()[0]

        def progress(name: str, _data: dict) -> None:
            if name == "chunk_committed":
                seen.append(other.execute("SELECT current_setting('max_vacuum_tasks')").fetchone()[0])

        summary = load_events(store, warehouse, LoadOptions(chunk_files=1), progress)
        assert summary.chunks == 3
        assert seen == [0, 0, 0]
        assert other.execute("SELECT current_setting('max_vacuum_tasks')").fetchone()[0] == default > 0
        assert other.execute(f"SELECT count(*) FROM {ES}.pages").fetchone()[0] == 60


def test_chunk_settings_come_from_the_environment(monkeypatch):
    from cdp_assets.cli import _load_options
    from cdp_assets.settings import SettingsError, get_settings

    for name in ("CDP_LOAD_CHUNK_LINES", "CDP_LOAD_CHUNK_MB", "CDP_LOAD_CHUNK_FILES"):
        monkeypatch.delenv(name, raising=False)
    options = _load_options(get_settings(), None, None)
    assert (options.chunk_lines, options.chunk_bytes, options.chunk_files) == (None, 64 << 20, 2000)
    monkeypatch.setenv("CDP_LOAD_CHUNK_LINES", "100000")
    monkeypatch.setenv("CDP_LOAD_CHUNK_MB", "16")
    options = _load_options(get_settings(), None, None)
    assert (options.chunk_lines, options.chunk_bytes) == (100_000, 16 << 20)
    monkeypatch.setenv("CDP_LOAD_CHUNK_LINES", "0")
    with pytest.raises(SettingsError, match="CDP_LOAD_CHUNK_LINES must be at least 1"):
        get_settings()


def test_line_numbers_hold_when_the_engine_may_reorder_rows(tmp_path: Path) -> None:
    """A line's number is its position in the stage, so staging keeps file order even when something
    else in the process set the DuckDB instance to lose insertion order (the load itself drops it for
    some extractions, see TableWriter._unordered). Files big enough for the reader to split them among
    its threads; without the guard, their bad lines were recorded tens of thousands of lines off."""
    store = LocalLandingStore(tmp_path / "landing")
    expected = {}
    for f in range(4):
        lines: list[dict | str] = [event(messageId=f"m-{f}-{i}") for i in range(30_000)]
        bad = 5_000 * f + 10_000 * (f % 2) + 7
        lines[bad] = "not json"
        expected[write_dump(store, lines, uploaded_at=T0 + timedelta(minutes=f))] = bad + 1
    warehouse = DuckDBWarehouse(tmp_path / "w.duckdb")
    with warehouse.connect() as other:
        other.execute("SET GLOBAL preserve_insertion_order = false")
        summary = load_events(store, warehouse, LoadOptions())
        # The load leaves this process's setting as it found it.
        assert other.execute("SELECT current_setting('preserve_insertion_order')").fetchone()[0] is False
    assert summary.discarded == 4 and summary.loaded == 4 * 29_999
    path = tmp_path / "w.duckdb"
    assert dict(query(path, "SELECT file_key, line_no FROM event_load.load_errors")) == expected
    assert_ledger_balanced(path)
