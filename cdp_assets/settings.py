"""The one place that reads the environment.

Everything is read lazily (at call time, not import time) so tests and the CLI can point a process at
another data folder, warehouse or landing location by setting variables before they call in.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

ENVIRONMENTS = ("local", "prod")

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DBT_PROJECT_DIR = PROJECT_ROOT / "dbt_project"


class SettingsError(ValueError):
    """A setting in the environment is missing or malformed."""


@dataclass(frozen=True)
class Settings:
    env: str
    data_dir: Path
    duckdb_path: Path
    landing_url: str
    aws_endpoint_url: str | None
    warehouse_engine: str
    # Loader tuning: one transaction loads about `load_chunk_lines` lines (None: one DuckDB row group
    # per engine thread, see event_stream/chunking.py), and at most this many files and compressed
    # megabytes, which bound the memory a load needs.
    load_chunk_lines: int | None
    load_chunk_files: int
    load_chunk_mb: int
    # Names of transformations (see event_stream/transformations.py) applied before the warehouse.
    warehouse_transformations: tuple[str, ...]
    discard_ratio_threshold: float
    tracks_freshness_hours: float

    @property
    def dagster_home(self) -> Path:
        return Path(os.environ.get("DAGSTER_HOME") or self.data_dir / "dagster")

    @property
    def dbt_target(self) -> str:
        return os.environ.get("CDP_DBT_TARGET") or ("prod" if self.env == "prod" else "dev")


def _env(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    return value if value not in (None, "") else default


def _float(name: str, default: float, low: float, high: float = math.inf, hint: str = "") -> float:
    """A finite number in [low, high] (a threshold of nan or 5 meant as 5% would pass or fail every check)."""
    raw = _env(name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError as exc:
        raise SettingsError(f"{name} must be a number, got {raw!r}") from exc
    if not (math.isfinite(value) and low <= value <= high):
        bounds = f"between {low:g} and {high:g}" if math.isfinite(high) else f"at least {low:g}"
        raise SettingsError(f"{name} must be {bounds}{hint}, got {raw!r}")
    return value


def _int(name: str, default: int) -> int:
    raw = _env(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise SettingsError(f"{name} must be an integer, got {raw!r}") from exc
    if value < 1:
        raise SettingsError(f"{name} must be at least 1, got {value}")
    return value


def get_settings() -> Settings:
    """Read the settings from the environment now (never cached: the environment may change)."""
    env = _env("CDP_ENV", "local")
    if env not in ENVIRONMENTS:
        raise SettingsError(f"CDP_ENV must be one of {', '.join(ENVIRONMENTS)}, got {env!r}")
    data_dir = Path(_env("CDP_DATA_DIR", str(PROJECT_ROOT / "data"))).resolve()
    duckdb_path = Path(_env("CDP_DUCKDB_PATH", str(data_dir / "warehouse.duckdb"))).resolve()
    landing_url = _env("CDP_LANDING_URL", str(data_dir / "landing"))
    if env == "prod" and not landing_url.startswith("s3://"):
        raise SettingsError("CDP_ENV=prod needs CDP_LANDING_URL=s3://bucket/prefix")
    engine = _env("CDP_WAREHOUSE", "snowflake" if env == "prod" else "duckdb")
    transformations = tuple(
        name.strip() for name in (_env("CDP_WAREHOUSE_TRANSFORMATIONS", "") or "").split(",") if name.strip()
    )
    return Settings(
        env=env,
        data_dir=data_dir,
        duckdb_path=duckdb_path,
        landing_url=landing_url,
        aws_endpoint_url=_env("AWS_ENDPOINT_URL"),
        warehouse_engine=engine,
        load_chunk_lines=_int("CDP_LOAD_CHUNK_LINES", 0) or None,
        load_chunk_files=_int("CDP_LOAD_CHUNK_FILES", 2000),
        load_chunk_mb=_int("CDP_LOAD_CHUNK_MB", 64),
        warehouse_transformations=transformations,
        discard_ratio_threshold=_float("CDP_DISCARD_RATIO_THRESHOLD", 0.05, 0.0, 1.0, " (a fraction: 0.05 is 5%)"),
        tracks_freshness_hours=_float("CDP_TRACKS_FRESHNESS_HOURS", 2.0, 0.001),
    )
