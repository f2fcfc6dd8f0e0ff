"""Evaluate one policy for one order: every node, three-valued, with evidence (policy README §5).

Leaf precedence: structured evidence decides; else a documentation answer (when the leaf type
allows one); else the leaf's default — but only when the record gave no evidence at all, so a
leaf whose test is undecided *because of* data (a known fact with an unknown companion) stays
unknown instead of falling back to a convenient default.  No short-circuit: every node of the
evaluated tree is computed and reported.

The tree is compiled when the policy loads (policy/compile: a closure per node and test, arrays
by tree position); this module holds the per-call state, what the closures build (results and
findings, the operators of fact tests) and the deciding criteria and documentation questions.
"""

from __future__ import annotations

import datetime as dt
import operator
from typing import Callable
from typing import NamedTuple

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


class NodeResult(NamedTuple):
    """One criterion's result (a named tuple: hundreds are made per call, and a tuple is made fast)."""

    id: str
    result: str
    source: str                 # structured | documentation | default | unavailable | group | reference
    evidence: tuple[Evidence, ...] = ()
    note: str = ""
    leaf: bool = False
    doc_leaf: bool = False      # answerable by documentation (type documentation or structured+doc)
    brief: str = ""             # the deciding fact's few words, for card summaries


class Finding:
    """What a test found: its value, evidence, and whether any part was decided by data."""

    __slots__ = ("value", "evidence", "notes", "briefs", "decided", "unavailable", "uses_doc", "by_data")

    def __init__(self, value: str, evidence: list | None = None, notes: list | None = None,
                 briefs: list | None = None, decided: bool = False, unavailable: bool = False,
                 uses_doc: bool = False, by_data: bool = False):
        self.value = value
        self.evidence: list[Evidence] = evidence if evidence is not None else []
        self.notes: list[str] = notes if notes is not None else []
        self.briefs: list[str] = briefs if briefs is not None else []
        self.decided = decided
        self.unavailable = unavailable
        self.uses_doc = uses_doc
        self.by_data = by_data    # decided at least in part by record data (not only by documentation)

    def absorb(self, other: "Finding") -> None:
        self.evidence += other.evidence
        self.notes += other.notes
        self.briefs += other.briefs
        self.decided |= other.decided
        self.unavailable |= other.unavailable
        self.uses_doc |= other.uses_doc
        self.by_data |= other.by_data


class Evaluator:
    """Evaluates a compiled policy's tree (``policy.program``, policy/compile) for one order.

    Per call it holds the order's facts, the documentation answers, the dates T / E / R, and one
    result slot per criterion (by tree position): every node is evaluated at most once.
    """

    def __init__(self, policy, ctx: FactContext, answers: dict[str, DocAnswer], dates: dict[str, dt.date]):
        self.policy = policy
        self.program = policy.program
        self.ctx = ctx
        self.answers = answers
        self.dates = dates
        self.out: list[NodeResult | None] = [None] * len(self.program.ids)

    def run(self, sections: list[str] | None) -> str:
        """Evaluate the root (restricted to ``sections`` of its children) and return the decision."""
        return self.program.root_run(self, self.dates["T"], sections)

    @property
    def results(self) -> dict[str, NodeResult]:
        """Every evaluated criterion's result, in tree order."""
        return {r.id: r for r in self.out if r is not None}

    def expr(self, expr: Expr, on: dt.date, owner: Node | None = None) -> Finding:
        """Evaluate one of the policy's tests on ``on`` (``owner``: kept for callers; unused)."""
        return self.program.expr(expr)(self, on)

    def deciding(self) -> tuple[str, ...]:
        """Leaf and reference ids that decided the root's value, in tree order.

        A met ``all`` is decided by every child, a not-met one by its not-met children, an unknown
        one by its unknown children; ``any`` and ``none`` mirror that.
        """
        program, out, found = self.program, self.out, {}

        def visit(i: int) -> None:
            result = out[i]
            if result is None:
                return
            op = program.op[i]
            if op is not None:
                if op == "ref":
                    found[i] = None
                    visit(program.target[i])
                    return
                children = [c for c in program.children[i] if out[c] is not None]
                for child in _deciding_children(op, result.result, children, out):
                    visit(child)
            else:
                found[i] = None

        visit(0)
        return tuple(program.ids[i] for i in found)

    def documentation(self) -> tuple[str, ...]:
        """Unknown documentation-answerable leaves, in tree order, that the policy wants asked: the
        ``ask_when`` of the leaf and of every group above it holds (each evaluated once, on T,
        from the top down, and only as far as the first that does not)."""
        program, held = self.program, {}

        def holds(gate: int) -> bool:
            if gate not in held:
                held[gate] = program.ask_when[gate](self, self.dates["T"]).value == MET
            return held[gate]

        evaluated = [(i, r) for i, r in enumerate(self.out) if r is not None]   # before any ask_when adds some
        return tuple(program.ids[i] for i, r in evaluated if r.doc_leaf and r.result == UNKNOWN
                     and program.asks[i] and all(holds(gate) for gate in program.gates[i]))


