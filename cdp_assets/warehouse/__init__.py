"""The warehouse interface and its engines; `open_warehouse` picks the one the settings name."""

from __future__ import annotations

from cdp_assets.settings import Settings, get_settings
from cdp_assets.warehouse.base import Connection, Warehouse, WarehouseError, transaction

__all__ = ["Connection", "Warehouse", "WarehouseError", "open_warehouse", "transaction"]


def open_warehouse(settings: Settings | None = None) -> Warehouse:
    settings = settings or get_settings()
    if settings.warehouse_engine == "duckdb":
        from cdp_assets.warehouse.duckdb_engine import DuckDBWarehouse

        return DuckDBWarehouse(settings.duckdb_path)
    if settings.warehouse_engine == "snowflake":
        from cdp_assets.warehouse.snowflake_engine import SnowflakeSettings, SnowflakeWarehouse

        return SnowflakeWarehouse(SnowflakeSettings.from_env())
    raise WarehouseError(f"CDP_WAREHOUSE must be duckdb or snowflake, got {settings.warehouse_engine!r}")
