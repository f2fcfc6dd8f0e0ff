"""The compiled criteria tree: positions, gates, sections, references, deciding criteria, broken policies."""

from __future__ import annotations

import datetime as dt
from types import MappingProxyType

import pytest

from cdshooks.facts.facts import Evidence
from cdshooks.facts.facts import Fact
from cdshooks.facts.facts import FactContext
from cdshooks.fhir.record import Record
from cdshooks.policy.evaluate import Evaluator
from cdshooks.policy.model import Expr
from cdshooks.policy.model import Node
from policy_stubs import Fixed
from policy_stubs import StubPolicy
from policy_stubs import T
from policy_stubs import evaluator

EVIDENCE = (Evidence("Condition/c1", "F11.20"),)
YES, NO = Fact("known", True, EVIDENCE), Fact("known", False, EVIDENCE)


def leaf(id_, fact=None, **extra):
    when = Expr(fact=fact, present=True) if fact else None
    kind = "structured+doc" if fact else "documentation"
    return Node(id=id_, text=id_, question=f"{id_}?", cite="c", type=kind, when=when, default="unknown", **extra)


def rule_leaf(id_, when: Expr):
    return Node(id=id_, text=id_, question=f"{id_}?", cite="c", type="structured", when=when, default="unknown")


def group(id_, op, children, **extra):
    return Node(id=id_, text=id_, cite="c", **{op: children}, **extra)


def test_positions_are_the_tree_pre_order_and_groups_list_their_decisive_children():
    info = leaf("I", "a", decisive=False)
    root = group("R", "all", [group("G", "any", [leaf("A", "a"), info], ask_when=Expr(fact="a", present=True)),
                              leaf("B", "b", ask_when=Expr(fact="b", present=True))])
    program = StubPolicy(root).program
    assert program.ids == ("R", "G", "A", "I", "B")
    assert program.children == ((1, 4), (2,), (), (), ())
    assert program.gates == ((), (1,), (1,), (1,), (4,))   # a group's ask_when is inherited below it
    assert program.op == ("all", "any", None, None, None)


def test_the_root_evaluates_only_the_rules_sections_and_informational_children():
    root = group("R", "any", [leaf("S1", "a"), leaf("S2", "b"), leaf("I", "a", decisive=False)])
    evaluation = evaluator(root, {"a": NO, "b": YES})
    assert evaluation.run(["S1"]) == "not-met"
    assert list(evaluation.results) == ["R", "S1", "I"]


def test_a_node_is_evaluated_once_on_the_date_it_is_first_reached():
    """X is reached first by the reference at E, then by B's test: B reads the result made on E."""
    e_day = T + dt.timedelta(days=30)
    root = group("R", "all", [Node(id="REF", text="r", cite="c", ref="X", at="E"),
                              rule_leaf("B", Expr(node="X")),
                              leaf("X", "a")])
    ctx = FactContext(MappingProxyType({"a": _OnDate(e_day)}), Record(), T, {})
    evaluation = Evaluator(StubPolicy(root), ctx, {}, {"T": T, "E": e_day, "R": T})
    assert evaluation.run(None) == "met"
    results = evaluation.results
    assert results["REF"].note == f"X evaluated on {e_day}"
    assert results["X"].result == results["B"].result == "met"


class _OnDate:
    """A fact present only when taken on one date."""

    order_scoped, setting_refs = False, ()

    def __init__(self, day):
        self.day = day

    def compute(self, ctx, at):
        return YES if at == self.day else NO


def test_deciding_criteria_follow_the_results_and_references():
    root = group("R", "any", [group("G", "all", [leaf("A", "a"), leaf("B", "b")]),
                              Node(id="REF", text="r", cite="c", ref="C"), leaf("C", "a")])
    evaluation = evaluator(root, {"a": YES, "b": NO})
    assert evaluation.run(None) == "met"
    assert evaluation.deciding() == ("REF", "C")   # the met alternatives; the reference and its leaf


def test_documentation_evaluates_each_gate_once_top_down():
    calls = []

    class Counted(Fixed):
        def compute(self, ctx, at):
            calls.append(at)
            return self.value

    gate = Expr(fact="gate", present=True)
    root = group("R", "all", [group("G", "all", [leaf("A"), leaf("B")], ask_when=gate), leaf("C")])
    policy = StubPolicy(root)
    ctx = FactContext(MappingProxyType({"gate": Counted(NO)}), Record(), T, {})
    evaluation = Evaluator(policy, ctx, {}, {"T": T, "E": T, "R": T})
    evaluation.run(None)
    assert evaluation.documentation() == ("C",) and len(calls) == 1


def test_a_broken_policy_compiles_and_fails_only_when_evaluated():
    root = group("R", "all", [Node(id="REF", text="r", cite="c", ref="nowhere"),
                              rule_leaf("D", Expr(def_="undefined"))])
    evaluation = evaluator(root, {})
    with pytest.raises(KeyError):
        evaluation.run(None)


def test_a_test_not_in_the_policy_is_compiled_when_asked():
    evaluation = evaluator(group("R", "all", [leaf("A", "a")]), {"a": YES})
    assert evaluation.expr(Expr(fact="a", present=False), T).value == "not-met"
