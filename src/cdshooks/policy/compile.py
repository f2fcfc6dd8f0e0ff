"""A policy's criteria tree compiled once, at load: flat arrays by tree position, a closure per node and test.

The evaluator (policy/evaluate) then walks no pydantic models per call: every branch on an
expression's form, every ``define`` look-up, a group's operator and its decisive children are
settled here. Each closure takes the evaluator's per-call state and the date it evaluates on,
and keeps its exact semantics (policy README §5; policy/evaluate's docstring). A broken policy
(unknown reference or definition, which ``cdshooks check`` reports) still compiles: the look-up
fails when evaluated, as it did before compiling.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable
from typing import Mapping

from cdshooks.policy import definitions
from cdshooks.policy import logic
from cdshooks.policy.evaluate import MET
from cdshooks.policy.evaluate import NOT_MET
from cdshooks.policy.evaluate import UNKNOWN
from cdshooks.policy.evaluate import Finding
from cdshooks.policy.evaluate import NodeResult
from cdshooks.policy.evaluate import leaf_result
from cdshooks.policy.evaluate import tester
from cdshooks.policy.evaluate import tests_finding
from cdshooks.policy.model import Expr
from cdshooks.policy.model import Node
from cdshooks.policy.model import Policy

ExprFn = Callable[[object, object], Finding]     # (evaluator, date) -> what the test found
NodeFn = Callable[[object, object], str]         # (evaluator, date) -> the node's result


@dataclass(frozen=True)
class Program:
    """One policy's tree by pre-order position (the position of ``CompiledPolicy.order``)."""

    ids: tuple[str, ...]
    op: tuple[str | None, ...]               # a group's operator; None for a leaf, "ref" for a reference
    target: tuple[int | None, ...]           # a reference's target position
    children: tuple[tuple[int, ...], ...]    # a group's decisive children (deciding criteria follow these)
    asks: tuple[bool, ...]                   # a leaf listed in 'documentation' while unknown (ask: true)
    ask_when: tuple[ExprFn | None, ...]
    gates: tuple[tuple[int, ...], ...]       # the node and its ancestors that have an ask_when, top down
    root_run: Callable                       # (evaluator, date, sections): the root, on some of its children
    exprs: Mapping[int, ExprFn]              # id(expr) -> closure, for the policy's applicability tests
    compiler: "_Compiler"

    def expr(self, expr: Expr) -> ExprFn:
        """The closure of one of the policy's tests (compiled now if it is not one of the policy's)."""
        found = self.exprs.get(id(expr))
        return found if found is not None else self.compiler.expr(expr)


def compile_policy(model: Policy, codesets, twins: Mapping[str, tuple[str, ...]],
                   answered_by_facts: frozenset[str]) -> Program:
    """Compile ``model`` (named lists already placed in the tree) into a :class:`Program`."""
    tree = list(definitions.criteria(model.criteria))
    index = {node.id: i for i, node in enumerate(tree)}
    compiler = _Compiler(model, index, codesets, twins, answered_by_facts)
    run = tuple(compiler.node(i, node) for i, node in enumerate(tree))
    compiler.runs.extend(run)
    parent: list[int | None] = [None] * len(tree)
    for i, node in enumerate(tree):
        for child in node.children():
            parent[index[child.id]] = i
    exprs = {id(e): compiler.expr(e) for rule in model.applicability for e in (rule.requires, rule.confirm) if e}
    root_run = run[0] if tree[0].op is not None else (lambda ev, on, only: run[0](ev, on))
    return Program(
        ids=tuple(node.id for node in tree),
        op=tuple("ref" if n.ref is not None else n.op for n in tree),
        target=tuple(index.get(n.ref) if n.ref is not None else None for n in tree),
        children=tuple(tuple(index[c.id] for c in n.decisive_children()) for n in tree),
        asks=tuple(n.ask for n in tree),
        ask_when=tuple(compiler.expr(n.ask_when) if n.ask_when is not None else None for n in tree),
        gates=_gates(tree, parent),
        root_run=root_run, exprs=exprs, compiler=compiler)


