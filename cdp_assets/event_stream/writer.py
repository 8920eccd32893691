"""Writing a classified batch into RudderStack's tables: flattening, typing, schema evolution, discards.

Per batch: `discover` finds every payload path the loaded events hold; per target table, one query
extracts the values of that table's paths (JSON pointers, bound as a parameter: no key from the data is
ever written into SQL text) into the temporary table `_vals`; new columns get their kind from what the
batch holds; then one INSERT converts every value to its column's kind, and values that do not fit
become NULL plus a `rudder_discards` row. A table whose columns the batch does not change skips `_vals`:
its INSERT extracts the values itself (the fast path, see TableWriter).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from datetime import datetime

import duckdb

from cdp_assets.event_stream import spec
from cdp_assets.event_stream.flatten import (
    DATETIME_PATTERN,
    INT_LIMIT,
    ColumnPlan,
    Path,
    Shape,
    decide_kind,
    plan_columns,
)
from cdp_assets.event_stream.naming import quote
from cdp_assets.event_stream.routing import json_pointer

SQL_TYPES = {
    "string": "VARCHAR",
    "int": "BIGINT",
    "float": "DOUBLE",
    "boolean": "BOOLEAN",
    "datetime": "TIMESTAMPTZ",
}
_KIND_OF_TYPE = {
    "VARCHAR": "string",
    "BIGINT": "int",
    "INTEGER": "int",
    "HUGEINT": "int",
    "DOUBLE": "float",
    "FLOAT": "float",
    "BOOLEAN": "boolean",
    "TIMESTAMP WITH TIME ZONE": "datetime",
    "TIMESTAMP": "datetime",
    "DATE": "datetime",
}

# Values are handled as the text of their JSON ('"a"', '12', '1.5', 'true', '[1]', '{..}', 'null').
# A NULL out of a present value is a conflict: RudderStack's "incompatible type" discard.
MACROS = [
    "cdp_present(f) AS f IS NOT NULL AND f NOT IN ('null', '\"\"') AND NOT starts_with(f, '{')",
    "cdp_is_number(f) AS f IS NOT NULL AND NOT (starts_with(f, '\"') OR starts_with(f, '[') "
    "OR starts_with(f, '{') OR f IN ('true', 'false', 'null'))",
    "cdp_is_fraction(f) AS (contains(f, '.') OR contains(f, 'e') OR contains(f, 'E')) "
    "AND TRY_CAST(f AS DOUBLE) <> trunc(TRY_CAST(f AS DOUBLE))",
    # Escape-free strings are cut out directly; only strings with escapes go through the JSON parser.
    "cdp_unquote(f) AS CASE WHEN f IS NULL OR f = 'null' THEN NULL WHEN NOT starts_with(f, '\"') THEN f "
    "WHEN contains(f, '\\') THEN json_extract_string(f, '$') ELSE f[2:-2] END",
    f"cdp_datetime_text(s) AS CASE WHEN length(s) <= 40 AND regexp_full_match(s, '{DATETIME_PATTERN}') "
    "THEN TRY_CAST(s AS TIMESTAMPTZ) END",
    "cdp_is_datetime(f) AS starts_with(f, '\"') AND length(f) BETWEEN 12 AND 42 AND substr(f, 6, 1) = '-' "
    "AND cdp_datetime_text(f[2:-2]) IS NOT NULL",
    "cdp_to_string(f) AS CASE WHEN starts_with(f, '{') THEN NULL ELSE nullif(cdp_unquote(f), '') END",
    # No cdp_is_number test first: the JSON texts that are not numbers (strings, arrays, objects, true,
    # false, null) fail both casts anyway, and the test cost as much as the cast.
    "cdp_to_int(f) AS CASE WHEN contains(f, '.') OR contains(f, 'e') OR contains(f, 'E') "
    "THEN TRY_CAST(trunc(TRY_CAST(f AS DOUBLE)) AS BIGINT) ELSE TRY_CAST(f AS BIGINT) END",
    "cdp_to_float(f) AS CASE WHEN cdp_is_number(f) THEN TRY_CAST(f AS DOUBLE) END",
    "cdp_to_boolean(f) AS CASE f WHEN 'true' THEN true WHEN 'false' THEN false END",
    # RudderStack writes a datetime value with milliseconds (RFC 3339 "milli"): the rest is cut, as it is
    # from the standard timestamps (see classify._to_millisecond, whose integer arithmetic this repeats).
    "cdp_to_millisecond(u) AS make_timestamptz(u - (u % 1000 + 1000) % 1000)",
    "cdp_to_datetime(f) AS CASE WHEN starts_with(f, '\"') "
    "THEN cdp_to_millisecond(epoch_us(cdp_datetime_text(cdp_unquote(f)))) END",
    "cdp_value_kind(f) AS CASE WHEN starts_with(f, '\"') THEN 'string' WHEN starts_with(f, '[') THEN 'array' "
    "WHEN f IN ('true', 'false') THEN 'boolean' ELSE 'number' END",
]
# What kind a value is, from its JSON text (for new columns' kinds); NULL for null, "" and objects. A
# whole number beyond 64 bits is a float, as RudderStack kinds it (see flatten.sampled_kind).
MACROS.append(
    "cdp_kind(f) AS CASE WHEN NOT cdp_present(f) THEN NULL "
    "WHEN starts_with(f, '[') THEN 'string' "
    "WHEN starts_with(f, '\"') THEN CASE WHEN cdp_is_datetime(f) THEN 'datetime' ELSE 'string' END "
    "WHEN f IN ('true', 'false') THEN 'boolean' "
    "WHEN cdp_is_fraction(f) THEN 'float' "
    f"WHEN abs(TRY_CAST(f AS DOUBLE)) >= {INT_LIMIT!r} THEN 'float' ELSE 'int' END"
)

# Whether a value's JSON text `{f}` fits a column kind, cheaply (a first character is enough for most).
# An int must also fit the column's 64 bits: a longer number is a discard, not a silent NULL. (Also the
# cheapest test to plan: with hundreds of columns, planning costs more than running.)
_FITS = {
    "int": "cdp_to_int({f}) IS NOT NULL",
    "float": "cdp_to_float({f}) IS NOT NULL",
    "boolean": "{f} IN ('true', 'false')",
    "datetime": "cdp_is_datetime({f})",
}

# Where the standard columns come from (`_cls` names them the same, except these).
_STANDARD_SOURCES = {"id": "message_id", "event": "event_table"}

# The most parallel scans of `_loaded` one table's extraction splits into (see `prepare`).
MAX_SCAN_PARTS = 8

# Shape discovery stops after this many rounds (each round groups the events by the keys they hold at
# every known path and reads one event per new group); real streams settle in two or three.
MAX_DISCOVERY_ROUNDS = 8
# Grouping by keys learns one more level of nesting a round at worst (a chain of events, each nesting
# deeper where only the one before was read). After this many rounds, and when asked to be thorough,
# events are grouped by the whole structure of their payload instead: costlier, but one round reads
# every distinct shape, so discovery always settles.
KEY_GROUPING_ROUNDS = 3


def key_pointers(known: KnownPaths) -> list[str]:
    """The JSON pointers whose keys group events in shape discovery, in a fixed order."""
    return [json_pointer(*p) for p in sorted(known.objects)]


def install_macros(conn: duckdb.DuckDBPyConnection) -> None:
    for macro in MACROS:
        conn.execute(f"CREATE OR REPLACE TEMP MACRO {macro}")


def kind_of_type(sql_type: str) -> str:
    return _KIND_OF_TYPE.get(sql_type.upper(), "string")


@dataclass
class TableWrite:
    """What one table received from a batch."""

    table: str
    rows: int = 0
    new_columns: dict[str, str] = field(default_factory=dict)
    value_discards: int = 0
    fast: bool = False  # inserted straight from the parse (see TableWriter)


@dataclass
class KnownPaths:
    """Payload objects known to exist (or documented to: spec.CONTEXT_OBJECTS); discovery groups events
    by the keys they hold at each of them.

    Kept for the whole load and persisted in the ledger, so a load starts where the last one ended.
    """

    objects: set[Path] = field(
        default_factory=lambda: (
            {(obj,) for obj in spec.ROOT_OBJECTS} | {("context", obj) for obj in spec.CONTEXT_OBJECTS}
        )
    )


GroupKey = tuple[str, str | None]  # (event type, event table)


@dataclass
class _Node:
    children: dict[str, _Node] = field(default_factory=dict)
    leaf: bool = False  # a value here feeds a column (or is discarded)
    as_json: bool = False  # the leaf needs its JSON text (typed column or discard), not plain text
    is_object: bool = False  # some event holds an object here
    # Set in a restricted copy (see _Access.restricted): the form the node has in the whole tree (a
    # struct, or "JSON" / "VARCHAR" text), and whether it has keys below it there.
    form: str | None = None
    nested: bool = False


class _Access:
    """The from_json structure for a set of leaf paths, and each leaf's SQL over the parsed struct `j`.

    Struct fields are reached by position (`struct_extract_at`), so no key is ever spelled in SQL. A node
    a struct cannot hold (keys equal but for case, an empty key, or a node that is both a value and an
    object) is parsed as JSON text and its leaves reached by JSON pointers, bound as `$ptr`.
    """

    def __init__(self) -> None:
        self.root = _Node()
        self.pointers: list[str] = []
        # Values reached by pointer, computed next to the parse: `json_extract(...) AS p<n>`.
        self.pointer_columns: list[str] = []

    def add(self, path: Path, as_json: bool, objects: set[Path]) -> None:
        node = self.root
        for depth in range(len(path)):
            node = node.children.setdefault(path[depth], _Node())
            node.is_object = node.is_object or path[: depth + 1] in objects
        node.leaf = True
        node.as_json = node.as_json or as_json

    @staticmethod
    def _structable(node: _Node) -> bool:
        keys = [key.lower() for key in node.children]
        return bool(keys) and not node.leaf and "" not in keys and len(set(keys)) == len(keys)

    def _spec(self, node: _Node) -> object:
        if node.form == "struct" or (node.form is None and self._structable(node)):
            return {key: self._spec(child) for key, child in node.children.items()}
        if node.form is not None:
            return node.form
        if node.children or node.as_json or node.is_object:
            return "JSON"
        return "VARCHAR"

    def restricted(self, keep: set[Path]) -> _Access:
        """The parse of just the leaves `keep`, each value coming out as it does from this one: every node
        keeps the form it has here (a struct here may be JSON text there, for keys that differ only in
        case, say), only the keys leading to `keep` are read."""
        out = _Access()

        def copy(node: _Node, path: Path) -> _Node:
            spec_ = self._spec(node)
            twin = _Node(
                leaf=node.leaf and path in keep,
                as_json=node.as_json,
                is_object=node.is_object,
                form="struct" if isinstance(spec_, dict) else str(spec_),
                nested=bool(node.children),
            )
            for key, child in node.children.items():
                below = (*path, key)
                if any(leaf[: len(below)] == below for leaf in keep):
                    twin.children[key] = copy(child, below)
            return twin

        out.root = copy(self.root, ())
        out.root.form = None
        return out

    def structure(self) -> dict:
        return {key: self._spec(child) for key, child in self.root.children.items()}

    def expressions(self) -> dict[Path, tuple[str, bool]]:
        """Leaf path -> (SQL giving its value as text, whether that text is JSON)."""
        out: dict[Path, tuple[str, bool]] = {}
        for index, (key, child) in enumerate(self.root.children.items(), start=1):
            self._walk(child, (key,), f"struct_extract_at(j, {index})", out)
        return out

    def _walk(self, node: _Node, path: Path, expr: str, out: dict) -> None:
        spec_ = self._spec(node)
        if isinstance(spec_, dict):
            for index, (key, child) in enumerate(node.children.items(), start=1):
                self._walk(child, (*path, key), f"struct_extract_at({expr}, {index})", out)
            return
        if spec_ == "VARCHAR":
            out[path] = (expr, False)
            return
        # JSON text, as VARCHAR: a JSON-typed value would make every expression mixing it with text JSON.
        expr = f"{expr}::VARCHAR"
        if node.leaf:
            value = (
                expr
                if not (node.children or node.nested)
                else f"CASE WHEN starts_with({expr}, '{{') THEN NULL ELSE {expr} END"
            )
            out[path] = (value, True)
        for sub, _child in self._leaves_below(node, ()):
            self.pointers.append(json_pointer(*sub))
            n = len(self.pointers)
            self.pointer_columns.append(f"json_extract({expr}, $ptr[{n}])::VARCHAR AS p{n}")
            out[(*path, *sub)] = (f"p{n}", True)

    def _leaves_below(self, node: _Node, prefix: tuple) -> list[tuple[tuple, _Node]]:
        found = []
        for key, child in node.children.items():
            if child.leaf:
                found.append(((*prefix, key), child))
            found.extend(self._leaves_below(child, (*prefix, key)))
        return found


def _fast_vals(access: _Access, parsed: str, values: str, bound: dict) -> str:
    """The fast path's `vals`: `values` (from `access.expressions()`) over the parse, and the pointer
    columns they read, if any."""
    source = f"({parsed})"
    if access.pointers:
        bound["ptr"] = access.pointers
        # Over the parse's output: each pointer reads the JSON text of its node, not the whole line.
        source = f"(SELECT *, {', '.join(access.pointer_columns)} FROM {source})"
    return f"(SELECT *{values} FROM {source})"


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
        hashed_pointers: list[str] | None = None,
        fast: bool = False,
        checked: Collection[str] = (),
    ):
        self.conn = conn
        self.fast = fast
        self.checked = checked
        self.schema = schema
        self.uuid_ts = uuid_ts
        self.direct_type = direct_type
        # The pointers classification hashed each line's keys at (its `keys_hash`), if it did.
        self.hashed_pointers = hashed_pointers
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

    # -- discovery ---------------------------------------------------------------------------------

    def discover(self, known: KnownPaths, thorough: bool = False) -> dict[GroupKey, Shape]:
        """The payload paths of the loaded events, per (type, event table).

        Events are grouped by the keys they hold at every known object; one event per group is read in
        Python, and objects it reveals are added until none is new. Events of one group hold the same
        keys everywhere that is known, so every distinct set of paths is read. (A value that is an object
        where others have a scalar shows up at extraction, see `prepare`; the loader then asks for a
        `thorough` discovery, which groups by the payload's whole structure, see KEY_GROUPING_ROUNDS.)
        """
        shapes: dict[GroupKey, Shape] = {}
        read: set[int] = set()
        payload = [json_pointer(obj) for obj in spec.ROOT_OBJECTS]
        # After a first round grouped by classification's `keys_hash`: the groups whose events must be
        # grouped again by the keys at the objects that round found (see `_regroup`); None: all events.
        regroup: list[int | None] | None = None
        for round_ in range(MAX_DISCOVERY_ROUNDS):
            pointers = key_pointers(known)
            where, params = "", {}
            if thorough or round_ >= KEY_GROUPING_ROUNDS:
                grouping = "hash(list_transform(json_extract(raw, $payload), lambda x: json_structure(x)))"
                params = {"payload": payload}
            elif round_ == 0 and pointers == self.hashed_pointers:
                # Classification hashed every line's keys at the objects known when the chunk began.
                grouping = "keys_hash"
            else:
                grouping = "hash(json_keys(raw, $pointers))"
                params = {"pointers": pointers}
                if regroup is not None:
                    where = "WHERE keys_hash IN (SELECT unnest($regroup)) OR keys_hash IS NULL"
                    params["regroup"] = [g for g in regroup if g is not None]
            source = "_cls WHERE status = 'loaded'" if grouping == "keys_hash" else f"_loaded_all {where}"
            groups = self.conn.execute(
                f"""SELECT event_type, event_table, min(seq) AS first_seq, {grouping} AS grp FROM {source}
                    GROUP BY event_type, event_table, grp""",
                params,
            ).fetchall()
            todo = {seq: (etype, etable, grp) for etype, etable, seq, grp in groups if seq not in read}
            if not todo:
                break
            before = set(known.objects)
            samples: dict[int | None, list[dict]] = {}
            for seq, raw in self.conn.execute(
                "SELECT rowid, raw FROM _raw WHERE rowid IN (SELECT unnest($seqs))", {"seqs": list(todo)}
            ).fetchall():
                read.add(seq)
                etype, etable, grp = todo[seq]
                event = json.loads(raw)
                samples.setdefault(grp, []).append(event)
                shape = shapes.setdefault((etype, etable), Shape())
                shape.add_event(event, spec.PAYLOAD_OBJECTS[etype], seq)
                known.objects |= shape.objects
            # Nothing new learnt, or one round by structure has read every distinct shape: settled.
            if len(known.objects) == len(before) or thorough or round_ >= KEY_GROUPING_ROUNDS:
                break
            regroup = _regroup(samples, known.objects - before, before) if grouping == "keys_hash" else None
        else:
            raise RuntimeError(f"event shapes did not settle in {MAX_DISCOVERY_ROUNDS} rounds")
        return shapes

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
        access = _Access()
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
        tests += [self._conflict_test(columns[column], slot[path]) for column, path in typed]
        # New columns' kinds are guessed only for the event type that holds most of the batch, where
        # storing the values costs most: elsewhere a wrong guess (a rewrite of the chunk) would cost more
        # than the checked path. A sampled string is no guess (a string wins over every other kind, and a
        # string column takes any value): it goes fast everywhere. Rejected keys go fast too: their
        # discard rows are written after the insert, from a parse of just their values.
        guessed = self._guess_new_kinds(plan, columns, shape, guess=event_type == self.direct_type)
        fast = self.fast and table not in self.checked
        if fast and guessed is not None:
            new_kinds = guessed[0]
            stops = [*tests, *self._new_column_tests(plan, columns, guessed, slot, is_json)]
            rejected = None
            if plan.rejected:
                only = access.restricted({r.path for r in plan.rejected})
                found = only.expressions()
                sql, rejected_params, _parts = self._parse(only, event_type, where, params)
                rejected_values = "".join(f", {found[p][0]} AS f{slot[p]}" for p in found)
                rejected = (_fast_vals(only, sql, rejected_values, rejected_params), rejected_params)
            return Prepared(
                *(table, event_type, plan, _fast_vals(access, parsed, values, bound), slot, is_json, set()),
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

    def _parse(self, access: _Access, event_type: str, where: str, params: dict) -> tuple[str, dict, int]:
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
                or columns[column] == "int"  # numbers too long for it
                or set(kinds[column]) - {columns[column]} - _widening(columns[column])
            )
            for path in paths
        ]
        result.value_discards = self._discards(prepared, columns, checked)
        self.drop(prepared)
        return result

    @staticmethod
    def _guess_new_kinds(
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

    @classmethod
    def _new_column_tests(
        cls,
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
                    tests.append(cls._conflict_test(kind, index))
                else:
                    tests.append(f"cdp_kind(f{index}) <> '{kind}'")
                    tests.append(cls._conflict_test(kind, index))
        return tests

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
            reasons.append(f"cannot convert to {kind}: value is a ")
            entries.append(
                f"struct_pack(column_name := $dn[{len(names)}], column_value := cdp_unquote({f}), "
                f"reason := $dr[{len(names)}] || cdp_value_kind({f}), "
                f"bad := cdp_present({f}) AND cdp_to_{kind}({f}) IS NULL)"
            )
        for rejected in prepared.plan.rejected:
            f = f"f{prepared.slot[rejected.path]}"
            names.append(rejected.column or json_pointer(*rejected.path))
            reasons.append(f"{rejected.reason}; value is a ")
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
            tests = [f"bool_or({self._conflict_test(columns[c], prepared.slot[path])})" for c, path in todo]
            hits = self.conn.execute(f"SELECT [{', '.join(tests)}] FROM {prepared.vals}").fetchone()[0]
            found.update({pair: bool(hit) for pair, hit in zip(todo, hits, strict=True)})
        return [pair for pair in checked if found[pair]]

    @staticmethod
    def _conflict_test(kind: str, index: int) -> str:
        f = f"f{index}"
        test = f"cdp_present({f}) AND NOT ({_FITS[kind].format(f=f)})"
        # Most values of an int column are plain integers, which the bare cast takes (and cdp_to_int with
        # it): the full test runs only for the others.
        return f"TRY_CAST({f} AS BIGINT) IS NULL AND {test}" if kind == "int" else test

    # -- users -------------------------------------------------------------------------------------

    def id_discards(self) -> int:
        """Record the ids that were a JSON object or array (loaded as NULL, see classify) in
        rudder_discards, once for each table their event landed in. Returns how many rows."""
        discards = self._table(spec.DISCARDS_TABLE)
        return self.conn.execute(
            f"""INSERT INTO {discards} (table_name, row_id, column_name, column_value, received_at, uuid_ts, reason)
                SELECT unnest(list_filter([type_table, event_table], lambda t: t IS NOT NULL)), message_id,
                       d.column_name, d.column_value, received_at, $uuid_ts, $reason
                FROM (SELECT *, unnest(id_rejects) AS d FROM _cls
                      WHERE status = 'loaded' AND id_rejects IS NOT NULL)""",
            {"uuid_ts": self.uuid_ts, "reason": "a JSON object or array is no id; loaded as NULL"},
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


def _widening(kind: str) -> set[str]:
    """Value kinds a column of `kind` takes without a discard besides its own."""
    return {"int": {"float"}, "float": {"int"}}.get(kind, set())


def _regroup(samples: dict[int | None, list[dict]], new: set[Path], hashed: set[Path]) -> list[int | None] | None:
    """The `keys_hash` groups whose events may differ in their keys at the objects just found (`new`).

    Events of a group hold the same keys at every object that was hashed. A new object's outermost
    ancestor that was not hashed is a key of a hashed object: where the group's sample lacks that key,
    so does every event of the group, which therefore holds nothing at the new object. Only groups whose
    sample holds it are grouped again. None (every event) when a new object has no hashed ancestor.
    """
    heads = set()
    for path in new:
        head = next(path[: i + 1] for i in range(len(path)) if path[: i + 1] not in hashed)
        if head[:-1] not in hashed:
            return None
        heads.add(head)
    return [grp for grp, events in samples.items() if any(_holds_key(e, h) for e in events for h in heads)]


def _holds_key(event: dict, path: Path) -> bool:
    node: object = event
    for key in path[:-1]:
        node = node.get(key) if isinstance(node, dict) else None
    return isinstance(node, dict) and path[-1] in node
