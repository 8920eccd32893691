"""How a value's JSON text becomes a typed column value, in SQL: the column kinds, their SQL types, and the
macros that test and convert values (installed on every load connection as temporary macros).

Values are handled as the text of their JSON ('"a"', '12', '1.5', 'true', '[1]', '{..}', 'null'), so one
extraction serves every kind; a NULL out of a present value is a conflict: RudderStack's "incompatible
type" discard.
"""

from __future__ import annotations

import duckdb

from cdp_assets.event_stream.flatten import DATETIME_PATTERN, INT_LIMIT

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

MACROS = [
    "cdp_present(f) AS f IS NOT NULL AND f NOT IN ('null', '\"\"') AND NOT starts_with(f, '{')",
    # A JSON number starts with a digit or a minus and a digit: NaN, Infinity, nan and inf, which DuckDB's
    # lenient parser takes, are no numbers (RudderStack fails such an event: Go's JSON reader rejects it).
    "cdp_is_number(f) AS ascii(f) BETWEEN 48 AND 57 OR (ascii(f) = 45 AND ascii(f[2]) BETWEEN 48 AND 57)",
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
    # A number too big for a double (1e400) reads as infinity: no value either.
    "cdp_to_float(f) AS CASE WHEN cdp_is_number(f) AND isfinite(TRY_CAST(f AS DOUBLE)) THEN TRY_CAST(f AS DOUBLE) END",
    "cdp_to_boolean(f) AS CASE f WHEN 'true' THEN true WHEN 'false' THEN false END",
    # RudderStack writes a datetime value with milliseconds (RFC 3339 "milli"): the rest is cut, as it is
    # from the standard timestamps (see classify._to_millisecond, whose integer arithmetic this repeats).
    "cdp_to_millisecond(u) AS make_timestamptz(u - (u % 1000 + 1000) % 1000)",
    "cdp_to_datetime(f) AS CASE WHEN starts_with(f, '\"') "
    "THEN cdp_to_millisecond(epoch_us(cdp_datetime_text(cdp_unquote(f)))) END",
    "cdp_value_kind(f) AS CASE WHEN starts_with(f, '\"') THEN 'a string' WHEN starts_with(f, '[') THEN 'an array' "
    "WHEN f IN ('true', 'false') THEN 'a boolean' "
    "WHEN cdp_to_float(f) IS NULL THEN 'a non-finite or out-of-range number' ELSE 'a number' END",
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


def install_macros(conn: duckdb.DuckDBPyConnection) -> None:
    for macro in MACROS:
        conn.execute(f"CREATE OR REPLACE TEMP MACRO {macro}")


def kind_of_type(sql_type: str) -> str:
    return _KIND_OF_TYPE.get(sql_type.upper(), "string")


def conflict_test(kind: str, index: int) -> str:
    """SQL true when the value in column f<index> is present but does not fit a column of `kind`."""
    f = f"f{index}"
    test = f"cdp_present({f}) AND NOT ({_FITS[kind].format(f=f)})"
    # Most values of an int column are plain integers, which the bare cast takes (and cdp_to_int with
    # it): the full test runs only for the others.
    return f"TRY_CAST({f} AS BIGINT) IS NULL AND {test}" if kind == "int" else test


def widening(kind: str) -> set[str]:
    """Value kinds a column of `kind` takes without a discard besides its own."""
    return {"int": {"float"}, "float": {"int"}}.get(kind, set())