def _gates(tree: list[Node], parent: list[int | None]) -> tuple[tuple[int, ...], ...]:
    gates: list[tuple[int, ...]] = []
    for i, node in enumerate(tree):   # pre-order: a parent's gates are known before its children's
        above = gates[parent[i]] if parent[i] is not None else ()
        gates.append(above + (i,) if node.ask_when is not None else above)
    return tuple(gates)


def _memo(i: int, compute) -> NodeFn:
    """Run a leaf or reference at position ``i`` once per call; later runs read its result."""
    def run(ev, on):
        found = ev.out[i]
        if found is None:
            found = ev.out[i] = compute(ev, on)
        return found.result
    return run


class _Compiler:
    def __init__(self, model: Policy, index, codesets, twins, answered_by_facts):
        self.model, self.index, self.codesets = model, index, codesets
        self.twins, self.answered_by_facts = twins, answered_by_facts
        self.runs: list[NodeFn] = []      # filled once every node is compiled (references go by position)
        self.defines = {name: self.expr(expr) for name, expr in model.define.items()}

    def _run_of(self, node_id: str) -> NodeFn:
        """Run the node ``node_id`` (a missing one fails when evaluated, as a KeyError)."""
        i, runs = self.index.get(node_id), self.runs
        if i is None:
            def missing(ev, on):
                raise KeyError(node_id)
            return missing
        return lambda ev, on: runs[i](ev, on)

    # ------------------------------------------------------------------------ nodes
    def node(self, i: int, node: Node) -> NodeFn:
        if node.ref is not None:
            return _memo(i, self._reference(node))
        if node.type is not None:
            return _memo(i, self._leaf(node))
        return self.group(i, node)

    def group(self, i: int, node: Node) -> NodeFn:
        """A group's closure; at the root, ``only`` names the children the order's rule evaluates (sections)."""
        runs, index = self.runs, self.index
        children = [(c.id, c.decisive, index.get(c.id)) for c in node.children()]
        every = tuple(j for _, _, j in children)
        decisive = tuple(j for _, is_decisive, j in children if is_decisive)
        node_id, op, n = node.id, node.op, node.at_least.n if node.at_least else None

        def run(ev, on, only=None):
            if ev.out[i] is not None:
                return ev.out[i].result
            if only is None:
                values = [runs[j](ev, on) for j in decisive]
                for j in every:    # informational children are evaluated and reported too
                    runs[j](ev, on)
            else:
                kept = [(d, j) for c, d, j in children if c in only or not d]
                values = [runs[j](ev, on) for d, j in kept if d]
                for _, j in kept:
                    runs[j](ev, on)
            result = ev.out[i] = NodeResult(node_id, logic.combine(op, values, n), "group")
            return result.result
        return run

    def _reference(self, node: Node):
        target, ref, at = self._run_of(node.ref), node.ref, node.at or "T"

        def compute(ev, on):
            on = ev.dates[at]
            value = target(ev, on)
            note = f"{ref} evaluated on {on}" if on != ev.dates["T"] else f"{ref} is {value}"
            return NodeResult(node.id, value, "reference", note=note)
        return compute

    def _leaf(self, node: Node):
        """Leaf precedence: structured evidence, else a documentation answer, else the default."""
        when = self.expr(node.when) if node.when is not None else None
        node_id, default = node.id, node.default
        doc_leaf = node.type in ("documentation", "structured+doc")
        ids = (node_id, *self.twins.get(node_id, ()))   # the leaf and its twins answer alike
        read_by_fact = node_id in self.answered_by_facts

        def compute(ev, on):
            found = when(ev, on) if when is not None else Finding(UNKNOWN)
            if found.value != UNKNOWN:
                source = "documentation" if found.uses_doc and not found.by_data else "structured"
                return leaf_result(node_id, found.value, source, found, doc_leaf)
            answer = _latest(ev.answers, ids) if doc_leaf and not found.uses_doc else None
            if answer is not None and answer.value and read_by_fact:
                answer = None  # the leaf's fact has read this "yes" along with the siblings' answers
            if answer is not None:
                value = MET if answer.value else NOT_MET
                return NodeResult(node_id, value, "documentation", (answer.evidence,), "", True, doc_leaf)
            if found.unavailable:
                return leaf_result(node_id, UNKNOWN, "unavailable", found, doc_leaf)
            if found.decided:
                return leaf_result(node_id, UNKNOWN, "structured", found, doc_leaf)
            return leaf_result(node_id, default, "default", found, doc_leaf)
        return compute

    # ------------------------------------------------------------------------ tests
    def expr(self, expr: Expr) -> ExprFn:
        if expr.def_ is not None:
            defines, name = self.defines, expr.def_
            return lambda ev, on: defines[name](ev, on)
        if expr.fact is not None:
            return self._fact_test(expr)
        if expr.setting is not None:
            return _setting_test(expr)
        if expr.node is not None:
            return self._node_test(expr)
        if expr.doc is not None:
            return _doc_test(expr.doc)
        if expr.not_ is not None:
            inner = self.expr(expr.not_)

            def negated(ev, on):
                found = inner(ev, on)
                found.value = logic.negate(found.value)
                return found
            return negated
        parts = tuple(self.expr(e) for e in (expr.all or expr.any))
        conjunction = expr.all is not None
        return lambda ev, on: tests_finding([part(ev, on) for part in parts], conjunction)

    def _fact_test(self, expr: Expr) -> ExprFn:
        name, at, check = expr.fact, expr.at if expr.at != "T" else None, tester(expr, self.codesets)

        def run(ev, on):
            fact = ev.ctx.fact(name, ev.dates[at] if at else on)
            if fact.status == "unavailable":
                return Finding(UNKNOWN, [], [fact.note], [], unavailable=True)
            if not fact.known:
                return Finding(UNKNOWN, list(fact.evidence), [fact.note])
            value, evidential = check(fact.value)
            return Finding(value, list(fact.evidence), [fact.note], [fact.brief], decided=evidential,
                           by_data=evidential)
        return run

    def _node_test(self, expr: Expr) -> ExprFn:
        target, node_id = self._run_of(expr.node), expr.node
        if expr.is_ is not None or expr.in_ is not None:
            wanted = [expr.is_] if expr.is_ is not None else expr.in_

            def one_of(ev, on):
                hit = target(ev, on) in wanted  # a hit is evidence; a miss only says "not shown to be"
                return Finding(MET if hit else NOT_MET, decided=hit, by_data=hit)
            return one_of
        i = self.index.get(node_id)

        def result(ev, on):
            value = target(ev, on)
            decided = value != UNKNOWN
            return Finding(value, list(ev.out[i].evidence) if decided else [], decided=decided, by_data=decided)
        return result


def _setting_test(expr: Expr) -> ExprFn:
    name, is_, in_ = expr.setting, expr.is_, expr.in_

    def run(ev, on):
        value = ev.ctx.settings.get(name)
        hit = value == is_ if is_ is not None else value in in_
        return Finding(MET if hit else NOT_MET, notes=[f"setting {name} = {value}"], decided=True, by_data=True)
    return run


def _doc_test(node_id: str) -> ExprFn:
    def run(ev, on):
        answer = ev.answers.get(node_id)
        if answer is None:
            return Finding(UNKNOWN, uses_doc=True)
        return Finding(MET if answer.value else NOT_MET, [answer.evidence], decided=True, uses_doc=True)
    return run


def _latest(answers, ids):
    """The latest documentation answer for a leaf or one of its twins (named-list expansions)."""
    found = [a for i in ids if (a := answers.get(i)) is not None]
    return max(found, key=lambda a: a.evidence.date or "") if found else None
