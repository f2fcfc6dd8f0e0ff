"""A policy's documentation questions (policy/questionnaire): the leaves, and the Questionnaire built of them."""

from __future__ import annotations

from pathlib import Path

from cdshooks.policy.loader import load_policy_set
from cdshooks.policy.questionnaire import documentation_leaves

ROOT = Path(__file__).resolve().parents[1]
LOADED = load_policy_set(ROOT / "policies", ROOT / "mappings")


def test_a_loaded_policy_keeps_the_documentation_leaves_the_tree_walk_gives():
    for policy in LOADED.by_id.values():
        walked = documentation_leaves(policy.model.criteria)
        assert walked and list(policy.doc_leaves) == walked
        assert all(node.type in ("documentation", "structured+doc") for node in walked)


def test_the_questionnaire_asks_each_documentation_leaf_in_tree_order():
    for policy in LOADED.by_id.values():
        items = policy.questionnaire("https://cds.example.org")["item"]
        assert [i["linkId"] for i in items] == [n.id for n in documentation_leaves(policy.model.criteria)]
