"""Evaluate one policy for one order: every node, three-valued, with evidence (policy README §5).

Leaf precedence: structured evidence decides; else a documentation answer (when the leaf type
allows one); else the leaf's default — but only when the record gave no evidence at all, so a
leaf whose test is undecided *because of* data (a known fact with an unknown companion) stays
unknown instead of falling back to a convenient default.  No short-circuit: every node of the
evaluated tree is computed and reported.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from dataclasses import field

from cdshooks.facts.answers import DocAnswer
from cdshooks.facts.facts import Evidence
from cdshooks.facts.facts import Fact
from cdshooks.facts.facts import FactContext
from cdshooks.facts.facts import Interval
from cdshooks.policy import logic
from cdshooks.policy.logic import MET
from cdshooks.policy.logic import NOT_MET
from cdshooks.policy.logic import UNKNOWN
from cdshooks.policy.model import Expr
from cdshooks.policy.model import Node


@dataclass(frozen=True)
class NodeResult:
    id: str
    result: str
    source: str                 # structured | documentation | default | unavailable | group | reference
    evidence: tuple[Evidence, ...] = ()
    note: str = ""
    leaf: bool = False
    doc_leaf: bool = False      # answerable by documentation (type documentation or structured+doc)
    brief: str = ""             # the deciding fact's few words, for card summaries


@dataclass
class _Outcome:
    """What an expression found: its value, evidence, and whether any part was decided by data."""

    value: str
    evidence: list[Evidence] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    briefs: list[str] = field(default_factory=list)
    decided: bool = False
    unavailable: bool = False
    uses_doc: bool = False
    by_data: bool = False       # decided at least in part by record data (not only by documentation)

    def absorb(self, other: "_Outcome") -> None:
        self.evidence += other.evidence
        self.notes += other.notes
        self.briefs += other.briefs
        self.decided |= other.decided
        self.unavailable |= other.unavailable
        self.uses_doc |= other.uses_doc
        self.by_data |= other.by_data


class Evaluator:
    """Evaluates a compiled policy's tree for one order, keeping every node's result."""

    def __init__(self, policy, ctx: FactContext, answers: dict[str, DocAnswer], dates: dict[str, dt.date]):
        self.policy = policy
        self.ctx = ctx
        self.answers = answers
        self.dates = dates
        self.results: dict[str, NodeResult | None] = {}

    def run(self, sections: list[str] | None) -> str:
        """Evaluate the root (restricted to ``sections`` of its children) and return the decision."""
        return self.node(self.policy.model.criteria, self.dates["T"], sections)

    def node(self, node: Node, on: dt.date, only: list[str] | None = None) -> str:
        if node.id in self.results and self.results[node.id] is not None:
            return self.results[node.id].result
        self.results[node.id] = None  # reserve the slot: results stay in tree (pre-)order
        if node.ref is not None:
            result = self._reference(node)
        elif node.type is not None:
            result = self._leaf(node, on)
        else:
            children = [c for c in node.children() if only is None or c.id in only or not c.decisive]
            values = [self.node(child, on) for child in children if child.decisive]
            for child in children:  # informational children are evaluated and reported too
                self.node(child, on)
            n = node.at_least.n if node.at_least else None
            result = NodeResult(node.id, logic.combine(node.op, values, n), "group")
        self.results[node.id] = result
        return result.result

    def _reference(self, node: Node) -> NodeResult:
        target = self.policy.nodes[node.ref]
        on = self.dates[node.at or "T"]
        value = self.node(target, on)
        note = f"{node.ref} evaluated on {on}" if on != self.dates["T"] else f"{node.ref} is {value}"
        return NodeResult(node.id, value, "reference", note=note)

    def _leaf(self, node: Node, on: dt.date) -> NodeResult:
        doc_leaf = node.type in ("documentation", "structured+doc")
        found = self.expr(node.when, on, node) if node.when is not None else _Outcome(UNKNOWN)
        if found.value != UNKNOWN:
            source = "documentation" if found.uses_doc and not found.by_data else "structured"
            return self._leaf_result(node, found.value, source, found, doc_leaf)
        answer = self._answer(node) if doc_leaf and not found.uses_doc else None
        if answer is not None and answer.value and node.id in self.policy.answered_by_facts:
            answer = None  # the leaf's fact has read this "yes" along with the siblings' answers
        if answer is not None:
            value = MET if answer.value else NOT_MET
            return NodeResult(node.id, value, "documentation", (answer.evidence,), "", True, doc_leaf)
        if found.unavailable:
            return self._leaf_result(node, UNKNOWN, "unavailable", found, doc_leaf)
        if found.decided:
            return self._leaf_result(node, UNKNOWN, "structured", found, doc_leaf)
        return self._leaf_result(node, node.default, "default", found, doc_leaf)

    def _answer(self, node: Node) -> DocAnswer | None:
        """The latest documentation answer for the leaf or one of its twins (named-list expansions)."""
        twins = self.policy.twins.get(node.id, ())
        answers = [a for i in (node.id, *twins) if (a := self.answers.get(i)) is not None]
        return max(answers, key=lambda a: a.evidence.date or "") if answers else None

    @staticmethod
    def _leaf_result(node, value, source, found: _Outcome, doc_leaf) -> NodeResult:
        note = "; ".join(dict.fromkeys(n for n in found.notes if n))
        brief = next((b for b in found.briefs if b), "")
        return NodeResult(node.id, value, source, tuple(dict.fromkeys(found.evidence)), note, True, doc_leaf, brief)

    # -------------------------------------------------------------------- expressions
    def expr(self, expr: Expr, on: dt.date, owner: Node) -> _Outcome:
        if expr.def_ is not None:
            return self.expr(self.policy.model.define[expr.def_], on, owner)
        if expr.fact is not None:
            return self._fact_test(expr, on)
        if expr.setting is not None:
            value = self.ctx.settings.get(expr.setting)
            hit = value == expr.is_ if expr.is_ is not None else value in expr.in_
            return _Outcome(MET if hit else NOT_MET, notes=[f"setting {expr.setting} = {value}"],
                            decided=True, by_data=True)
        if expr.node is not None and (expr.is_ is not None or expr.in_ is not None):
            value = self.node(self.policy.nodes[expr.node], on)
            wanted = [expr.is_] if expr.is_ is not None else expr.in_
            hit = value in wanted  # a hit is evidence; a miss only says "not shown to be"
            return _Outcome(MET if hit else NOT_MET, decided=hit, by_data=hit)
        if expr.node is not None:
            value = self.node(self.policy.nodes[expr.node], on)
            result = self.results[expr.node]
            decided = value != UNKNOWN
            return _Outcome(value, list(result.evidence) if decided else [], decided=decided, by_data=decided)
        if expr.doc is not None:
            answer = self.answers.get(expr.doc)
            out = _Outcome(UNKNOWN, uses_doc=True)
            if answer is not None:
                out = _Outcome(MET if answer.value else NOT_MET, [answer.evidence], decided=True, uses_doc=True)
            return out
        if expr.not_ is not None:
            inner = self.expr(expr.not_, on, owner)
            inner.value = logic.negate(inner.value)
            return inner
        parts = [self.expr(e, on, owner) for e in (expr.all or expr.any)]
        conjunction = expr.all is not None
        out = _Outcome((logic.all_of if conjunction else logic.any_of)(p.value for p in parts))
        for part in parts:
            out.absorb(part)
        if out.value == UNKNOWN:
            out.decided = _unknown_on_evidence(parts, conjunction)
        return out

    def _fact_test(self, expr: Expr, on: dt.date) -> _Outcome:
        at = self.dates[expr.at] if expr.at and expr.at != "T" else on
        fact = self.ctx.fact(expr.fact, at)
        if fact.status == "unavailable":
            return _Outcome(UNKNOWN, notes=[fact.note], unavailable=True)
        if not fact.known:
            return _Outcome(UNKNOWN, list(fact.evidence), notes=[fact.note])
        value, evidential = test(expr, fact, self.policy.codesets)
        return _Outcome(value, list(fact.evidence), [fact.note], [fact.brief], decided=evidential,
                        by_data=evidential)


def _unknown_on_evidence(parts: list[_Outcome], conjunction: bool) -> bool:
    """Whether an unknown group of tests rests on the record, rather than on missing data.

    A part that is unknown *with* evidence (an undated symptom, "≥ 2 fetuses") keeps the group
    unknown; so does, in an ``all``, a proven part waiting on an unproven one ("thoracic pain
    recorded, no pain score"). Parts proven false in an ``any`` say nothing about the rest ("old
    weight loss, no malignancy on record"): then the leaf's default applies.
    """
    if any(p.value == UNKNOWN and p.decided for p in parts):
        return True
    return conjunction and any(p.value == MET and p.decided for p in parts)


def test(expr: Expr, fact: Fact, codesets) -> tuple[str, bool]:
    """Apply the expression's operator to a known fact: (result, whether the record said so).

    A known fact is evidence even when the test stays undecided ("≥ 2 fetuses" against "at most
    2"); only a failure that the policy maps to ``otherwise: unknown`` means "no evidence".
    """
    value = _apply(expr, fact.value, codesets)
    if value == "fail":
        value = expr.otherwise or NOT_MET
        return value, value != UNKNOWN
    return value, True


def _apply(expr: Expr, value, codesets) -> str:
    if expr.result is not None:
        return value if value in (MET, NOT_MET, UNKNOWN) else UNKNOWN
    if expr.known is not None:
        return MET if expr.known else "fail"
    if expr.present is not None:
        if not isinstance(value, bool):
            return UNKNOWN
        return (MET if value else NOT_MET) if expr.present else (NOT_MET if value else MET)
    if expr.codes_in is not None:
        codes = codesets[tuple(expr.codes_in)]
        return MET if any(codes.entry_for(s, c) for s, c in value) else "fail"
    if expr.is_ is not None:
        return MET if value == expr.is_ else "fail"
    if expr.in_ is not None:
        return MET if value in expr.in_ else "fail"
    return _compare(expr, value)


def _compare(expr: Expr, value) -> str:
    low, high = (value.low, value.high) if isinstance(value, Interval) else (value, value)
    if not isinstance(low, (int, float)) or isinstance(low, bool):
        return UNKNOWN
    for op, bound in (("ge", expr.ge), ("gt", expr.gt), ("le", expr.le), ("lt", expr.lt)):
        if bound is None:
            continue
        holds_low, holds_high = _holds(op, low, bound), _holds(op, high, bound)
        if holds_low and holds_high:
            return MET
        if not holds_low and not holds_high:
            return "fail"
        return UNKNOWN
    return UNKNOWN


def _holds(op: str, x: float, bound: float) -> bool:
    return {"ge": x >= bound, "gt": x > bound, "le": x <= bound, "lt": x < bound}[op]


def deciding(policy, results: dict[str, NodeResult]) -> tuple[str, ...]:
    """Leaf and reference ids that decided the root's value, in tree order.

    A met ``all`` is decided by every child, a not-met one by its not-met children, an unknown
    one by its unknown children; ``any`` and ``none`` mirror that.
    """
    out: dict[str, None] = {}

    def visit(node) -> None:
        result = results.get(node.id)
        if result is None:
            return
        if node.ref is not None:
            out[node.id] = None
            return visit(policy.nodes[node.ref])
        if node.type is not None:
            out[node.id] = None
            return
        children = [c for c in node.children() if c.id in results and c.decisive]
        for child in _deciding_children(node.op, result.result, children, results):
            visit(child)

    visit(policy.model.criteria)
    return tuple(out)


def _deciding_children(op: str, value: str, children, results):
    if value == UNKNOWN:
        return [c for c in children if results[c.id].result == UNKNOWN]
    if (op, value) in (("all", MET), ("any", NOT_MET), ("none", MET)):
        return children
    wanted = {("all", NOT_MET): NOT_MET, ("any", MET): MET, ("none", NOT_MET): MET,
              ("at_least", MET): MET, ("at_least", NOT_MET): NOT_MET}[(op, value)]
    return [c for c in children if results[c.id].result == wanted]
