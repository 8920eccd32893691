"""Reading a set of payload paths out of a JSON line in one parse, without spelling any key in SQL.

`JsonAccess` turns the leaf paths a table needs into the structure for DuckDB's `from_json` and, for each
leaf, the SQL that reaches its value in the parsed struct.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cdp_assets.event_stream.flatten import Path
from cdp_assets.event_stream.routing import json_pointer


@dataclass
class _Node:
    children: dict[str, _Node] = field(default_factory=dict)
    leaf: bool = False  # a value here feeds a column (or is discarded)
    as_json: bool = False  # the leaf needs its JSON text (typed column or discard), not plain text
    is_object: bool = False  # some event holds an object here
    # Set in a restricted copy (see JsonAccess.restricted): the form the node has in the whole tree (a
    # struct, or "JSON" / "VARCHAR" text), and whether it has keys below it there.
    form: str | None = None
    nested: bool = False


class JsonAccess:
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

    def restricted(self, keep: set[Path]) -> JsonAccess:
        """The parse of just the leaves `keep`, each value coming out as it does from this one: every node
        keeps the form it has here (a struct here may be JSON text there, for keys that differ only in
        case, say), only the keys leading to `keep` are read."""
        out = JsonAccess()

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


def fast_vals(access: JsonAccess, parsed: str, values: str, bound: dict) -> str:
    """The fast path's `vals`: `values` (from `access.expressions()`) over the parse, and the pointer
    columns they read, if any."""
    source = f"({parsed})"
    if access.pointers:
        bound["ptr"] = access.pointers
        # Over the parse's output: each pointer reads the JSON text of its node, not the whole line.
        source = f"(SELECT *, {', '.join(access.pointer_columns)} FROM {source})"
    return f"(SELECT *{values} FROM {source})"
