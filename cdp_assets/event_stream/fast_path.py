"""The fast path's rules: inserting a table straight from the parse, and what makes such an insert stop.

A fast insert checks every row against the conditions built here and stops the transaction at the first
value it cannot take (FastPathMiss); see writer.TableWriter for when the fast path is taken.
"""

from __future__ import annotations

import duckdb

from cdp_assets.event_stream.flatten import ColumnPlan, Path, Shape
from cdp_assets.event_stream.value_sql import conflict_test


class FastPathMiss(Exception):
    """A fast-path insert met a value it cannot take; the transaction is lost, write the batch again
    without the fast path."""

    def __init__(self, table: str):
        super().__init__(f"the fast-path insert into {table} met a value that needs the checked path")
        self.table = table


# The message of the error a fast-path insert raises (through DuckDB's error()), to recognise it.
FAST_PATH_MISS = "cdp fast path: a value needs the checked path"


def is_fast_path_miss(exc: BaseException) -> bool:
    return isinstance(exc, duckdb.Error) and FAST_PATH_MISS in str(exc)


def guess_new_kinds(
    plan: ColumnPlan, columns: dict[str, str], shape: Shape, guess: bool
) -> tuple[dict[str, str], dict[str, tuple[str, int]]] | None:
    """For the fast path: the kinds of the new columns discovery saw values for, as the checked path
    would decide them over the whole batch (see flatten.decide_kind), guessed from the samples; the
    insert checks every value against the guess. A key seen only null or "" gets no column yet.

    - A string among the samples: string, whatever else comes (a string wins).
    - Ints and floats: the kind sampled first, and the other one may only come after that line
      (they fit each other's columns, so the first kind decides); the second map holds, per such
      column, the other kind and the sampled line it must not come at or before.
    None when samples disagree otherwise, or `guess` is false and a new column's samples hold
    values but no string: the table takes the checked path."""
    kinds: dict[str, str] = {}
    after: dict[str, tuple[str, int]] = {}
    for column, paths in plan.columns.items():
        if column in columns:
            continue
        seen: dict[str, int] = {}
        for path in paths:
            for kind, seq in shape.kinds.get(path, {}).items():
                seen[kind] = min(seq, seen.get(kind, seq))
        if seen and not guess and "string" not in seen:
            return None
        if "string" in seen:
            kinds[column] = "string"
        elif set(seen) == {"int", "float"}:
            first, other = sorted(seen, key=lambda kind: seen[kind])
            kinds[column] = first
            after[column] = (other, seen[first])
        elif len(seen) > 1:
            return None
        elif seen:
            kinds[column] = next(iter(seen))
    return kinds, after


def new_column_tests(
    plan: ColumnPlan,
    columns: dict[str, str],
    guessed: tuple[dict[str, str], dict[str, tuple[str, int]]],
    slot: dict[Path, int],
    is_json: dict,
) -> list[str]:
    """What a fast insert must not meet in the columns it adds: a value of another kind than the
    guessed one (but any value in a string column, and the other number kind after its line), a
    number too long for an int column; and in a key without a column yet (seen only null or ""),
    any value."""
    kinds, after = guessed
    tests = []
    for column, paths in plan.columns.items():
        if column in columns:
            continue
        kind = kinds.get(column)
        for index, as_json in ((slot[p], is_json[p]) for p in paths):
            if kind is None:
                tests.append(f"cdp_present(f{index})" if as_json else f"nullif(f{index}, '') IS NOT NULL")
            elif kind == "string" or not as_json:  # (plain text is extracted only for proven strings)
                continue
            elif column in after:
                other, seq = after[column]
                tests.append(f"cdp_kind(f{index}) NOT IN ('{kind}', '{other}')")
                tests.append(f"(cdp_kind(f{index}) = '{other}' AND seq <= {int(seq)})")
                tests.append(conflict_test(kind, index))
            else:
                tests.append(f"cdp_kind(f{index}) <> '{kind}'")
                tests.append(conflict_test(kind, index))
    return tests
