"""Which documentation questions an evaluation asks: every ``ask_when`` above a leaf must hold."""

from __future__ import annotations

import datetime as dt
from types import MappingProxyType

from cdshooks.facts.facts import Evidence
from cdshooks.facts.facts import Fact
from cdshooks.facts.facts import FactContext
from cdshooks.fhir.record import Record
from cdshooks.policy.applicability import _documentation
from cdshooks.policy.evaluate import Evaluator
from cdshooks.policy.model import Expr
from cdshooks.policy.model import Node

T = dt.date(2025, 6, 15)
EVIDENCE = (Evidence("Condition/c1", "C50.9"),)


class Fixed:
    order_scoped = False
    setting_refs = ()

    def __init__(self, fact):
        self.value = fact

    def compute(self, ctx, at):
        return self.value


class Policy:
    def __init__(self, root: Node, define):
        self.model = type("M", (), {"criteria": root, "define": define})
        nodes = list(_walk(root))
        self.nodes = {n.id: n for n in nodes}
        self.order = {n.id: i for i, n in enumerate(nodes)}
        self.parents = {c.id: n.id for n in nodes for c in n.children()}
        self.codesets, self.twins = {}, {}


def _walk(node):
    yield node
    for child in node.children():
        yield from _walk(child)


def question(id_, ask_when=None):
    return Node(id=id_, text=id_, question=f"{id_}?", cite="c", type="documentation", default="unknown",
                ask_when=ask_when)


def asked(root, facts, define=None) -> tuple[str, ...]:
    ctx = FactContext(MappingProxyType({k: Fixed(v) for k, v in facts.items()}), Record(), T, {}, settings={})
    evaluator = Evaluator(Policy(root, define or {}), ctx, {}, {"T": T, "E": T, "R": T})
    evaluator.run(None)
    results = {k: v for k, v in evaluator.results.items() if v is not None}
    return _documentation(evaluator.policy, results, evaluator)


def tree():
    """R: all of G (asked when 'cancer') = any of A and H (asked also when 'frail'), and B."""
    gated = Node(id="G", text="g", cite="c", ask_when=Expr(def_="has-cancer"),
                 any=[question("A"), question("H", Expr(fact="frail", present=True))])
    return Node(id="R", text="r", cite="c", all=[gated, question("B")])


def test_a_group_ask_when_is_inherited_by_every_leaf_below_it():
    define = {"has-cancer": Expr(fact="cancer", present=True)}
    facts = {"cancer": Fact("known", False, EVIDENCE), "frail": Fact("known", True, EVIDENCE)}
    assert asked(tree(), facts, define) == ("B",)


def test_a_leaf_ask_when_adds_to_its_groups():
    define = {"has-cancer": Expr(fact="cancer", present=True)}
    facts = {"cancer": Fact("known", True, EVIDENCE), "frail": Fact("known", False, EVIDENCE)}
    assert asked(tree(), facts, define) == ("A", "B")
    facts["frail"] = Fact("known", True, EVIDENCE)
    assert asked(tree(), facts, define) == ("A", "H", "B")


def test_an_unknown_ask_when_does_not_ask():
    define = {"has-cancer": Expr(fact="cancer", present=True)}
    assert asked(tree(), {"cancer": Fact("unknown"), "frail": Fact("unknown")}, define) == ("B",)
