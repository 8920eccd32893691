"""Connected components in memory: union-find (disjoint sets) with union by size and path halving.

The reference partition that identity_graph (dbt, in the warehouse) must reproduce. Nodes are any
hashable values; an edge from a node to itself only makes the node exist.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping
from typing import Generic, TypeVar

Node = TypeVar("Node", bound=Hashable)


class UnionFind(Generic[Node]):
    """Disjoint sets over nodes added on first sight."""

    def __init__(self) -> None:
        self._parent: dict[Node, Node] = {}
        self._size: dict[Node, int] = {}

    def add(self, node: Node) -> None:
        if node not in self._parent:
            self._parent[node] = node
            self._size[node] = 1

    def find(self, node: Node) -> Node:
        """The root of `node`'s set (adding the node if new). Path halving keeps the trees flat."""
        self.add(node)
        parent = self._parent
        while parent[node] != node:
            parent[node] = parent[parent[node]]
            node = parent[node]
        return node

    def union(self, a: Node, b: Node) -> None:
        root_a, root_b = self.find(a), self.find(b)
        if root_a == root_b:
            return
        if self._size[root_a] < self._size[root_b]:
            root_a, root_b = root_b, root_a
        self._parent[root_b] = root_a
        self._size[root_a] += self._size[root_b]

    def roots(self) -> dict[Node, Node]:
        """Every node with the root of its set."""
        return {node: self.find(node) for node in list(self._parent)}


def components(edges: Iterable[tuple[Node, Node]]) -> dict[Node, Node]:
    """Every node of `edges` with a representative of its connected component."""
    sets: UnionFind[Node] = UnionFind()
    for a, b in edges:
        sets.union(a, b)
    return sets.roots()


def as_partition(labels: Mapping[Node, Hashable]) -> set[frozenset[Node]]:
    """The partition a labelling describes: the sets of nodes that share a label."""
    groups: dict[Hashable, set[Node]] = {}
    for node, label in labels.items():
        groups.setdefault(label, set()).add(node)
    return {frozenset(group) for group in groups.values()}


def same_partition(a: Mapping[Node, Hashable], b: Mapping[Node, Hashable]) -> bool:
    """Whether two labellings split the same nodes into the same sets, whatever the label values.

    True when both cover the same nodes and label pairs correspond one to one (a bijection between
    the labels of `a` and those of `b`), which is linear, unlike comparing sets of sets.
    """
    if a.keys() != b.keys():
        return False
    forward: dict[Hashable, Hashable] = {}
    backward: dict[Hashable, Hashable] = {}
    for node, label_a in a.items():
        label_b = b[node]
        if forward.setdefault(label_a, label_b) != label_b or backward.setdefault(label_b, label_a) != label_a:
            return False
    return True
