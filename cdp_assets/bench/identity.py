"""`cdp bench identity`: the identity model's connected components against naive propagation and union-find.

A generated graph of N edges with long merge chains (cdp_assets.identity.bench_graph) is written to a
DuckDB warehouse as a table shaped like identity_edges. Then, in the same run and on the same edges:

- the identity model: `dbt run --select identity_graph` with var `identity_edges_relation` pointing at
  that table, i.e. the project's own materialization (label propagation + hooking + pointer jumping);
- naive min-label propagation in DuckDB SQL: each round, every node takes the smallest label among
  itself and its neighbours, one hop per round, until nothing changes;
- union-find in memory (cdp_assets.identity.union_find), the reference.

It prints the rounds and seconds of each and whether each partition equals union-find's (compared as
partitions: which identifiers share a component, not the label values).
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Any

import duckdb

from cdp_assets.dbt_cli import run_dbt
from cdp_assets.identity.bench_graph import BenchGraph, generate
from cdp_assets.identity.union_find import components, same_partition

EDGES_TABLE = "bench.identity_edges"
Identifier = tuple[str, str]


def _write_edges(warehouse: Path, graph: BenchGraph, folder: Path) -> None:
    csv_path = folder / "edges.csv"
    graph.write_csv(csv_path)
    with duckdb.connect(str(warehouse)) as conn:
        conn.execute("SET enable_progress_bar = false")
        conn.execute("CREATE SCHEMA IF NOT EXISTS bench")
        conn.execute(
            f"""CREATE OR REPLACE TABLE {EDGES_TABLE} AS
                SELECT 'bench' AS source, identifier_type_a, identifier_a, identifier_type_b, identifier_b,
                       TIMESTAMPTZ '2026-01-01 00:00:00+00' AS first_seen,
                       TIMESTAMPTZ '2026-01-01 00:00:00+00' AS last_seen,
                       1 AS records
                FROM read_csv(?, header = true, all_varchar = true)""",
            [str(csv_path)],
        )
    csv_path.unlink()


def _run_identity_model(warehouse: Path, folder: Path) -> dict[str, Any]:
    """`dbt run --select identity_graph` on the bench edges; rounds and seconds from run_results.json."""
    started = time.perf_counter()
    result = run_dbt(
        ["run", "--select", "identity_graph"], warehouse, folder, variables={"identity_edges_relation": EDGES_TABLE}
    )
    wall = time.perf_counter() - started
    if result.returncode != 0:
        raise RuntimeError(f"dbt run of identity_graph failed:\n{result.stdout[-4000:]}\n{result.stderr[-2000:]}")
    run_results = json.loads((folder / "dbt_target" / "run_results.json").read_text())
    (model,) = [r for r in run_results["results"] if r["unique_id"].endswith(".identity_graph")]
    message = model["message"]  # "<n> identifiers, <m> profiles, converged in <r> rounds (<s> s)"
    rounds = int(message.split("converged in ")[1].split(" rounds")[0])
    return {"rounds": rounds, "seconds": model["execution_time"], "dbt_wall_seconds": wall, "message": message}


def _naive_propagation(warehouse: Path) -> tuple[dict[str, Any], dict[Identifier, int]]:
    """Min-label propagation, one hop a round, in DuckDB SQL, until no label changes."""
    with duckdb.connect(str(warehouse)) as conn:
        conn.execute("SET enable_progress_bar = false")
        started = time.perf_counter()
        conn.execute(
            f"""CREATE OR REPLACE TABLE bench.naive_nodes AS
                WITH ends AS (
                    SELECT identifier_type_a AS identifier_type, identifier_a AS identifier FROM {EDGES_TABLE}
                    UNION SELECT identifier_type_b, identifier_b FROM {EDGES_TABLE})
                SELECT row_number() OVER (ORDER BY identifier_type, identifier) AS node, identifier_type, identifier
                FROM ends"""
        )
        conn.execute(
            f"""CREATE OR REPLACE TABLE bench.naive_edges AS
                WITH pairs AS (
                    SELECT a.node AS node_a, b.node AS node_b FROM {EDGES_TABLE} e
                    JOIN bench.naive_nodes a
                        ON a.identifier_type = e.identifier_type_a AND a.identifier = e.identifier_a
                    JOIN bench.naive_nodes b
                        ON b.identifier_type = e.identifier_type_b AND b.identifier = e.identifier_b
                    WHERE a.node <> b.node)
                SELECT node_a AS src, node_b AS dst FROM pairs UNION SELECT node_b, node_a FROM pairs"""
        )
        conn.execute(
            "CREATE OR REPLACE TABLE bench.naive_labels_a AS SELECT node, node AS label FROM bench.naive_nodes"
        )
        current, other, rounds = "bench.naive_labels_a", "bench.naive_labels_b", 0
        while True:
            rounds += 1
            conn.execute(
                f"""CREATE OR REPLACE TABLE {other} AS
                    SELECT node, min(label) AS label
                    FROM (
                        SELECT node, label FROM {current}
                        UNION ALL
                        SELECT edges.src, neighbours.label
                        FROM bench.naive_edges edges
                        JOIN {current} neighbours ON neighbours.node = edges.dst
                    )
                    GROUP BY node"""
            )
            (changed,) = conn.execute(
                f"SELECT count(*) FROM {other} n JOIN {current} o ON o.node = n.node WHERE n.label <> o.label"
            ).fetchone()
            current, other = other, current
            if changed == 0:
                break
        seconds = time.perf_counter() - started
        labels = {
            (identifier_type, identifier): label
            for identifier_type, identifier, label in conn.execute(
                "SELECT n.identifier_type, n.identifier, l.label "
                f"FROM bench.naive_nodes n JOIN {current} l USING (node)"
            ).fetchall()
        }
        for table in ("naive_nodes", "naive_edges", "naive_labels_a", "naive_labels_b"):
            conn.execute(f"DROP TABLE IF EXISTS bench.{table}")
    return {"rounds": rounds, "seconds": seconds}, labels


def _identity_graph(warehouse: Path) -> dict[Identifier, str]:
    with duckdb.connect(str(warehouse), read_only=True) as conn:
        rows = conn.execute("SELECT identifier_type, identifier, profile_id FROM identity.identity_graph").fetchall()
    return {(identifier_type, identifier): profile for identifier_type, identifier, profile in rows}


def run(edges: int, seed: int = 7, max_chain: int | None = None, workdir: Path | None = None) -> dict[str, Any]:
    """Run the benchmark; `max_chain` defaults to 1,000 identifiers (fewer for small graphs)."""
    max_chain = max_chain or max(10, min(1000, edges // 100))
    graph = generate(edges, seed=seed, max_chain=max_chain)
    if workdir is not None:
        workdir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="cdp-bench-identity-", dir=workdir) as tmp:
        folder = Path(tmp)
        warehouse = folder / "warehouse.duckdb"
        _write_edges(warehouse, graph, folder)

        model = _run_identity_model(warehouse, folder)
        naive, naive_labels = _naive_propagation(warehouse)
        started = time.perf_counter()
        reference = components(graph.edges)
        union_find_seconds = time.perf_counter() - started
        model_labels = _identity_graph(warehouse)

    return {
        "edges": edges,
        "seed": seed,
        "identifiers": len(reference),
        "components": len(set(reference.values())),
        "longest_chain": graph.longest_chain,
        "identity_model": {
            "rounds": model["rounds"],
            "seconds": round(model["seconds"], 3),
            "dbt_wall_seconds": round(model["dbt_wall_seconds"], 3),
            "partition_matches_union_find": same_partition(model_labels, reference),
        },
        "naive_propagation": {
            "rounds": naive["rounds"],
            "seconds": round(naive["seconds"], 3),
            "partition_matches_union_find": same_partition(naive_labels, reference),
        },
        "union_find": {"seconds": round(union_find_seconds, 3)},
        "speedup_vs_naive": round(naive["seconds"] / model["seconds"], 1),
        "speedup_vs_naive_dbt_wall": round(naive["seconds"] / model["dbt_wall_seconds"], 1),
    }


def format_report(r: dict[str, Any]) -> str:
    model, naive = r["identity_model"], r["naive_propagation"]
    return "\n".join(
        [
            f"cdp bench identity: {r['edges']:,} edges, {r['identifiers']:,} identifiers, "
            f"{r['components']:,} components, longest chain {r['longest_chain']:,} identifiers",
            f"  identity model (dbt)   {model['rounds']:>6} rounds  {model['seconds']:>9.3f} s "
            f"(dbt process {model['dbt_wall_seconds']:.3f} s)  same partition as union-find: "
            f"{model['partition_matches_union_find']}",
            f"  naive propagation      {naive['rounds']:>6} rounds  {naive['seconds']:>9.3f} s  "
            f"same partition as union-find: {naive['partition_matches_union_find']}",
            f"  union-find (memory)                 {r['union_find']['seconds']:>9.3f} s",
            f"  speed-up over naive: {r['speedup_vs_naive']}x (model), "
            f"{r['speedup_vs_naive_dbt_wall']}x (whole dbt process)",
        ]
    )
