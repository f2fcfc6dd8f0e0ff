"""Where each criterion sits in its policy's tree, indexed once when the policy loads.

Cards rank and explain criteria by their place in the tree (the groups above a leaf, the criteria
an ``all`` group asks first); the tree is immutable after loading, so these are worked out once
per policy instead of walked again for every card.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Mapping

from cdshooks.policy.model import Node


@dataclass(frozen=True)
class TreeIndex:
    leaves: frozenset[str]                   # the ids of leaves (criteria with a type)
    parents: Mapping[str, str]               # criterion id -> the group it sits in (the root has none)
    ancestors: Mapping[str, tuple[str, ...]]  # criterion id -> the groups above it, nearest first
    # criterion id -> the decisive criteria before it in each ``all`` group above it (before the child
    # of that group it sits under): the answers it waits for
    gated_by: Mapping[str, tuple[str, ...]]


def index(nodes: list[Node]) -> TreeIndex:
    """The index of a tree given as its criteria in tree order (``definitions.criteria``)."""
    by_id = {node.id: node for node in nodes}
    parents = {child.id: node.id for node in nodes for child in node.children()}
    ancestors = {node.id: tuple(_up(parents, node.id)) for node in nodes}
    return TreeIndex(frozenset(node.id for node in nodes if node.type is not None), MappingProxyType(parents),
                     MappingProxyType(ancestors),
                     MappingProxyType({i: _gates(by_id, i, above) for i, above in ancestors.items()}))


def _up(parents: Mapping[str, str], node_id: str):
    while (node_id := parents.get(node_id)) is not None:
        yield node_id


def _gates(by_id: Mapping[str, Node], node_id: str, above: tuple[str, ...]) -> tuple[str, ...]:
    before = []
    for group_id in above:
        group = by_id[group_id]
        if group.op == "all":
            for child in group.decisive_children():
                if child.id == node_id:
                    break
                before.append(child.id)
        node_id = group_id
    return tuple(before)
