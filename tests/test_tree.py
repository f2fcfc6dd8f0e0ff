"""Where each criterion sits in its policy's tree (policy/tree), indexed once at load."""

from __future__ import annotations

from pathlib import Path

from cdshooks.policy import tree
from cdshooks.policy.definitions import criteria
from cdshooks.policy.loader import load_policy_set
from cdshooks.policy.model import Node

ROOT = Path(__file__).resolve().parents[1]
LOADED = load_policy_set(ROOT / "policies", ROOT / "mappings")


def leaf(id_, decisive=True):
    return Node(id=id_, text=id_, question=f"{id_}?", cite="c", type="documentation", default="unknown",
                decisive=decisive)


def test_a_leaf_waits_for_the_decisive_criteria_before_it_in_each_all_group_above_it():
    inner = Node(id="G", text="g", cite="c", any=[leaf("A"), leaf("B")])
    root = Node(id="R", text="r", cite="c", all=[leaf("GATE"), leaf("ASIDE", decisive=False), inner, leaf("LAST")])
    index = tree.index(list(criteria(root)))
    assert index.gated_by["B"] == ("GATE",)        # an any group asks its children side by side
    assert index.gated_by["LAST"] == ("GATE", "G")
    assert index.gated_by["GATE"] == () and index.gated_by["ASIDE"] == ("GATE", "G", "LAST")
    assert index.ancestors["A"] == ("G", "R") and index.ancestors["R"] == ()
    assert index.parents == {"GATE": "R", "ASIDE": "R", "G": "R", "LAST": "R", "A": "G", "B": "G"}
    assert index.leaves == {"GATE", "ASIDE", "A", "B", "LAST"}


def test_every_shipped_policy_indexes_what_walking_its_tree_gives():
    for policy in LOADED.by_id.values():
        index = policy.tree
        assert policy.parents == {child.id: node.id for node in policy.nodes.values() for child in node.children()}
        for node_id, node in policy.nodes.items():
            walked, up = [], policy.parents.get(node_id)
            while up is not None:
                walked.append(up)
                up = policy.parents.get(up)
            assert index.ancestors[node_id] == tuple(walked)
            assert (node_id in index.leaves) == (node.type is not None)