def leaf_result(node_id: str, value: str, source: str, found: Finding, doc_leaf: bool) -> NodeResult:
    notes, briefs, evidence = found.notes, found.briefs, found.evidence
    if len(notes) <= 1 and len(briefs) <= 1 and len(evidence) <= 1:   # one test: most leaves, made fast
        note, brief = (notes[0] or "") if notes else "", (briefs[0] or "") if briefs else ""
        return NodeResult(node_id, value, source, tuple(evidence), note, True, doc_leaf, brief)
    note = "; ".join(dict.fromkeys(n for n in notes if n))
    brief = next((b for b in briefs if b), "")
    return NodeResult(node_id, value, source, tuple(dict.fromkeys(evidence)), note, True, doc_leaf, brief)


def tests_finding(parts: list[Finding], conjunction: bool) -> Finding:
    """An ``all`` (``conjunction``) or ``any`` of tests: one finding holding every part's findings."""
    out = Finding((logic.all_of if conjunction else logic.any_of)(p.value for p in parts))
    for part in parts:
        out.absorb(part)
    if out.value == UNKNOWN:
        out.decided = _unknown_on_evidence(parts, conjunction)
    return out


def _unknown_on_evidence(parts: list[Finding], conjunction: bool) -> bool:
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
    """Apply the expression's operator to a known fact: (result, whether the record said so)."""
    return tester(expr, codesets)(fact.value)


def tester(expr: Expr, codesets) -> Callable[[object], tuple[str, bool]]:
    """The expression's operator, settled once (policy/compile), applied to a known fact's value.

    A known fact is evidence even when the test stays undecided ("≥ 2 fetuses" against "at most
    2"); only a failure that the policy maps to ``otherwise: unknown`` means "no evidence".
    """
    apply = _operator(expr, codesets)
    otherwise = expr.otherwise or NOT_MET
    failed = (otherwise, otherwise != UNKNOWN)

    def run(value) -> tuple[str, bool]:
        found = apply(value)
        return failed if found == "fail" else (found, True)
    return run


def _operator(expr: Expr, codesets) -> Callable[[object], str]:
    if expr.result is not None:
        return lambda value: value if value in (MET, NOT_MET, UNKNOWN) else UNKNOWN
    if expr.known is not None:
        known = MET if expr.known else "fail"
        return lambda value: known
    if expr.present is not None:
        yes, no = (MET, NOT_MET) if expr.present else (NOT_MET, MET)
        return lambda value: (yes if value else no) if isinstance(value, bool) else UNKNOWN
    if expr.codes_in is not None:
        key = tuple(expr.codes_in)

        def codes_in(value) -> str:
            codes = codesets[key]
            return MET if any(codes.entry_for(s, c) for s, c in value) else "fail"
        return codes_in
    if expr.is_ is not None:
        is_ = expr.is_
        return lambda value: MET if value == is_ else "fail"
    if expr.in_ is not None:
        in_ = expr.in_
        return lambda value: MET if value in in_ else "fail"
    return _comparison(expr)


_HOLDS = {"ge": operator.ge, "gt": operator.gt, "le": operator.le, "lt": operator.lt}


def _comparison(expr: Expr) -> Callable[[object], str]:
    """A bound (the first of ge, gt, le, lt given), compared at both ends of an interval."""
    op, bound = next(((op, b) for op, b in (("ge", expr.ge), ("gt", expr.gt), ("le", expr.le), ("lt", expr.lt))
                      if b is not None), (None, None))
    holds = _HOLDS.get(op)

    def compare(value) -> str:
        low, high = (value.low, value.high) if isinstance(value, Interval) else (value, value)
        if not isinstance(low, (int, float)) or isinstance(low, bool) or holds is None:
            return UNKNOWN
        holds_low, holds_high = holds(low, bound), holds(high, bound)
        if holds_low and holds_high:
            return MET
        return "fail" if not holds_low and not holds_high else UNKNOWN
    return compare


def _deciding_children(op: str, value: str, children, out):
    if value == UNKNOWN:
        return [c for c in children if out[c].result == UNKNOWN]
    if (op, value) in (("all", MET), ("any", NOT_MET), ("none", MET)):
        return children
    wanted = {("all", NOT_MET): NOT_MET, ("any", MET): MET, ("none", NOT_MET): MET,
              ("at_least", MET): MET, ("at_least", NOT_MET): NOT_MET}[(op, value)]
    return [c for c in children if out[c].result == wanted]
