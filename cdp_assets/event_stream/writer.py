"""Writing a classified batch into RudderStack's tables: flattening, typing, schema evolution, discards.

Per batch, after discovery (see discovery.py) has found every payload path the loaded events hold: per
target table, one query extracts the values of that table's paths (by position in a parsed struct or by
JSON pointers bound as a parameter, see json_access.py: no key from the data is ever written into SQL
text) into a temporary table `_vals_<n>`; new columns get their kind from what the batch holds; then one
INSERT converts every value to its column's kind, and values that do not fit become NULL plus a
`rudder_discards` row (the value tests and conversions are in value_sql.py). A table whose columns the
batch does not change skips `_vals`: its INSERT extracts the values itself (the fast path, see
TableWriter and fast_path.py).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from datetime import datetime

import duckdb

from cdp_assets.event_stream import spec
from cdp_assets.event_stream.fast_path import (
    FAST_PATH_MISS,
    FastPathMiss,
    guess_new_kinds,
    is_fast_path_miss,
    new_column_tests,
)
from cdp_assets.event_stream.flatten import (
    ColumnPlan,
    Path,
    Rejected,
    Shape,
    decide_kind,
    leaf_column,
    plan_columns,
)
from cdp_assets.event_stream.json_access import JsonAccess, fast_vals
from cdp_assets.event_stream.naming import quote
from cdp_assets.event_stream.routing import json_pointer
from cdp_assets.event_stream.value_sql import SQL_TYPES, conflict_test, kind_of_type, widening

# Where the standard columns come from (`_cls` names them the same, except these).
_STANDARD_SOURCES = {"id": "message_id", "event": "event_table"}

# The most parallel scans of `_loaded` one table's extraction splits into (see `prepare`).
MAX_SCAN_PARTS = 8


@dataclass
class TableWrite:
    """What one table received from a batch."""

    table: str
    rows: int = 0
    new_columns: dict[str, str] = field(default_factory=dict)
    value_discards: int = 0
    fast: bool = False  # inserted straight from the parse (see TableWriter)


@dataclass
class Prepared:
    """One table's rows of a batch, extracted into `vals` (one text column per path), before insert.

    Extracted means stored in a temporary table, scanned by the checks and then by the insert; or, on
    the fast path (see `TableWriter`), `vals` is a subquery that the insert itself evaluates, with
    `checks` as the condition under which it stops the transaction (FastPathMiss).
    """

    table: str
    event_type: str
    plan: ColumnPlan
    vals: str
    slot: dict[Path, int]  # path -> its column f<slot> in `vals`
    is_json: dict[Path, bool]
    new_objects: set[Path]  # leaf paths holding an object in some event: discovery missed them
    # (existing typed column, path) -> whether some value there does not fit the column's kind
    conflicts: dict[tuple[str, Path], bool] = field(default_factory=dict)
    # Fast path only: the parameters `vals` binds, and the SQL condition of a value it cannot take.
    params: dict | None = None
    checks: str | None = None
    new_kinds: dict[str, str] = field(default_factory=dict)  # the new columns' kinds, decided already
    adds_columns: bool = False  # the plan holds keys without a column yet (the riskier fast inserts)
    unordered: bool = False  # `vals` scans in parallel branches, which run so only without insertion order
    # Fast path with rejected keys: an extraction of just their values (same slots), and its parameters.
    rejected_vals: tuple[str, dict] | None = None

    @property
    def fast(self) -> bool:
        return self.params is not None


class TableWriter:
    """Writes the loaded events (`_loaded_all`, with their standard columns in `_cls`) into one schema.

    `direct_type`: the event type whose lines `_loaded_direct` holds (see classify's `_split_loaded`).

    `fast`: a table whose columns all exist already (but for keys with only null or "" values so far),
    and not among `checked`, is inserted straight from the parse, without storing the extracted values
    first. Storing them is what lets the checks run before the insert (an object where discovery saw a
    scalar, a value its typed column cannot hold, the first value of a key without a column); on the
    fast path the insert checks each row instead and stops at the first such value (FastPathMiss),
    which costs the whole transaction: the caller rolls back and writes the batch again with that
    table in `checked`. It pays because steady-state batches bring no new shapes, and storing the
    values cost about as much as inserting them.
    """

    def __init__(
        self,
        conn: duckdb.DuckDBPyConnection,
        schema: str,
        uuid_ts: datetime,
        direct_type: str | None = None,
        fast: bool = False,
        checked: Collection[str] = (),
    ):
        self.conn = conn
        self.fast = fast
        self.checked = checked
        self.schema = schema
        self.uuid_ts = uuid_ts
        self.direct_type = direct_type
        self.existing = self._existing_columns()
        self._vals_count = 0
        threads = int(conn.execute("SELECT current_setting('threads')").fetchone()[0])
        self.threads = max(1, min(threads, MAX_SCAN_PARTS))

    def _existing_columns(self) -> dict[str, dict[str, str]]:
        rows = self.conn.execute(
            "SELECT table_name, column_name, data_type FROM duckdb_columns() "
            "WHERE database_name = current_database() AND schema_name = ? ORDER BY table_name, column_index",
            [self.schema],
        ).fetchall()
        tables: dict[str, dict[str, str]] = {}
        for table, column, dtype in rows:
            tables.setdefault(table, {})[column] = kind_of_type(dtype)
        return tables

    @contextlib.contextmanager
    def _unordered(self, on: bool) -> Iterator[None]:
        """Let this connection's statements lose insertion order (rows are told apart by `seq`). Put
        back when the statement succeeds; after a failure the transaction is aborted and takes no
        statement, so the loader puts it back after the rollback."""
        if not on:
            yield
            return
        self.conn.execute("SET SESSION preserve_insertion_order = false")
        yield
        self.conn.execute("RESET SESSION preserve_insertion_order")

    def _table(self, name: str) -> str:
        return f"{quote(self.schema)}.{quote(name)}"

    # -- schema ------------------------------------------------------------------------------------

    def ensure_table(self, table: str, columns: dict[str, str]) -> None:
        """Create the table, or add the columns it lacks (schema evolution: new keys add columns)."""
        have = self.existing.get(table)
        if have is None:
            cols = ", ".join(f"{quote(c)} {SQL_TYPES[k]}" for c, k in columns.items())
            self.conn.execute(f"CREATE TABLE {self._table(table)} ({cols})")
            self.existing[table] = dict(columns)
            return
        for column, kind in columns.items():
            if column not in have:
                self.conn.execute(f"ALTER TABLE {self._table(table)} ADD COLUMN {quote(column)} {SQL_TYPES[kind]}")
                have[column] = kind

    def ensure_standard_tables(self) -> None:
        self.conn.execute(f"CREATE SCHEMA IF NOT EXISTS {quote(self.schema)}")
        for event_type, table in spec.TYPE_TABLES.items():
            self.ensure_table(table, spec.standard_columns(event_type))
        self.ensure_table(spec.USERS_TABLE, spec.users_columns(spec.standard_columns("identify")))
        self.ensure_table(spec.DISCARDS_TABLE, spec.DISCARDS_COLUMNS)

    # -- writing -----------------------------------------------------------------------------------

    def prepare(
        self,
        table: str,
        event_type: str,
        shape: Shape,
        objects: set[Path],
        where: str,
        params: dict,
    ) -> Prepared:
        """Extract the loaded rows selected by `where` (over `_loaded_all l`) for `table`: one parse each
        (on the fast path, only the SQL that extracts them, for the insert to run)."""
        standard = spec.standard_columns(event_type)
        self.ensure_table(table, standard)
        columns = self.existing[table]
        plan = plan_columns(table, event_type, shape.leaves, columns)
        access = JsonAccess()
        for column, paths in plan.columns.items():
            kind = columns.get(column)
            plain = kind == "string" or (kind is None and all(p in shape.proven_strings for p in paths))
            for path in paths:
                access.add(path, not plain, objects)
        for rejected in plan.rejected:
            access.add(rejected.path, True, objects)
        expressions = access.expressions()
        paths = list(expressions)
        slot = {path: i for i, path in enumerate(paths, start=1)}
        parsed, bound, parts = self._parse(access, event_type, where, params)
        values = "".join(f", {expressions[p][0]} AS f{slot[p]}" for p in paths)
        is_json = {path: expressions[path][1] for path in paths}
        # A plain leaf whose value is an object somewhere: RudderStack flattens it, so it must be known.
        leaves = [p for p in paths if p not in objects]
        # Whether an existing typed column receives a value it cannot hold (see `_may_conflict`).
        typed = [
            (column, path)
            for column, column_paths in plan.columns.items()
            if columns.get(column, "string") != "string" and is_json.get(column_paths[0], False)
            for path in column_paths
        ]
        tests = [f"starts_with(f{slot[p]}, '{{')" for p in leaves]
        tests += [conflict_test(columns[column], slot[path]) for column, path in typed]
        # New columns' kinds are guessed only for the event type that holds most of the batch, where
        # storing the values costs most: elsewhere a wrong guess (a rewrite of the chunk) would cost more
        # than the checked path. A sampled string is no guess (a string wins over every other kind, and a
        # string column takes any value): it goes fast everywhere. Rejected keys go fast too: their
        # discard rows are written after the insert, from a parse of just their values.
        guessed = guess_new_kinds(plan, columns, shape, guess=event_type == self.direct_type)
        fast = self.fast and table not in self.checked
        if fast and guessed is not None:
            new_kinds = guessed[0]
            stops = [*tests, *new_column_tests(plan, columns, guessed, slot, is_json)]
            rejected = None
            if plan.rejected:
                only = access.restricted({r.path for r in plan.rejected})
                found = only.expressions()
                sql, rejected_params, _parts = self._parse(only, event_type, where, params)
                rejected_values = "".join(f", {found[p][0]} AS f{slot[p]}" for p in found)
                rejected = (fast_vals(only, sql, rejected_values, rejected_params), rejected_params)
            return Prepared(
                *(table, event_type, plan, fast_vals(access, parsed, values, bound), slot, is_json, set()),
                params=bound,
                rejected_vals=rejected,
                # NULL counts as false where the checks are used (a CASE condition), and bare ANDs let the
                # engine skip the rest of a test for the rows its first term rules out.
                checks=" OR ".join(f"({test})" for test in stops) or None,
                new_kinds=new_kinds,
                adds_columns=any(c not in columns for c in plan.columns),
                unordered=parts > 1,
            )
        self._vals_count += 1
        vals = f"_vals_{self._vals_count}"
        with self._unordered(parts > 1):
            if access.pointers:
                bound["ptr"] = access.pointers
                # MATERIALIZED: inlined, the parse would run again for every pointer column.
                self.conn.execute(
                    f"""CREATE OR REPLACE TEMP TABLE {vals}_data AS
                        WITH src AS MATERIALIZED ({parsed})
                        SELECT *, {", ".join(access.pointer_columns)} FROM src""",
                    bound,
                )
            else:
                # The parsed struct is stored once; the view below reaches into it per column, cheaply.
                self.conn.execute(f"CREATE OR REPLACE TEMP TABLE {vals}_data AS {parsed}", bound)
        self.conn.execute(f"CREATE OR REPLACE TEMP VIEW {vals} AS SELECT *{values} FROM {vals}_data")
        # The checks in one scan of the extracted rows: is any value an object, does any not fit.
        aggregates = [f"bool_or({test})" for test in tests]
        hits = self.conn.execute(f"SELECT [{', '.join(aggregates)}] FROM {vals}").fetchone()[0] if tests else []
        new_objects = {path for path, hit in zip(leaves, hits[: len(leaves)], strict=True) if hit}
        conflicts = {pair: bool(hit) for pair, hit in zip(typed, hits[len(leaves) :], strict=True)}
        return Prepared(table, event_type, plan, vals, slot, is_json, new_objects, conflicts)

    def _parse(self, access: JsonAccess, event_type: str, where: str, params: dict) -> tuple[str, dict, int]:
        """SQL for the rows `where` selects (over `_loaded_all l`), with their standard columns and `j`, the
        parse of `access`'s paths; its parameters; and how many parallel scans it is made of."""
        standard = spec.standard_columns(event_type)
        std = ", ".join(f"l.{quote(_STANDARD_SOURCES.get(n, n))}" for n in standard if n != "uuid_ts")
        bound = {**params, "uuid_ts": self.uuid_ts}
        lines = "_loaded_direct" if event_type == self.direct_type else "_loaded"
        select = f"SELECT l.seq, {std}, $uuid_ts AS uuid_ts"
        structure = access.structure()
        if structure:
            bound["spec"] = json.dumps(structure)
            select += ", from_json(l.raw, $spec) AS j"
        # `_loaded` is under one row group (it holds what the direct type leaves), so a scan of it runs on
        # one thread; one scan per thread, each taking every n-th line, spreads the parse over all of
        # them. (A UNION ALL runs its branches in parallel only when insertion order may be lost.)
        parts = self.threads if lines == "_loaded" else 1
        parsed = " UNION ALL ".join(
            f"{select} FROM {lines} l WHERE ({where})" + (f" AND l.seq % {parts} = {k}" if parts > 1 else "")
            for k in range(parts)
        )
        return parsed, bound, parts

    def insert(self, prepared: Prepared) -> TableWrite:
        """Settle new columns' kinds, add them, and insert the prepared rows converted to their kinds."""
        table, plan, vals, slot = prepared.table, prepared.plan, prepared.vals, prepared.slot
        standard = spec.standard_columns(prepared.event_type)
        columns = self.existing[table]
        # On the fast path the new columns' kinds are decided (the insert stops at a value that
        # disagrees), and a key without a column so far still has no value (or the insert stops).
        new = [] if prepared.fast else [column for column in plan.columns if column not in columns]
        typed_new = [c for c in new if any(prepared.is_json[p] for p in plan.columns[c])]
        kinds = self._kinds_seen(typed_new, prepared) if typed_new else {}
        plain = self._plain_kinds(vals, plan, slot, [c for c in new if c not in kinds])
        new_columns: dict[str, str] = dict(prepared.new_kinds)
        for column in new:
            kind = decide_kind(kinds[column]) if column in kinds else plain[column]
            if kind is not None:
                new_columns[column] = kind
        self.ensure_table(table, new_columns)
        columns = self.existing[table]
        feeding = {c: p for c, p in plan.columns.items() if c in columns}

        target = [quote(name) for name in standard]
        select = [quote(_STANDARD_SOURCES.get(name, name)) for name in standard]
        for column, paths in feeding.items():
            parts = [self._convert(columns[column], prepared, path) for path in paths]
            select.append(parts[0] if len(parts) == 1 else f"coalesce({', '.join(parts)})")
            target.append(quote(column))
        sql = f"INSERT INTO {self._table(table)} ({', '.join(target)}) SELECT {', '.join(select)} FROM {vals}"
        if prepared.checks:
            sql += f" WHERE CASE WHEN {prepared.checks} THEN error($fast_path_miss) ELSE true END"
        try:
            with self._unordered(prepared.unordered):
                inserted = self.conn.execute(sql, self._fast_params(prepared)).fetchone()[0]
        except duckdb.Error as exc:
            if is_fast_path_miss(exc):
                raise FastPathMiss(table) from None
            raise
        result = TableWrite(table, rows=inserted, new_columns=new_columns, fast=prepared.fast)
        if prepared.fast:  # every value fitted its column, or the insert would have stopped
            if prepared.rejected_vals:
                with self._unordered(prepared.unordered):
                    result.value_discards = self._discards(prepared, columns, [], *prepared.rejected_vals)
            return result
        checked = [
            (column, path)
            for column, paths in feeding.items()
            if columns[column] != "string"
            and (
                column not in new_columns
                or columns[column] in ("int", "float")  # numbers too long for it, or not finite
                or set(kinds[column]) - {columns[column]} - widening(columns[column])
            )
            for path in paths
        ]
        result.value_discards = self._discards(prepared, columns, checked)
        self.drop(prepared)
        return result

    @staticmethod
    def _fast_params(prepared: Prepared) -> dict:
        params = dict(prepared.params or {})
        if prepared.checks:
            params["fast_path_miss"] = FAST_PATH_MISS
        return params

    def drop(self, prepared: Prepared) -> None:
        if prepared.fast:
            return
        self.conn.execute(f"DROP VIEW IF EXISTS {prepared.vals}")
        self.conn.execute(f"DROP TABLE IF EXISTS {prepared.vals}_data")

    @staticmethod
    def _convert(kind: str, prepared: Prepared, path: Path) -> str:
        f = f"f{prepared.slot[path]}"
        if not prepared.is_json[path]:
            if kind != "string":  # plain text only ever feeds string columns
                raise ValueError(f"{path} is extracted as text but feeds a {kind} column")
            return f"nullif({f}, '')"
        return f"cdp_to_{kind}({f})"

    def _plain_kinds(
        self, vals: str, plan: ColumnPlan, slot: dict[Path, int], columns: list[str]
    ) -> dict[str, str | None]:
        """New columns whose values are proven strings: string, unless every value is null or "".
        One scan for all of them (a query a column cost a statement each: hundreds on a first load)."""
        if not columns:
            return {}
        tests = ", ".join(
            "bool_or(" + " OR ".join(f"nullif(f{slot[p]}, '') IS NOT NULL" for p in plan.columns[c]) + ")"
            for c in columns
        )
        found = self.conn.execute(f"SELECT [{tests}] FROM {vals}").fetchone()[0]
        return {c: "string" if hit else None for c, hit in zip(columns, found, strict=True)}

    def _kinds_seen(self, columns: list[str], prepared: Prepared) -> dict[str, dict]:
        """For each new column, the first sequence number at which each value kind arrived."""
        slots = [(column, prepared.slot[path]) for column in columns for path in prepared.plan.columns[column]]
        kinds = ", ".join(
            f"cdp_kind(f{index})"
            if prepared.is_json[path]
            else f"CASE WHEN nullif(f{index}, '') IS NOT NULL THEN 'string' END"
            for (column, index), path in zip(slots, [p for c in columns for p in prepared.plan.columns[c]], strict=True)
        )
        # One kind per value, then one small aggregate: (slot, kind) -> first sequence number.
        rows = self.conn.execute(
            f"""SELECT slot, kind, min(seq) FROM (
                    SELECT seq, unnest(range(1, $n + 1)) AS slot, unnest([{kinds}]) AS kind FROM {prepared.vals})
                WHERE kind IS NOT NULL GROUP BY ALL""",
            {"n": len(slots)},
        ).fetchall()
        seen: dict[str, dict] = {column: {} for column in columns}
        for index, kind, first in rows:
            column = slots[index - 1][0]
            if kind not in seen[column] or first < seen[column][kind]:
                seen[column][kind] = first
        return seen

    def _discards(
        self,
        prepared: Prepared,
        columns: dict[str, str],
        checked: list[tuple[str, Path]],
        vals: str | None = None,
        params: dict | None = None,
    ) -> int:
        """Record every value that could not go into its column (kept as text, with the reason), read from
        `vals` (by default the prepared rows) with its `params`."""
        entries = []
        names: list[str] = []
        reasons: list[str] = []
        checked = self._may_conflict(prepared, columns, checked)
        for column, path in checked:
            f = f"f{prepared.slot[path]}"
            kind = columns[column]
            names.append(column)
            reasons.append(f"cannot convert to {kind}: value is ")
            entries.append(
                f"struct_pack(column_name := $dn[{len(names)}], column_value := cdp_unquote({f}), "
                f"reason := $dr[{len(names)}] || cdp_value_kind({f}), "
                f"bad := cdp_present({f}) AND cdp_to_{kind}({f}) IS NULL)"
            )
        for rejected in prepared.plan.rejected:
            f = f"f{prepared.slot[rejected.path]}"
            names.append(rejected.column or json_pointer(*rejected.path))
            reasons.append(f"{rejected.reason}; value is ")
            entries.append(
                f"struct_pack(column_name := $dn[{len(names)}], column_value := cdp_unquote({f}), "
                f"reason := $dr[{len(names)}] || cdp_value_kind({f}), bad := cdp_present({f}))"
            )
        if not entries:
            return 0
        discards = self._table(spec.DISCARDS_TABLE)
        return self.conn.execute(
            f"""INSERT INTO {discards} (table_name, row_id, column_name, column_value, received_at, uuid_ts, reason)
                SELECT $table, id, d.column_name, d.column_value, received_at, uuid_ts, d.reason
                FROM (SELECT message_id AS id, received_at, uuid_ts,
                             unnest(list_filter([{", ".join(entries)}], lambda e: e.bad)) AS d
                      FROM {vals or prepared.vals})""",
            {**(params or {}), "dn": names, "dr": reasons, "table": prepared.table},
        ).fetchone()[0]

    def _may_conflict(
        self, prepared: Prepared, columns: dict[str, str], checked: list[tuple[str, Path]]
    ) -> list[tuple[str, Path]]:
        """The typed columns that actually received a value they cannot hold: one cheap scan, so the
        costly per-value discard query runs only for them (and usually not at all). Existing columns
        were tested when the rows were extracted; only new ones are tested here."""
        todo = [pair for pair in checked if pair not in prepared.conflicts]
        found = dict(prepared.conflicts)
        if todo:
            tests = [f"bool_or({conflict_test(columns[c], prepared.slot[path])})" for c, path in todo]
            hits = self.conn.execute(f"SELECT [{', '.join(tests)}] FROM {prepared.vals}").fetchone()[0]
            found.update({pair: bool(hit) for pair, hit in zip(todo, hits, strict=True)})
        return [pair for pair in checked if found[pair]]

    # -- users -------------------------------------------------------------------------------------

    def discard_unplaced(
        self,
        table: str,
        event_type: str,
        paths: set[Path],
        objects: set[Path],
        where: str,
        params: dict,
        reason: str,
    ) -> int:
        """Record in rudder_discards, under `table`, every value at `paths` of the loaded rows `where`
        selects (over `_loaded_all l`): values that have no table to go to (a track whose name cannot
        name one). Returns how many rows."""
        access = JsonAccess()
        for path in sorted(paths):
            access.add(path, True, objects)
        expressions = access.expressions()
        found = list(expressions)
        slot = {path: i for i, path in enumerate(found, start=1)}
        parsed, bound, parts = self._parse(access, event_type, where, params)
        values = "".join(f", {expressions[p][0]} AS f{slot[p]}" for p in found)
        vals = fast_vals(access, parsed, values, bound)
        plan = ColumnPlan(table, event_type, {}, [Rejected(p, leaf_column(p, event_type), reason) for p in found])
        prepared = Prepared(table, event_type, plan, vals, slot, {p: expressions[p][1] for p in found}, set())
        with self._unordered(parts > 1):
            return self._discards(prepared, {}, [], vals, bound)

    def line_discards(self) -> int:
        """Record the values classification set aside (`_cls.rejects`: ids that were a JSON object or
        array, payload objects that were none) in rudder_discards, once for each table their event landed
        in. Returns how many rows."""
        discards = self._table(spec.DISCARDS_TABLE)
        return self.conn.execute(
            f"""INSERT INTO {discards} (table_name, row_id, column_name, column_value, received_at, uuid_ts, reason)
                SELECT unnest(list_filter([type_table, event_table], lambda t: t IS NOT NULL)), message_id,
                       d.column_name, d.column_value, received_at, $uuid_ts, d.reason
                FROM (SELECT *, unnest(rejects) AS d FROM _cls WHERE status = 'loaded' AND rejects IS NOT NULL)""",
            {"uuid_ts": self.uuid_ts},
        ).fetchone()[0]

    def refresh_users(self) -> int:
        """Recompute `users` for the user ids this batch identified."""
        return self.rebuild_users(
            "SELECT DISTINCT user_id FROM _cls WHERE status = 'loaded' AND event_type = 'identify' "
            "AND user_id IS NOT NULL AND trim(user_id) <> ''"
        )

    def rebuild_users(self, affected: str) -> int:
        """Rebuild the `users` rows of the ids `affected` (an SQL query of user ids) from `identifies`:
        the latest non-null value per column, RudderStack's rule. Returns how many ids were affected."""
        identifies = self.existing[spec.TYPE_TABLES["identify"]]
        columns = spec.users_columns(identifies)
        self.ensure_table(spec.USERS_TABLE, columns)
        count = self.conn.execute(f"SELECT count(*) FROM ({affected})").fetchone()[0]
        if not count:
            return 0
        users = self._table(spec.USERS_TABLE)
        self.conn.execute(f"DELETE FROM {users} WHERE id IN ({affected})")
        # Ties on received_at are broken by a hash of the message id, so a rebuild gives the same row.
        names = [c for c in columns if c != "id"]
        values = [f"arg_max({quote(c)}, _ord) FILTER (WHERE {quote(c)} IS NOT NULL)" for c in names]
        self.conn.execute(
            f"""INSERT INTO {users} (id, {", ".join(quote(c) for c in names)})
                SELECT user_id, {", ".join(values)} FROM (
                    SELECT *, epoch_us(received_at)::HUGEINT * 1024 + hash(id) % 1024 AS _ord
                    FROM {self._table(spec.TYPE_TABLES["identify"])} WHERE user_id IN ({affected}))
                GROUP BY user_id"""
        )
        return count
