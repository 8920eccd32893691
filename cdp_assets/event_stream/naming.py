"""Turning names found in data (event names, property keys) into warehouse identifiers.

`safe_name` is the one function every data-derived table or column name passes through. It follows
RudderStack's warehouse rules (keep ASCII letters and digits, snake case without splitting numbers,
leading digit or reserved word gets a `_` prefix, cut at 127 characters), so the tables it produces have
the same names the company's Snowflake already has. What it returns contains only `[a-z0-9_]`, which is
what makes quoting it in SQL safe.
"""

from __future__ import annotations

import re
from functools import lru_cache

MAX_IDENTIFIER_LENGTH = 127

# Snowflake's reserved words, as RudderStack escapes them; names must be equal in every environment, so
# the production list applies to DuckDB too.
RESERVED_WORDS = frozenset(
    [
        "ACCOUNT",
        "ALL",
        "ALTER",
        "AND",
        "ANY",
        "AS",
        "BETWEEN",
        "BY",
        "CASE",
        "CAST",
        "CHECK",
        "COLUMN",
        "CONNECT",
        "CONNECTION",
        "CONSTRAINT",
        "CREATE",
        "CROSS",
        "CURRENT",
        "CURRENT_DATE",
        "CURRENT_TIME",
        "CURRENT_TIMESTAMP",
        "CURRENT_USER",
        "DATABASE",
        "DELETE",
        "DISTINCT",
        "DROP",
        "ELSE",
        "EXISTS",
        "FALSE",
        "FOLLOWING",
        "FOR",
        "FROM",
        "FULL",
        "GRANT",
        "GROUP",
        "GSCLUSTER",
        "HAVING",
        "ILIKE",
        "IN",
        "INCREMENT",
        "INNER",
        "INSERT",
        "INTERSECT",
        "INTO",
        "IS",
        "ISSUE",
        "JOIN",
        "LATERAL",
        "LEFT",
        "LIKE",
        "LOCALTIME",
        "LOCALTIMESTAMP",
        "MINUS",
        "NATURAL",
        "NOT",
        "NULL",
        "OF",
        "ON",
        "OR",
        "ORDER",
        "ORGANIZATION",
        "QUALIFY",
        "REGEXP",
        "REVOKE",
        "RIGHT",
        "RLIKE",
        "ROW",
        "ROWS",
        "SAMPLE",
        "SCHEMA",
        "SELECT",
        "SET",
        "SOME",
        "START",
        "TABLE",
        "TABLESAMPLE",
        "THEN",
        "TO",
        "TRIGGER",
        "TRUE",
        "TRY_CAST",
        "UNION",
        "UNIQUE",
        "UPDATE",
        "USING",
        "VALUES",
        "VIEW",
        "WHEN",
        "WHENEVER",
        "WHERE",
        "WITH",
    ]
)

# Tables the loader writes itself: an event whose name lands on one of these gets a `_` prefix
# (RudderStack does this for the first six and always for users/identifies; rudder_discards is ours too).
STANDARD_TABLES = frozenset(
    {"tracks", "pages", "screens", "aliases", "groups", "accounts", "users", "identifies", "rudder_discards"}
)

_ALNUM_RUNS = re.compile(r"[A-Za-z0-9]+")
_LEADING_UNDERSCORES = re.compile(r"^_+")
# Words of an ASCII name, numbers kept with the word before them (RudderStack's "with numbers" casing):
# XMLHttp -> XML Http, isISO8601 -> is ISO8601, walk500Miles -> walk500 Miles, 12ft -> 12ft.
_WORDS = re.compile(r"[A-Z]{2,}(?=[A-Z][a-z])|[A-Z]?[a-z]+[0-9]*|[A-Z]+[0-9]*|[0-9]+(?:[a-z]+|[A-Z]+(?![a-z]))?")
_SAFE = re.compile(r"^[a-z_][a-z0-9_]*$")


def _snake(name: str) -> str:
    return "_".join(word.lower() for part in name.split("_") for word in _WORDS.findall(part))


@lru_cache(maxsize=65536)
def safe_name(raw: str) -> str:
    """The warehouse identifier for a name found in data; "" when nothing usable is left.

    >>> safe_name("Add to Cart"), safe_name("userAgent"), safe_name("1st visit"), safe_name("select")
    ('add_to_cart', 'user_agent', '_1st_visit', '_select')
    """
    name = _snake("_".join(_ALNUM_RUNS.findall(raw)))
    leading = _LEADING_UNDERSCORES.match(raw)
    if leading and name:
        name = leading.group(0) + name
    if name[:1].isdigit():
        name = "_" + name
    if name.upper() in RESERVED_WORDS:
        name = "_" + name
    return name[:MAX_IDENTIFIER_LENGTH]


def event_table_name(event: str) -> str:
    """The table a track event's rows go to; "" when the name has nothing usable (no event table then)."""
    name = safe_name(event)
    if name in STANDARD_TABLES:
        name = ("_" + name)[:MAX_IDENTIFIER_LENGTH]
    return name


def quote(identifier: str) -> str:
    """Quote a name that `safe_name` produced, or one of the loader's own; refuses anything else."""
    if not _SAFE.match(identifier):
        raise ValueError(f"refusing to use {identifier!r} as an SQL identifier")
    return f'"{identifier}"'
