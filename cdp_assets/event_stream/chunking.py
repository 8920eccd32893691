"""How many landing files the next chunk of a load takes.

DuckDB splits the scan of a table among its threads by row group (122,880 rows), never within one, so
the number of lines in a chunk decides how busy the threads are in every statement that reads the
chunk's staged lines. With 2 threads, a chunk of 210,000 lines is 2 row groups, 122,880 and 87,120
lines: the second thread is idle for the last 30% of each statement. A chunk of 245,760 lines, one
full row group per thread, keeps both busy, and costs the same time (measured: an envelope parse of
120,000 staged lines runs on one thread in 0.30 s; 240,000 lines on two in 0.32 s).

Files are taken whole (a file is loaded in one transaction) and their line counts are not known before
they are read, so the planner estimates them from compressed sizes, with the ratios the chunks loaded so
far showed (RudderStack's dumps hold events of a similar size); the first chunk uses typical ratios.
Two caps bound memory whatever the estimate says: compressed bytes, and estimated text bytes (a chunk's
staged text and its parses take about 3.5 times the text in memory).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from cdp_assets.event_stream.landing import LandingFile

# DuckDB's rows per row group in a table, the unit in which it hands a scan to its threads.
ROW_GROUP_ROWS = 122_880
# Typical gzip'd RudderStack JSON lines (about 1.7 KB an event): compressed bytes a line, and text bytes
# per compressed byte (JSON lines compress 8-12 times; the higher end, so that the text cap holds for
# the first chunk too). Only the first chunk of a load relies on them.
DEFAULT_COMPRESSED_BYTES_PER_LINE = 170.0
DEFAULT_TEXT_PER_COMPRESSED_BYTE = 12.0
# A chunk may exceed its line target by this fraction when that takes every file left.
TAIL_FRACTION = 0.25


@dataclass(frozen=True)
class ChunkLimits:
    lines: int  # the target: as many lines as fit (estimated)
    compressed_bytes: int  # hard caps, each
    text_bytes: int
    files: int


def target_lines(threads: int) -> int:
    """One full row group for each of the engine's threads."""
    return ROW_GROUP_ROWS * max(1, threads)


class ChunkPlanner:
    """Takes files off the front of the pending queue, as many as the limits allow (at least one)."""

    def __init__(self, limits: ChunkLimits):
        self.limits = limits
        self._compressed = 0
        self._lines = 0
        self._text = 0

    def compressed_bytes_per_line(self) -> float:
        if self._lines and self._compressed:
            return self._compressed / self._lines
        return DEFAULT_COMPRESSED_BYTES_PER_LINE

    def text_per_compressed_byte(self) -> float:
        if self._compressed and self._text:
            return self._text / self._compressed
        return DEFAULT_TEXT_PER_COMPRESSED_BYTE

    def take(self, pending: deque[LandingFile]) -> list[LandingFile]:
        per_line = self.compressed_bytes_per_line()
        text_ratio = self.text_per_compressed_byte()
        # A last chunk of a few lines would cost a chunk's fixed work (discovery, a statement per table,
        # a commit) for little: files that would make one go with this chunk, within the caps.
        lines = self.limits.lines
        if self._rest_fits(pending, lines * (1 + TAIL_FRACTION) * per_line):
            lines = lines * (1 + TAIL_FRACTION)
        chunk: list[LandingFile] = []
        size = 0
        while pending:
            grown = size + pending[0].size
            fits = (
                len(chunk) < self.limits.files
                and grown / per_line <= lines
                and grown <= self.limits.compressed_bytes
                and grown * text_ratio <= self.limits.text_bytes
            )
            if chunk and not fits:
                break
            chunk.append(pending.popleft())
            size = grown
        return chunk

    @staticmethod
    def _rest_fits(pending: deque[LandingFile], budget: float) -> bool:
        """Whether all pending files hold at most `budget` compressed bytes, reading only as many files
        as it takes to tell (a backlog can hold many thousands)."""
        total = 0
        for file in pending:
            total += file.size
            if total > budget:
                return False
        return True

    def observe(self, compressed_bytes: int, lines: int, text_bytes: int) -> None:
        """What a loaded chunk turned out to hold: the next estimates use it."""
        self._compressed += compressed_bytes
        self._lines += lines
        self._text += text_bytes
