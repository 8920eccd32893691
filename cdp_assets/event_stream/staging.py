"""Reading landing files into the warehouse as raw lines, one row a line, without parsing them in Python.

DuckDB's CSV reader does the decompression and line splitting (in parallel, in the engine); the lines go
into the connection's temporary table `_raw` in file and line order, so a line's number is its position
within its file. A file the reader cannot take (truncated gzip, invalid UTF-8, a line longer than the
reader's buffer) is read again in Python, as far as it can be: its complete lines are staged with their
numbers, and bad lines are staged with the reason they will be discarded for.

The reader is set to keep empty lines (as NULL rows), but it also ends a line at a CR, dropping the CR
and shifting the numbers of the lines after it. So every file it read is checked: the bytes it returned
plus one newline a line must equal the file's uncompressed size, which a gzip file states in its last
four bytes (ISIZE), so the check reads four bytes, not the file; only a file with an empty line is read
whole, to look for CRs (see `_exact`). A file that fails (CRLF endings, several gzip members, a size over
4 GiB) is read again by the Python reader; that is rare, as RudderStack's dumps are single gzip members of
JSON lines, which hold no raw CR.
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import duckdb

from cdp_assets.event_stream.landing import LandingFile

# Line-splitting settings: one VARCHAR column, no quoting; an empty line is a NULL row. The delimiter is
# CR, which files read this way never hold (see above), so nothing is cut: a line with a control byte
# (never valid in JSON) is kept whole and discarded as invalid JSON.
_READ_LINES = """
    SELECT filename, raw, NULL::VARCHAR AS extra, NULL::BIGINT AS line_no, NULL::VARCHAR AS forced
    FROM read_csv($paths, columns = {'raw': 'VARCHAR'}, header = false,
                  delim = chr(13), quote = '', escape = '', new_line = '\\n', comment = '',
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
    # How its lines were read: "csv" (by the engine) or "python" (the exact reader, see recover_lines)
    reader: str = "csv"
    # Why it could not be read at all (deleted or made unreadable after it was listed): the load skips
    # it without a ledger row, so the next load tries it again.
    skipped: str | None = None


def create_stage(conn: duckdb.DuckDBPyConnection, files: list[StagedFile]) -> None:
    """Fill `_raw` and `_chunk_files` for these files (outside any transaction: a read may fail)."""
    # A line's number is its position in `_raw`: whatever this connection or the instance was set to.
    conn.execute("SET SESSION preserve_insertion_order = true")
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
    except duckdb.Error:
        conn.execute("DELETE FROM _raw")
        # One of the files is unreadable as a whole: take them one by one to find which.
        for staged in files:
            try:
                conn.execute("INSERT INTO _raw " + _READ_LINES, {"paths": [str(staged.path)]})
            except duckdb.Error:
                conn.execute("DELETE FROM _raw WHERE filename = ?", [str(staged.path)])
                _stage_recovered(conn, staged)
    _restage_inexact(conn, [s for s in files if s.recovered_lines is None])


def stage_size(conn: duckdb.DuckDBPyConnection) -> tuple[int, int]:
    """The staged lines (blank ones included) and their text bytes."""
    lines, text = conn.execute("SELECT count(*), coalesce(sum(strlen(raw)), 0) FROM _raw").fetchone()
    return int(lines), int(text)


def _restage_inexact(conn: duckdb.DuckDBPyConnection, files: list[StagedFile]) -> None:
    """Read again, exactly, the files whose lines the CSV reader did not return byte for byte."""
    if not files:
        return
    returned = {
        path: (size, blanks)
        for path, size, blanks in conn.execute(
            "SELECT filename, sum(coalesce(strlen(raw), 0)) + count(*), count(*) FILTER (WHERE raw IS NULL) "
            "FROM _raw WHERE line_no IS NULL GROUP BY 1"
        ).fetchall()
    }
    inexact = [s for s in files if not _exact(returned.get(str(s.path), (0, 0)), s.path)]
    if not inexact:
        return
    conn.execute(
        "DELETE FROM _raw WHERE filename IN (SELECT unnest($paths))", {"paths": [str(s.path) for s in inexact]}
    )
    for staged in inexact:
        _stage_recovered(conn, staged)
    # The lines read again were appended: put every line back in file and line order (the order in
    # which the batch's first occurrences and first-seen kinds are decided), numbering them first.
    conn.execute(
        """CREATE OR REPLACE TEMP TABLE _raw_ordered AS
           SELECT r.filename, r.raw, r.extra,
                  coalesce(r.line_no, r.rowid - min(r.rowid) OVER (PARTITION BY r.filename) + 1) AS line_no,
                  r.forced
           FROM _raw r JOIN _chunk_files f ON f.path = r.filename
           ORDER BY f.file_idx, line_no"""
    )
    conn.execute("DROP TABLE _raw")
    conn.execute("ALTER TABLE _raw_ordered RENAME TO _raw")


def _exact(returned: tuple[int, int], path: Path) -> bool:
    """Whether the reader returned a file byte for byte, judged from the bytes and empty lines it gave.

    The bytes, plus one newline a line, must equal the uncompressed size the gzip trailer states (or one
    more, when the last line has no newline). A CR ends a line for the reader and is dropped, which the
    byte count alone can miss: a CRLF file shows it as an empty line after every line, so a file with any
    empty line is searched for CRs (empty lines are rare in dumps, so the extra read is too). What this
    does not catch is a lone CR between two tokens of one JSON line in a file without empty lines: that
    line comes out as two invalid lines, both discarded with their text, and the numbers after it in
    that file are one higher.
    """
    size, blanks = returned
    try:
        with path.open("rb") as stream:
            stream.seek(-4, os.SEEK_END)
            isize = int.from_bytes(stream.read(4), "little")
    except OSError:
        return False  # read again by the exact reader, which records why it cannot
    return size in (isize, isize + 1) and (blanks == 0 or not _holds_cr(path))


def _holds_cr(path: Path) -> bool:
    try:
        return any(b"\r" in piece for piece in _decompressed(path))
    except (zlib.error, EOFError, OSError):
        return True  # read again by the exact reader, which records why


def _stage_recovered(conn: duckdb.DuckDBPyConnection, staged: StagedFile) -> None:
    try:
        lines, reason = recover_lines(staged.path)
    except OSError as exc:
        staged.skipped = f"cannot read it: {exc.strerror or exc}"
        return
    staged.reader = "python"
    staged.corrupt_reason = reason
    staged.recovered_lines = len(lines)
    if not lines:
        return
    # One statement a file, the lines bound as lists (3x faster than through a temporary CSV file). An
    # empty line is staged as NULL, as the CSV reader stages it.
    conn.execute(
        "INSERT INTO _raw SELECT $file, nullif(unnest($raw), ''), NULL, unnest($line_no), unnest($forced)",
        {
            "file": str(staged.path),
            "raw": [text for _n, text, _forced in lines],
            "line_no": [n for n, _text, _forced in lines],
            "forced": [forced for _n, _text, forced in lines],
        },
    )


def recover_lines(path: Path) -> tuple[list[tuple[int, str, str | None]], str | None]:
    """Every line of a gzip file that can be read, numbered, with a reason for the bad ones.

    Returns the lines and why the file is corrupt (None when only some lines were bad).
    """
    if path.stat().st_size == 0:
        return [], "empty file: 0 bytes, not gzip data"
    data, reason = _gunzip(path)
    lines: list[tuple[int, str, str | None]] = []
    pieces = bytes(data).split(b"\n")
    complete = len(pieces) - 1  # the piece after the last newline is complete only at a clean end
    for index, piece in enumerate(pieces):
        number = index + 1
        # In a CRLF file the CR ends the line with the LF: it is not part of the event (whose size the
        # 32 KB limit measures) nor of the text a discard keeps.
        piece = piece.removesuffix(b"\r")
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


def _decompressed(path: Path) -> Iterator[bytes]:
    """A gzip file's bytes, piece by piece, every member; raises zlib.error, or EOFError if it is cut.

    zlib directly rather than `gzip.open`: at a truncated end, `gzip` raises and loses the data it had
    decompressed in that read, which for a small file is all of it.
    """
    decompressor = zlib.decompressobj(zlib.MAX_WBITS | 16)
    in_member = False
    with path.open("rb") as stream:
        while chunk := stream.read(1 << 20):
            while chunk:
                piece = decompressor.decompress(chunk)
                if piece:
                    yield piece
                in_member = not decompressor.eof
                chunk = b""
                if decompressor.eof:  # the next gzip member, if any, starts in what is left
                    chunk = decompressor.unused_data
                    decompressor = zlib.decompressobj(zlib.MAX_WBITS | 16)
    if in_member:
        raise EOFError("the file ends before its compressed stream does")


def _gunzip(path: Path) -> tuple[bytes, str | None]:
    """As much of a gzip file as can be decompressed, and why not all of it (None: all of it)."""
    data = bytearray()
    try:
        for piece in _decompressed(path):
            data += piece
    except zlib.error as exc:
        return bytes(data), f"unreadable gzip: {exc}"
    except EOFError:
        return bytes(data), "truncated gzip: the file ends before its compressed stream does"
    return bytes(data), None
