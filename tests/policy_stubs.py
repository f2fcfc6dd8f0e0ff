"""A hand-built criteria tree evaluated as a compiled policy would be, over fixed facts."""

from __future__ import annotations

import datetime as dt
from types import MappingProxyType

from cdshooks.facts.facts import FactContext
from cdshooks.fhir.record import Record
from cdshooks.policy.compile import compile_policy
from cdshooks.policy.definitions import criteria
from cdshooks.policy.evaluate import Evaluator
from cdshooks.policy.model import Node

T = dt.date(2025, 6, 15)


class Fixed:
    """A fact definition that returns a fixed Fact."""

    order_scoped = False
    setting_refs = ()

    def __init__(self, fact):
        self.value = fact

    def compute(self, ctx, at):
        return self.value


class StubPolicy:
    """What the evaluator reads of a compiled policy (policy/loader.CompiledPolicy)."""

    def __init__(self, root: Node, define=None, twins=None, answered_by_facts=frozenset()):
        self.model = type("M", (), {"criteria": root, "define": define or {}, "applicability": ()})
        nodes = list(criteria(root))
        self.nodes = {n.id: n for n in nodes}
        self.order = {n.id: i for i, n in enumerate(nodes)}
        self.parents = {c.id: n.id for n in nodes for c in n.children()}
        self.codesets, self.twins, self.answered_by_facts = {}, twins or {}, answered_by_facts
        self.program = compile_policy(self.model, self.codesets, self.twins, answered_by_facts)


def evaluator(root: Node, facts, answers=None, settings=None, **policy) -> Evaluator:
    """An evaluator of ``root`` (not yet run) over ``facts`` (name -> Fact) at T = E = R."""
    ctx = FactContext(MappingProxyType({k: Fixed(v) for k, v in facts.items()}), Record(), T, {},
                      settings=settings or {})
    return Evaluator(StubPolicy(root, **policy), ctx, answers or {}, {"T": T, "E": T, "R": T})
