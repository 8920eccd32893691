"""Reading a sampled line in Python the way the warehouse read it, or saying why it cannot be loaded.

Classification judged the line with DuckDB's JSON reader, which is more lenient than Python's: it takes
trailing commas and NaN / Infinity / nan / inf numbers, and it parses any depth without recursion. Shape
discovery must see what the warehouse will extract, so a sample is read here with the same grammar:

- a key that repeats keeps its first value, as DuckDB's extraction does (Python's would keep the last);
- NaN and infinities read as null: they are no JSON numbers, and the warehouse side turns each such
  value into a discard (see value_sql);
- arrays are kept only as (empty) lists: the loader stores them whole as JSON text, so their content
  is never walked, and a deeply nested array costs no recursion;
- objects nested deeper than MAX_OBJECT_DEPTH raise UnreadableLine: flattened, they would name
  columns far past 127 characters (every level adds a key and a `_`), and walking them would exhaust
  Python's recursion limit. The loader discards such lines (see classify.discard_late).
"""

from __future__ import annotations

import json
import re

# Object levels an event may nest, the event itself included (context.traits.address is 4).
MAX_OBJECT_DEPTH = 64

TOO_DEEP = "too_deeply_nested"
INVALID_JSON = "invalid_json"

# One token after optional whitespace. Structure (colons, commas) was validated by the warehouse, so
# the reader only needs to tell tokens apart, not check their order.
_TOKEN = re.compile(
    r"""[ \t\n\r]*(?:
        (?P<string>"(?:[^"\\]|\\.)*")
      | (?P<open>[{\[])
      | (?P<close>[}\]])
      | (?P<sep>[:,])
      | (?P<number>-?\d+(?:\.\d*)?(?:[eE][+-]?\d+)?)
      | (?P<literal>true|false|null)
      | (?P<special>-?(?i:nan|inf(?:inity)?))
    )""",
    re.VERBOSE,
)
_LITERALS = {"true": True, "false": False, "null": None}


class UnreadableLine(ValueError):
    """A line the warehouse parsed but the loader cannot load; `reason` is its discard reason."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


def parse_sample(raw: str) -> dict:
    """The event on a line classification accepted as a JSON object."""
    try:
        event = json.loads(raw, object_pairs_hook=_first_wins, parse_constant=lambda _name: None)
    except (ValueError, RecursionError):
        event = _parse_lenient(raw)
    if not isinstance(event, dict):
        raise UnreadableLine(INVALID_JSON, "the line is not a JSON object")
    if _object_depth(event) > MAX_OBJECT_DEPTH:
        raise UnreadableLine(TOO_DEEP, f"objects nest deeper than {MAX_OBJECT_DEPTH} levels")
    return event


def _first_wins(pairs: list[tuple[str, object]]) -> dict:
    out: dict = {}
    for key, value in pairs:
        out.setdefault(key, value)
    return out


def _object_depth(event: dict) -> int:
    deepest = 0
    todo = [(event, 1)]
    while todo:
        node, depth = todo.pop()
        deepest = max(deepest, depth)
        todo.extend((value, depth + 1) for value in node.values() if isinstance(value, dict))
    return deepest


def _parse_lenient(raw: str) -> object:
    """DuckDB's grammar, iteratively: see the module docstring. Raises UnreadableLine."""
    # Open containers, innermost last: [container, the key awaiting its value (objects only)].
    stack: list[list] = []
    depth = 0  # open objects
    done = False
    result: object = None
    pos = 0
    while True:
        match = _TOKEN.match(raw, pos)
        if match is None:
            if raw[pos:].strip(" \t\n\r") == "" and done:
                return result
            raise UnreadableLine(INVALID_JSON, f"unexpected text at character {pos}")
        pos = match.end()
        kind = match.lastgroup
        if done:
            raise UnreadableLine(INVALID_JSON, f"text after the value at character {match.start()}")
        if kind == "sep":
            continue
        if kind == "open":
            if match.group(kind) == "{":
                depth += 1
                if depth > MAX_OBJECT_DEPTH:
                    raise UnreadableLine(TOO_DEEP, f"objects nest deeper than {MAX_OBJECT_DEPTH} levels")
                stack.append([{}, None])
            else:
                stack.append([[], None])
            continue
        if kind == "close":
            if not stack:
                raise UnreadableLine(INVALID_JSON, f"unbalanced bracket at character {match.start()}")
            value = stack.pop()[0]
            depth -= isinstance(value, dict)
        elif kind == "string":
            value = json.loads(match.group(kind))
            top = stack[-1] if stack else None
            if top is not None and isinstance(top[0], dict) and top[1] is None:
                top[1] = value  # a key: its value comes next
                continue
        elif kind == "number":
            text = match.group(kind)
            value = float(text) if any(c in text for c in ".eE") else int(text)
        elif kind == "literal":
            value = _LITERALS[match.group(kind)]
        else:  # NaN and the infinities are no JSON numbers (see the module docstring)
            value = None
        if not stack:
            result, done = value, True
            continue
        container, key = stack[-1]
        if isinstance(container, dict):
            if key is None:
                raise UnreadableLine(INVALID_JSON, f"a value without a key at character {match.start()}")
            container.setdefault(key, value)
            stack[-1][1] = None
        # A list keeps no content (see the module docstring).
