"""Identity graphs for `cdp bench identity`: N edges shaped like identity_edges, with long merge chains.

The mix is what makes connected components hard in SQL: chains (an anonymous id, then a user id, then
another device, ... up to `max_chain` identifiers long) need as many rounds as they are long with plain
propagation; stars (a user id with up to 90 devices, under the hub guard's 100) and random pairs
between emails (small components of every shape) fill the rest, and a few lone identifiers are
components of one. Identifier values are random hex, so the sort order that numbers the nodes is
unrelated to a chain's order, as with real ids. Deterministic for a seed.
"""

from __future__ import annotations

import csv
import random
from dataclasses import dataclass, field
from pathlib import Path

Identifier = tuple[str, str]  # (identifier_type, identifier)

CHAIN_SHARE = 0.4
STAR_SHARE = 0.3
LONE_SHARE = 0.01
MAX_STAR = 90
# Random pairs among this many emails per pair: average degree 0.8, below the giant-component threshold.
EMAIL_POOL_PER_PAIR = 2.5


@dataclass
class BenchGraph:
    edges: list[tuple[Identifier, Identifier]] = field(default_factory=list)
    longest_chain: int = 0  # identifiers in the longest chain

    def write_csv(self, path: Path) -> None:
        """identity_edges' columns (the benchmark needs no times: every edge is seen at the same moment)."""
        with path.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["identifier_type_a", "identifier_a", "identifier_type_b", "identifier_b"])
            for (type_a, id_a), (type_b, id_b) in self.edges:
                writer.writerow([type_a, id_a, type_b, id_b])


def generate(edges: int, seed: int = 7, max_chain: int = 1000) -> BenchGraph:
    """A graph of exactly `edges` edges (self edges of lone identifiers included)."""
    if edges < 10:
        raise ValueError(f"a benchmark graph needs at least 10 edges, got {edges}")
    if max_chain < 2:
        raise ValueError(f"max_chain must be at least 2, got {max_chain}")
    rng = random.Random(seed)
    graph = BenchGraph()
    used: set[str] = set()

    def new_id(prefix: str) -> str:
        while True:
            value = f"{prefix}{rng.getrandbits(64):016x}"
            if value not in used:
                used.add(value)
                return value

    chain_edges = round(edges * CHAIN_SHARE)
    star_edges = round(edges * STAR_SHARE)
    lone_edges = max(1, round(edges * LONE_SHARE))
    pair_edges = edges - chain_edges - star_edges - lone_edges

    # chains: the first one always has the full length, so every run has a chain of max_chain
    budget, first = chain_edges, True
    while budget > 0:
        length = min(budget + 1, max_chain if first else rng.randint(2, max_chain))
        first = False
        types = ("anonymous_id", "user_id")
        nodes = [(types[i % 2], new_id("c")) for i in range(length)]
        graph.edges += list(zip(nodes, nodes[1:], strict=False))
        graph.longest_chain = max(graph.longest_chain, length)
        budget -= length - 1

    budget = star_edges
    while budget > 0:
        size = min(budget, rng.randint(2, MAX_STAR))
        center = ("user_id", new_id("s"))
        graph.edges += [(center, ("anonymous_id", new_id("s"))) for _ in range(size)]
        budget -= size

    pool = [("email", f"{new_id('e')}@bench.io") for _ in range(max(2, round(pair_edges * EMAIL_POOL_PER_PAIR)))]
    graph.edges += [tuple(rng.sample(pool, 2)) for _ in range(pair_edges)]  # type: ignore[misc]

    for _ in range(lone_edges):
        lone = ("anonymous_id", new_id("l"))
        graph.edges.append((lone, lone))
    return graph
