"""Which policies apply to which orders, and their evaluation (dates T / E / R, outcomes)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from dataclasses import field
from typing import Mapping

from cdshooks.facts.answers import answers_for
from cdshooks.facts.calculators.orders import order_concepts
from cdshooks.facts.facts import FactContext
from cdshooks.fhir import record as record_module
from cdshooks.fhir.dates import occurrence_date
from cdshooks.fhir.orders import DraftOrder
from cdshooks.fhir.record import Record
from cdshooks.policy import logic
from cdshooks.policy.evaluate import Evaluator
from cdshooks.policy.evaluate import NodeResult
from cdshooks.policy.loader import CompiledPolicy
from cdshooks.policy.loader import PolicySet
from cdshooks.policy.model import Applicability


@dataclass(frozen=True)
class Match:
    order: DraftOrder
    policy: CompiledPolicy
    rule: Applicability


@dataclass(frozen=True)
class Evaluation:
    match: Match
    decision: str
    outcome: str | None
    results: Mapping[str, NodeResult]
    documentation: tuple[str, ...]
    dates: Mapping[str, dt.date]
    context: FactContext
    deciding: tuple[str, ...]       # ids that decided the root's value (explanations, reasons)
    # what the respond room derives from it (open questions, findings), once: a card and its CRD reasons read them alike
    memo: dict = field(default_factory=dict, init=False, compare=False, repr=False)

    def derived(self, kind: str, compute):
        """``compute(self)`` once per evaluation."""
        if kind not in self.memo:
            self.memo[kind] = compute(self)
        return self.memo[kind]


def service_date(order: dict, today: dt.date) -> dt.date:
    """E: the order's occurrence (or first dose) date when later than T, else T."""
    when = occurrence_date(order)
    return when if when is not None and when > today else today


def draft_context(policies: PolicySet, drafts, today: dt.date) -> tuple[Record, FactContext]:
    """The record of the draft orders alone, and facts over it: what applicability may read."""
    draft_record = record_module.build({}, {}, drafts)
    return draft_record, FactContext(policies.facts.facts, draft_record, today, policies.resources)


def match_orders(policies: PolicySet, in_scope, drafts, today: dt.date) -> list[Match]:
    """(order, policy, rule) for every order in scope and every policy one of whose rules applies."""
    draft_record, base = draft_context(policies, drafts, today)
    matches = []
    for order in in_scope:
        concepts = order_concepts(order.resource, draft_record)
        for policy in policies.by_id.values():
            rule = _applicable_rule(policy, order, concepts, base)
            if rule is not None:
                matches.append(Match(order, policy, rule))
    return matches


def _applicable_rule(policy: CompiledPolicy, order: DraftOrder, concepts, base: FactContext):
    for rule, codes in policy.applies:
        if order.resource_type not in rule.resource or (codes is not None and not codes.matches_concept(concepts)):
            continue
        if rule.requires is not None and not holds(rule.requires, policy, order, base):
            continue
        return rule
    return None


def holds(expr, policy: CompiledPolicy, order: DraftOrder, base: FactContext) -> bool:
    """Whether an applicability expression is met for ``order`` (unknown is not met)."""
    ctx = base.for_order(order, service_date(order.resource, base.today), policy.settings)
    evaluator = Evaluator(policy, ctx, {}, {"T": base.today, "E": ctx.service_date, "R": base.today})
    return evaluator.expr(expr, base.today, policy.model.criteria).value == logic.MET


def confirmed(matches: list[Match], base: FactContext) -> list[Match]:
    """The matches whose rule's ``confirm`` condition holds on the full record."""
    return [m for m in matches if m.rule.confirm is None or holds(m.rule.confirm, m.policy, m.order, base)]


def evaluate(match: Match, base: FactContext, record: Record) -> Evaluation:
    """Evaluate ``match.policy`` for ``match.order`` against the full record."""
    policy, today = match.policy, base.today
    ctx = base.for_order(match.order, service_date(match.order.resource, today), policy.settings)
    dates = {"T": today, "E": ctx.service_date, "R": _reference_date(policy, ctx)}
    evaluator = Evaluator(policy, ctx, answers_for(policy.id, record), dates)
    decision = evaluator.run(match.rule.sections)
    results, deciding = evaluator.results, evaluator.deciding()   # in tree order
    outcome = _outcome(policy, results, match.rule.sections)
    decision = (outcome.decision or decision) if outcome else decision
    outcome = outcome.code if outcome else None
    documentation = evaluator.documentation()
    return Evaluation(match, decision, outcome, results, documentation, dates, ctx, deciding)


def _reference_date(policy: CompiledPolicy, ctx: FactContext) -> dt.date:
    rule = policy.model.dates.get("R")
    if rule is None:
        return ctx.today
    fact = ctx.fact(rule.fact, ctx.today)
    return fact.value if fact.known and isinstance(fact.value, dt.date) else ctx.today


def _outcome(policy: CompiledPolicy, results: Mapping[str, NodeResult], sections):
    """The first outcome rule that holds (its code, and the decision it may impose)."""
    for outcome in policy.model.outcomes:
        when = outcome.when
        if not all(result_in(results, node_id, allowed) for node_id, allowed in when.results.items()):
            continue
        cf = when.counterfactual
        if cf is not None:
            if cf.node not in results:
                continue
            value = recompute(policy, policy.nodes[cf.node], results, cf.set, sections)
            if value not in cf.in_:
                continue
        return outcome
    return None


def result_in(results, node_id: str, allowed) -> bool:
    allowed = allowed if isinstance(allowed, list) else [allowed]
    return node_id in results and results[node_id].result in allowed


def recompute(policy: CompiledPolicy, node, results, overrides: Mapping[str, str], sections=None) -> str:
    """A node's value with some results replaced (for "would X alone have changed it?" outcomes)."""
    if node.id in overrides:
        return overrides[node.id]
    if node.ref is not None:
        return recompute(policy, policy.nodes[node.ref], results, overrides)
    if node.type is not None:
        return results[node.id].result if node.id in results else logic.UNKNOWN
    children = [c for c in node.decisive_children() if sections is None or node is not policy.model.criteria
                or c.id in sections]
    n = node.at_least.n if node.at_least else None
    return logic.combine(node.op, [recompute(policy, c, results, overrides) for c in children], n)

