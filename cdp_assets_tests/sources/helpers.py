"""What the source tests do with dlt: a pipeline into a DuckDB file of the test's own, reading it back, and
finding why a run failed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dlt
import duckdb


def duckdb_pipeline(tmp_path: Path, dataset: str) -> dlt.Pipeline:
    """A pipeline loading `dataset` into tmp_path/warehouse.duckdb, with its working folder under tmp_path."""
    return dlt.pipeline(
        pipeline_name=dataset.removeprefix("raw_"),
        destination=dlt.destinations.duckdb(str(tmp_path / "warehouse.duckdb")),
        dataset_name=dataset,
        pipelines_dir=str(tmp_path / "pipelines"),
    )


def query(pipeline: dlt.Pipeline, sql: str) -> list[tuple[Any, ...]]:
    """The rows of `sql` on the pipeline's DuckDB file, opened read-only and closed again before the next run."""
    path = pipeline.destination_client().config.credentials.database  # type: ignore[attr-defined]
    with duckdb.connect(path, read_only=True) as conn:
        return conn.execute(sql).fetchall()


def cause_chain(exc: BaseException) -> list[BaseException]:
    """The error and what caused it (raised from, or raised while handling), outermost first."""
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in chain:
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


def find_cause(exc: BaseException, kind: type[BaseException]) -> BaseException:
    """The first `kind` in the error's chain (dlt wraps what a source raised in PipelineStepFailed)."""
    found = next((e for e in cause_chain(exc) if isinstance(e, kind)), None)
    assert found is not None, f"no {kind.__name__} in the chain of {exc!r}"
    return found
