"""RudderStack's flattening and typing rules, as pure functions the loader applies to a batch.

Flattening: nested objects are joined with `_` (context under the `context_` prefix, properties, traits
and userProperties with none), arrays stay whole as JSON text, null and "" are skipped. Every name goes
through `naming.safe_name`. Typing: a new column takes the kind first seen in the batch, except that a
string anywhere makes it a string; an existing column keeps its kind, and a value that does not fit it
becomes NULL plus a `rudder_discards` row.

The loader discovers the leaf paths of a batch (`discover` walks sample events), maps them to columns
here (`plan_columns`), measures what kinds of values each new column received, in SQL, and settles the
kinds here (`decide_kind`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from cdp_assets.event_stream import spec
from cdp_assets.event_stream.naming import safe_name

# ISO-like datetimes, date-only included. One pattern for Python and for the warehouse (RE2 syntax).
DATETIME_PATTERN = r"\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?)? ?(Z|[+-]\d{2}(:?\d{2})?)?"
_DATETIME = re.compile(f"^{DATETIME_PATTERN}$")

# Value kinds a column can receive, measured per batch, and which column kinds accept each without a
# discard (an int goes into a float column, a float is truncated into an int column: RudderStack).
VALUE_KINDS = ("string", "datetime", "int", "float", "boolean")
COMPATIBLE = {
    "string": set(VALUE_KINDS),
    "int": {"int", "float"},
    "float": {"int", "float"},
    "boolean": {"boolean"},
    "datetime": {"datetime"},
}


def looks_like_datetime(value: str) -> bool:
    """RudderStack's datetime test: an ISO-like string of at most 40 characters that parses."""
    if len(value) > 40 or not _DATETIME.match(value):
        return False
    text = value.replace(" ", "T", 1).replace(" ", "")
    text = text.replace("Z", "+00:00")
    if re.search(r"[+-]\d{4}$", text):  # +0530 -> +05:30, which fromisoformat wants
        text = text[:-2] + ":" + text[-2:]
    try:
        datetime.fromisoformat(text)
    except ValueError:
        return False
    return True


Path = tuple[str, ...]


# Whole numbers from this magnitude on do not fit 64 bits: RudderStack reads every JSON number as a
# float64 and calls it an int only if it survives the round trip through int64.
INT_LIMIT = 2.0**63


def sampled_kind(value: object) -> str:
    """The kind of a (non-null, non-empty) JSON value, the way the loader's SQL kinds it."""
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        whole = isinstance(value, int) or value.is_integer()
        return "int" if whole and abs(float(value)) < INT_LIMIT else "float"
    if isinstance(value, str) and looks_like_datetime(value):
        return "datetime"
    return "string"


@dataclass
class Shape:
    """The payload paths seen in sample events: leaves (value positions), objects, for each leaf
    whether a sampled value already proves it a string column (a non-empty, non-datetime string), and
    the kinds of its sampled values that would give it a column (not null, not ""), each with the
    lowest sequence number it was sampled at."""

    leaves: set[Path] = field(default_factory=set)
    objects: set[Path] = field(default_factory=set)
    proven_strings: set[Path] = field(default_factory=set)
    # Named as `cdp_kind` in SQL names them; a guess only: the fast path checks every value against it
    # (see writer.TableWriter).
    kinds: dict[Path, dict[str, int]] = field(default_factory=dict)

    def add_event(self, event: dict, objects: Iterable[str], seq: int = 0) -> None:
        """Add a sampled event; `seq` is its position in the batch."""
        for obj in objects:
            node = event.get(obj)
            if isinstance(node, dict):
                self._walk(node, (obj,), seq)

    def add_kind(self, path: Path, kind: str, seq: int) -> None:
        seen = self.kinds.setdefault(path, {})
        seen[kind] = min(seq, seen.get(kind, seq))

    def _walk(self, node: dict, path: Path, seq: int) -> None:
        self.objects.add(path)
        for key, value in node.items():
            child = (*path, key)
            if isinstance(value, dict):
                if value:
                    self._walk(value, child, seq)
                else:
                    self.objects.add(child)
                continue
            self.leaves.add(child)
            if value is not None and value != "":
                self.add_kind(child, sampled_kind(value), seq)
            if isinstance(value, list) or (isinstance(value, str) and value and not looks_like_datetime(value)):
                self.proven_strings.add(child)


@dataclass(frozen=True)
class Rejected:
    """A path whose values cannot become a column; each value goes to rudder_discards with `reason`."""

    path: Path
    column: str
    reason: str


@dataclass
class ColumnPlan:
    """Which column each leaf path feeds in one table."""

    table: str
    event_type: str
    # column -> the paths feeding it, by object precedence then sorted (the first non-null wins when
    # several keys collide)
    columns: dict[str, list[Path]]
    rejected: list[Rejected]


def leaf_column(path: Path, event_type: str) -> str:
    """The column a payload path feeds: context paths keep their `context` prefix, properties, traits
    and userProperties lose their object's name (`properties.plan` -> `plan`). In an identify, a key
    naming `user_id` feeds `_user_id`."""
    column = safe_name("_".join(path if path[0] == "context" else path[1:]))
    if event_type == "identify" and column == "user_id" and path[0] != "context":
        return spec.IDENTIFY_USER_ID_COLUMN
    return column


def plan_columns(table: str, event_type: str, leaves: Iterable[Path], existing: dict[str, str]) -> ColumnPlan:
    """Map leaf paths to the table's columns; `existing` is its columns now (name -> kind)."""
    standard = spec.standard_columns(event_type)
    columns: dict[str, list[Path]] = {}
    rejected: list[Rejected] = []
    known = set(existing) | set(standard)
    # Objects in their type's order, then paths in sorted order: the first non-null value wins.
    order = {obj: rank for rank, obj in enumerate(spec.PAYLOAD_OBJECTS[event_type])}
    for path in sorted(leaves, key=lambda p: (order.get(p[0], len(order)), p)):
        column = leaf_column(path, event_type)
        # A key with no letters or digits names nothing: its column would be its parent's (or none).
        if not column or not safe_name(path[-1]) or (path[0] == "context" and column == "context"):
            rejected.append(Rejected(path, "", "the key has no letters or digits to name a column"))
            continue
        if column in standard:
            if path not in spec.STANDARD_ALIASES.get(column, ()):
                rejected.append(Rejected(path, column, f"collides with the standard column {column}"))
            continue  # an alias: the standard column already holds this value (context.ip, ...)
        if column not in known and column not in columns and len(known) + len(columns) >= spec.MAX_COLUMNS:
            rejected.append(Rejected(path, column, f"the table already has {spec.MAX_COLUMNS} columns"))
            continue
        columns.setdefault(column, []).append(path)
    return ColumnPlan(table, event_type, columns, rejected)


def decide_kind(first_seen: dict[str, int]) -> str | None:
    """A new column's kind from the first sequence number each value kind was seen at in the batch:
    string if any value was a string; else the kind seen first; None if only nulls and "" came."""
    if not first_seen:
        return None
    if "string" in first_seen:
        return "string"
    return min(first_seen, key=lambda kind: first_seen[kind])


def conflicts(column_kind: str, seen: Iterable[str]) -> bool:
    """Whether values of these kinds include one the column cannot hold."""
    return any(kind not in COMPATIBLE[column_kind] for kind in seen)
