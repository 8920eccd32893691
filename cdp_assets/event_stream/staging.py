"""Reading landing files into the warehouse as raw lines, one row a line, without parsing them in Python.

DuckDB's CSV reader does the decompression and line splitting (in parallel, in the engine); the lines go
into the connection's temporary table `_raw` in file and line order, so a line's number is its position
within its file. A file the reader cannot take (truncated gzip, invalid UTF-8, a line longer than the
reader's buffer) is read again in Python, as far as it can be: its complete lines are staged with their
numbers, and bad lines are staged with the reason they will be discarded for.
"""

from __future__ import annotations

import csv
import gzip
import os
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import duckdb

from cdp_assets.event_stream.landing import LandingFile

# Line-splitting settings: one VARCHAR column, no quoting. A 0x01 byte (never valid inside JSON) spills
# into `extra`, which marks the line as invalid instead of silently cutting it.
_READ_LINES = """
    SELECT filename, raw, extra, NULL::BIGINT AS line_no, NULL::VARCHAR AS forced
    FROM read_csv($paths, columns = {'raw': 'VARCHAR', 'extra': 'VARCHAR'}, header = false,
                  delim = chr(1), quote = '', escape = '', new_line = '\\n', comment = '',
                  auto_detect = false, null_padding = true, strict_mode = false, filename = true,
                  max_line_size = 8388608, buffer_size = 33554432, compression = 'gzip')
"""
# How many bytes of a bad line are kept in the load-errors table.
RAW_TEXT_LIMIT = 2000
# Lines this long are discarded as oversized by the Python reader without staging their whole text.
OVERSIZED_LINE_BYTES = 1 << 20


@dataclass
class StagedFile:
    idx: int
    file: LandingFile
    path: Path
    corrupt_reason: str | None = None
    recovered_lines: int | None = None


def create_stage(conn: duckdb.DuckDBPyConnection, files: list[StagedFile]) -> None:
    """Fill `_raw` and `_chunk_files` for these files (outside any transaction: a read may fail)."""
    conn.execute("DROP TABLE IF EXISTS _raw")
    conn.execute("DROP TABLE IF EXISTS _chunk_files")
    conn.execute(
        "CREATE TEMP TABLE _raw (filename VARCHAR, raw VARCHAR, extra VARCHAR, line_no BIGINT, forced VARCHAR)"
    )
    conn.execute(
        "CREATE TEMP TABLE _chunk_files (file_idx INTEGER, path VARCHAR, file_key VARCHAR, "
        "source_id VARCHAR, uploaded_at TIMESTAMPTZ)"
    )
    conn.execute(
        "INSERT INTO _chunk_files SELECT unnest($idx), unnest($path), unnest($key), unnest($source), unnest($at)",
        {
            "idx": [s.idx for s in files],
            "path": [str(s.path) for s in files],
            "key": [s.file.key for s in files],
            "source": [s.file.source_id for s in files],
            "at": [s.file.modified for s in files],
        },
    )
    try:
        conn.execute("INSERT INTO _raw " + _READ_LINES, {"paths": [str(f.path) for f in files]})
        return
    except duckdb.Error:
        conn.execute("DELETE FROM _raw")
    # One of the files is unreadable as a whole: take them one by one to find which.
    for staged in files:
        try:
            conn.execute("INSERT INTO _raw " + _READ_LINES, {"paths": [str(staged.path)]})
        except duckdb.Error:
            conn.execute("DELETE FROM _raw WHERE filename = ?", [str(staged.path)])
            _stage_recovered(conn, staged)


def _stage_recovered(conn: duckdb.DuckDBPyConnection, staged: StagedFile) -> None:
    lines, reason = recover_lines(staged.path)
    staged.corrupt_reason = reason
    staged.recovered_lines = len(lines)
    if not lines:
        return
    # Through a temporary CSV file: the engine reads it far faster than row-by-row inserts.
    fd, tmp = tempfile.mkstemp(suffix=".csv", prefix="cdp-recovered-")
    try:
        with os.fdopen(fd, "w", newline="", encoding="utf-8") as out:
            writer = csv.writer(out, quoting=csv.QUOTE_ALL, lineterminator="\n")
            writer.writerows((str(staged.path), n, text, forced or "") for n, text, forced in lines)
        conn.execute(
            """INSERT INTO _raw
               SELECT filename, raw, NULL, line_no, nullif(forced, '')
               FROM read_csv(?, columns = {'filename': 'VARCHAR', 'line_no': 'BIGINT', 'raw': 'VARCHAR',
                                           'forced': 'VARCHAR'},
                             header = false, delim = ',', quote = '"', escape = '"', auto_detect = false,
                             max_line_size = 134217728, buffer_size = 268435456)""",
            [tmp],
        )
    finally:
        os.unlink(tmp)


def recover_lines(path: Path) -> tuple[list[tuple[int, str, str | None]], str | None]:
    """Every line of a gzip file that can be read, numbered, with a reason for the bad ones.

    Returns the lines and why the file is corrupt (None when only some lines were bad).
    """
    data = bytearray()
    reason: str | None = None
    if path.stat().st_size == 0:
        return [], "empty file: 0 bytes, not gzip data"
    try:
        with gzip.open(path, "rb") as stream:
            while chunk := stream.read(1 << 20):
                data += chunk
    except EOFError:
        reason = "truncated gzip: the file ends before its compressed stream does"
    except (gzip.BadGzipFile, zlib.error, OSError) as exc:
        reason = f"unreadable gzip: {exc}"
    lines: list[tuple[int, str, str | None]] = []
    pieces = bytes(data).split(b"\n")
    complete = len(pieces) - 1  # the piece after the last newline is complete only at a clean end
    for index, piece in enumerate(pieces):
        number = index + 1
        if index == complete:
            if not piece.strip():
                break
            if reason is not None:
                text = piece.decode("utf-8", errors="replace")
                lines.append((number, text[:RAW_TEXT_LIMIT], "truncated_line"))
                break
        try:
            text = piece.decode("utf-8")
        except UnicodeDecodeError:
            lines.append((number, piece.decode("utf-8", errors="replace")[:RAW_TEXT_LIMIT], "invalid_utf8"))
            continue
        if len(piece) > OVERSIZED_LINE_BYTES:
            lines.append((number, text[:RAW_TEXT_LIMIT], "oversized"))
            continue
        if "\x00" in text:
            lines.append((number, text.replace("\x00", "\\u0000")[:RAW_TEXT_LIMIT], "invalid_json"))
            continue
        lines.append((number, text, None))
    return lines, reason
