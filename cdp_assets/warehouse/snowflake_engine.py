"""The production warehouse: Snowflake, loading from the S3 stage with COPY INTO.

Its connection settings are defined here so `CDP_ENV=prod` fails early and clearly when one is missing;
the engine itself (connection, COPY INTO loading, MERGE into the event tables) is a later issue's work,
and until then asking for it raises `WarehouseError` instead of silently falling back to DuckDB.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from cdp_assets.warehouse.base import WarehouseError

REQUIRED = ("SNOWFLAKE_ACCOUNT", "SNOWFLAKE_USER", "SNOWFLAKE_ROLE", "SNOWFLAKE_WAREHOUSE", "SNOWFLAKE_DATABASE")


@dataclass(frozen=True)
class SnowflakeSettings:
    account: str
    user: str
    role: str
    warehouse: str
    database: str
    # repr=False: the secret never reaches a log line, an exception or Dagster metadata.
    password: str | None = field(default=None, repr=False)
    private_key_path: str | None = None

    @classmethod
    def from_env(cls) -> SnowflakeSettings:
        missing = [name for name in REQUIRED if not os.environ.get(name)]
        if not (os.environ.get("SNOWFLAKE_PASSWORD") or os.environ.get("SNOWFLAKE_PRIVATE_KEY_PATH")):
            missing.append("SNOWFLAKE_PASSWORD or SNOWFLAKE_PRIVATE_KEY_PATH")
        if missing:
            raise WarehouseError(f"CDP_WAREHOUSE=snowflake needs {', '.join(missing)} in the environment")
        return cls(
            account=os.environ["SNOWFLAKE_ACCOUNT"],
            user=os.environ["SNOWFLAKE_USER"],
            role=os.environ["SNOWFLAKE_ROLE"],
            warehouse=os.environ["SNOWFLAKE_WAREHOUSE"],
            database=os.environ["SNOWFLAKE_DATABASE"],
            password=os.environ.get("SNOWFLAKE_PASSWORD") or None,
            private_key_path=os.environ.get("SNOWFLAKE_PRIVATE_KEY_PATH") or None,
        )


class SnowflakeWarehouse:
    engine = "snowflake"

    def __init__(self, settings: SnowflakeSettings):
        self.settings = settings

    def describe(self) -> str:
        s = self.settings
        return f"Snowflake {s.account}/{s.database} as {s.user} (role {s.role}, warehouse {s.warehouse})"

    def connect(self, read_only: bool = False):
        raise WarehouseError(
            "the Snowflake engine is not implemented yet; run with CDP_WAREHOUSE=duckdb (the default locally)"
        )

    def table_columns(self, conn, schema: str, table: str) -> dict[str, str]:
        raise WarehouseError("the Snowflake engine is not implemented yet")

    def schema_columns(self, conn, schema: str) -> dict[str, dict[str, str]]:
        raise WarehouseError("the Snowflake engine is not implemented yet")
