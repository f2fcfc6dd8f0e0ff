"""Evaluations → CDS cards and CRD coverage-information system actions (CONTRACT §4)."""

from __future__ import annotations

import datetime as dt
import re
import uuid

from cdshooks.cds.protocol import Action
from cdshooks.cds.protocol import Card
from cdshooks.cds.protocol import Coding
from cdshooks.cds.protocol import Link
from cdshooks.cds.protocol import Source
from cdshooks.cds.protocol import Suggestion
from cdshooks.facts.calculators.orders import order_codes
from cdshooks.facts.facts import Fact
from cdshooks.fhir.record import Record
from cdshooks.jsonio import prune
from cdshooks.policy.applicability import Evaluation
from cdshooks.policy.applicability import result_in
from cdshooks.policy.logic import MET
from cdshooks.policy.logic import NOT_MET
from cdshooks.policy.logic import UNKNOWN
from cdshooks.policy.model import Response
from cdshooks.respond import card_text
from cdshooks.respond import coverage
from cdshooks.respond import crd
from cdshooks.respond import explain

SERVICE_LABEL = "Medical policy check"   # source.label of cards that no single policy issues
OVERRIDE_SYSTEM = "http://example.org/fhir/CodeSystem/cdshooks-override-reason"
_DECISION_WORDS = {MET: "criteria met", NOT_MET: "criteria not met", UNKNOWN: "criteria not yet shown",
                   "excluded": "policy does not apply"}
_PLACEHOLDER = re.compile(r"\{([a-z_]+)(?::([^}]+))?\}")
MAX_SUMMARY = 139


def row_for(evaluation: Evaluation) -> Response:
    """The first response-table row matching the decision, outcome and settings."""
    policy = evaluation.match.policy
    for row in policy.model.responses:
        when = row.when
        if when.decision and evaluation.decision not in when.decision:
            continue
        if when.outcome and (evaluation.outcome or "none") not in when.outcome:
            continue
        if any(policy.settings.get(k) != v for k, v in when.settings.items()):
            continue
        if not all(result_in(evaluation.results, i, allowed) for i, allowed in when.results.items()):
            continue
        return row
    raise LookupError(f"{policy.id}: no response row for {evaluation.decision}/{evaluation.outcome}")


def order_label(evaluation: Evaluation) -> str:
    """``IT pump trial (62322)``: the rule's label and the ordered code."""
    codes = evaluation.match.policy.applies
    rule_codes = next(cs for r, cs in codes if r is evaluation.match.rule)
    hits = [c for s, c in order_codes(evaluation.match.order.resource, evaluation.context.record)
            if rule_codes is not None and rule_codes.entry_for(s, c)]
    return f"{evaluation.match.rule.label} ({hits[0]})" if hits else evaluation.match.rule.label


def summary(evaluation: Evaluation, row: Response) -> str:
    policy = evaluation.match.policy

    def fill(match: re.Match) -> str:
        name, arg = match.groups()
        if name == "order":
            return order_label(evaluation)
        if name == "policy":
            return policy.model.short
        if name == "deciding":
            return explain.headline(evaluation)
        if name == "open":
            return explain.open_items(evaluation)
        if name == "fact":
            return _fact_text(evaluation.context.fact(arg, evaluation.dates["E"]))
        if name == "brief":
            result = evaluation.results.get(arg)
            return (result.brief if result else "") or arg
        if name == "date":
            return evaluation.dates[arg].isoformat()
        if name == "met":  # which red flags: their short phrases, not their ids
            nodes = [policy.nodes[i] for i in explain.met_under(evaluation, arg)]
            return ", ".join(dict.fromkeys(n.short or n.text for n in nodes)) or policy.nodes[arg].text
        return match.group(0)

    text = re.sub(r"\s+", " ", _PLACEHOLDER.sub(fill, row.summary)).strip()
    return text if len(text) <= MAX_SUMMARY else text[: MAX_SUMMARY - 1].rstrip() + "…"


def _fact_text(fact: Fact) -> str:
    if not fact.known or fact.value is None:
        return "unknown"
    return fact.value.isoformat() if isinstance(fact.value, dt.date) else str(fact.value)


def card(evaluation: Evaluation, base_url: str, crd_version: str = "2.0", form_url: str | None = None,
         hook: str = "order-select") -> Card:
    """The card of one evaluation; ``form_url`` opens the order's documentation form (forms.py); on
    ``order-sign`` the detail also says what the result means for prior authorization."""
    policy = evaluation.match.policy
    row = row_for(evaluation)
    policy_url = policy.model.source.url or f"{base_url}/policies/{policy.id}"
    links = [Link(label=f"{policy.model.short}: {policy.model.title}"[:120], url=policy_url, type="absolute")]
    if evaluation.documentation:
        links.append(Link(label="Answer the open questions (documentation form)", type="absolute",
                          url=form_url or f"{base_url}/policies/{policy.id}/form"))
    suggestions = _suggestions(evaluation, row)
    return Card(
        uuid=str(uuid.uuid4()),
        summary=summary(evaluation, row),
        detail=card_text.detail(evaluation, row, hook),
        indicator=row.indicator,
        source=Source(label=policy.model.issuer, url=policy_url,
                      topic=crd.topic(policy.model.topic, crd_version)),
        suggestions=suggestions or None,
        selectionBehavior="at-most-one" if suggestions else None,
        overrideReasons=[Coding(system=OVERRIDE_SYSTEM, code=r.code, display=r.display)
                         for r in policy.model.override_reasons],
        links=links,
        extension={"cdshooks.evaluation": explain.evaluation_json(evaluation)},
    )


def _suggestions(evaluation: Evaluation, row: Response) -> list[Suggestion]:
    when = card_text.reschedule_date(evaluation, row)
    if when is None:
        return []
    order = evaluation.match.order
    resource = {k: v for k, v in coverage.normalized(order.resource).items()
                if k not in ("occurrencePeriod", "occurrenceTiming")}
    resource["occurrenceDateTime"] = when.isoformat()
    label = row.reschedule.label.replace("{date}", when.isoformat())
    action = Action(type="update", description=f"Set the occurrence of {order.reference} to {when}",
                    resource=prune(resource))
    return [Suggestion(label=label, uuid=str(uuid.uuid4()), isRecommended=True, actions=[action])]


def coverage_assertion(evaluation: Evaluation, base_url: str, technical: bool) -> crd.Assertion | None:
    """The CRD assertion of a US policy's response row for this evaluation (None: the row has none)."""
    row = row_for(evaluation)
    if evaluation.match.policy.model.jurisdiction != "US" or row.coverage is None:
        return None
    values = row.coverage.model_dump(by_alias=True, exclude_none=True)
    return crd.policy_assertion(evaluation, values, base_url, technical)


def unavailable_card(record: Record, topic: Coding) -> Card | None:
    """One card saying which record data could not be read (the criteria reading it are unknown);
    it qualifies the policy cards it comes with, so it carries their card type (``topic``)."""
    if not record.unavailable:
        return None
    kinds = ", ".join(sorted(record.unavailable))
    detail = "\n".join(f"- **{rt}**: {reason}" for rt, reason in sorted(record.unavailable.items()))
    return Card(uuid=str(uuid.uuid4()), indicator="warning",
                summary=f"Some record data could not be read ({kinds}); affected criteria are unknown"[:MAX_SUMMARY],
                detail=f"The EHR did not provide this data, so criteria that need it were not decided:\n\n{detail}",
                source=Source(label=SERVICE_LABEL, topic=topic))
