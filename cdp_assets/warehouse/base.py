"""The warehouse interface the rest of the project talks to.

Two engines implement it: DuckDB (the embedded default) and Snowflake (production). Callers get a
`Warehouse` from `open_warehouse()` and never branch on the engine themselves, except the event loader,
whose SQL is engine-specific by nature and asks `engine` which dialect to speak.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any, Protocol


class WarehouseError(RuntimeError):
    """The warehouse cannot be reached or refused an operation."""


class Connection(Protocol):
    """The subset of a DB-API connection the project uses; values always go in as bound parameters."""

    def execute(self, sql: str, parameters: Sequence[Any] | dict[str, Any] | None = None) -> Any: ...

    def fetchall(self) -> list[tuple[Any, ...]]: ...

    def fetchone(self) -> tuple[Any, ...] | None: ...


class Warehouse(Protocol):
    engine: str

    def describe(self) -> str:
        """Where the warehouse is, for humans (no secrets)."""
        ...

    def connect(self, read_only: bool = False) -> contextlib.AbstractContextManager[Connection]: ...

    def table_columns(self, conn: Connection, schema: str, table: str) -> dict[str, str]:
        """Column name to engine type, in table order; empty when the table does not exist."""
        ...

    def schema_columns(self, conn: Connection, schema: str) -> dict[str, dict[str, str]]:
        """Every table of a schema with its columns (name to engine type)."""
        ...


@contextlib.contextmanager
def transaction(conn: Connection) -> Iterator[Connection]:
    """Run a block atomically: committed when it returns, rolled back when it raises."""
    conn.execute("BEGIN TRANSACTION")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
