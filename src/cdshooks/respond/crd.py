"""Da Vinci CRD parts of an order-sign answer: what the payer asserts for each order, and card types.

Every order of an order-sign call gets coverage-information when the record has a Coverage (CRD
2.0.1 hooks: "SHALL, at minimum, return a Coverage Information system action"): the assertion of
the policy that covers it, or — for an order no medical policy of this service covers — the
deployment's statement (``CDSHOOKS_UNCOVERED_ORDERS``), which also yields one Instructions card.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass

from cdshooks.cds.protocol import Action
from cdshooks.cds.protocol import Card
from cdshooks.cds.protocol import Coding
from cdshooks.cds.protocol import Source
from cdshooks.fhir.orders import DraftOrder
from cdshooks.fhir.read import as_list
from cdshooks.jsonio import prune
from cdshooks.policy import assertions
from cdshooks.policy.applicability import Evaluation
from cdshooks.policy.assertions import Reason
from cdshooks.policy.assertions import UncoveredStatement
from cdshooks.policy.logic import MET
from cdshooks.policy.logic import UNKNOWN
from cdshooks.respond import card_text
from cdshooks.respond import coverage
from cdshooks.respond import explain

log = logging.getLogger(__name__)

CARD_TOPIC_SYSTEMS = {  # CRD card types: 2.0.1 used a temporary code system, 2.2 the THO one
    "2.0": "http://hl7.org/fhir/us/davinci-crd/CodeSystem/temp",
    "2.2": "http://terminology.hl7.org/CodeSystem/cdshooks-card-type",
}
CARD_TYPE_NAMES = {"coverage-info": "Coverage information", "guideline": "Guideline",
                   "off-guideline": "Off-guideline", "appropriate-use": "Appropriate use"}
_CARD_TYPE_HELP = {
    "coverage-info": "Coverage-information system actions on order-sign, and the instructions card for "
                     "orders no medical policy of this service covers",
    "guideline": "Cards evaluating an order against a medical policy or clinical guideline",
    "off-guideline": "Cards saying an order is contrary to a policy or guideline",
    "appropriate-use": "Cards evaluating an order against an appropriate-use policy",
}
_VERDICT = {"covered": "Covered", "not-covered": "Not covered", "conditional": "Coverage conditional"}
_PA_WORDS = {"no-auth": "no prior authorization needed", "auth-needed": "prior authorization needed",
             "conditional": "prior authorization may be needed"}


@dataclass(frozen=True)
class Assertion:
    """The coverage-information values for one order (one per applicable US policy, or the statement)."""

    order: DraftOrder
    values: dict
    source: str     # the policy id, or why the deployment's statement answers


def policy_assertion(evaluation: Evaluation, row_coverage: dict, base_url: str, technical: bool) -> Assertion:
    """The assertion of a US policy's response row, with its reason (and 2.2 detail) filled in."""
    policy = evaluation.match.policy
    values = dict(row_coverage)
    values["reason"] = policy_reason(evaluation, values["covered"], technical)
    if values.get("info-needed") == "OTH":
        values["detail"] = needed_detail(evaluation)
    if values.get("doc-needed"):
        values["questionnaire"] = f"{base_url}/fhir/Questionnaire/{policy.id}"
    return Assertion(evaluation.match.order, values, policy.id)


def policy_reason(evaluation: Evaluation, covered: str, technical: bool = False) -> Reason:
    """Readable reason: verdict, policy, what decided, then criterion ids as a trailing reference.

    ``technical``: the decision is open because record data could not be read (CRD 2.2 reason
    ``technical``; the 2.0.1 value set has no code for it, so the coding is added under 2.2 only).
    """
    model = evaluation.match.policy.model
    if evaluation.decision == MET:
        why = f"criteria met ({explain.headline(evaluation)})"
    elif evaluation.decision == UNKNOWN:
        why = explain.open_items(evaluation)
    else:
        why = explain.headline(evaluation)
    if evaluation.outcome:
        why += f"; outcome: {evaluation.outcome.replace('-', ' ')}"
    text = f"{_VERDICT[covered]} under {model.short} ({model.title}): {why}."
    ids = _reference_ids(evaluation) if evaluation.decision != MET else []
    if ids:
        text += f" Criteria: {_some(ids)}."
    if technical:
        text += " Some record data could not be read."
    return Reason(text, "technical" if technical else None)


def needed_detail(evaluation: Evaluation) -> str:
    """CRD 2.2 ``detail`` for ``info-needed = OTH``: what information would settle the decision."""
    policy = evaluation.match.policy
    ids = _reference_ids(evaluation)
    if not ids:
        return f"Review of the order's documentation under {policy.model.short} by the payer."
    return (f"Documentation of {_some(ids)} under {policy.model.short} "
            f"(the questions of Questionnaire/{policy.id}).")


def _reference_ids(evaluation: Evaluation) -> list[str]:
    """The criteria a reason names, as the card does: what failed (of the alternative that came
    closest), or the open questions that can still change an open decision."""
    if evaluation.decision == UNKNOWN:
        return card_text.open_questions(evaluation) or list(evaluation.documentation)
    return card_text.finding_ids(evaluation)


def _some(ids: list[str], shown: int = 6) -> str:
    """Criterion ids as a trailing reference: the first few, then how many more."""
    more = len(ids) - shown
    return ", ".join(ids[:shown]) + (f" and {more} more" if more > 0 else "")


def for_version(values: dict, version: str) -> dict:
    """Values as sent in ``version``: reason codes outside that version's value set become text only."""
    reason = values.get("reason")
    if isinstance(reason, Reason) and reason.code and reason.code not in assertions.REASON_CODES[version]:
        return {**values, "reason": Reason(reason.text)}
    return values


def actions(assertions: list[Assertion], cov: dict, today, version: str) -> tuple[list[Action], list[DraftOrder]]:
    """One update per order carrying its assertions (one assertion id per order and coverage), unless
    the draft already says the same for that coverage (CRD resp-35); and the orders updated."""
    by_order: dict[str, list[Assertion]] = {}
    for item in assertions:
        by_order.setdefault(item.order.reference, []).append(item)
    out, updated = [], []
    for items in by_order.values():
        order, assertion_id = items[0].order, str(uuid.uuid4())
        extensions = []
        for item in items:
            try:
                extensions.append(coverage.extension(for_version(item.values, version), coverage.reference(cov),
                                                     today, assertion_id, version))
            except coverage.CoverageInvariantError as exc:   # a policy-file slip; never sent invalid
                log.error("coverage-information of %s for %s not sent: %s", item.source, order.reference, exc)
        if not extensions or not coverage.is_news(order.resource, extensions):
            continue
        sources = ", ".join(i.source for i in items)
        out.append(Action(type="update", description=f"Coverage information for {order.reference} ({sources})",
                          resource=prune(coverage.with_extensions(order.resource, extensions))))
        updated.append(order)
    return out, updated


def uncovered_card(orders: list[DraftOrder], statement: UncoveredStatement, label: str, version: str) -> Card:
    """One Instructions card (no links, no suggestions) for the orders the statement answered."""
    names = [_order_name(o) for o in orders]
    pa = _PA_WORDS.get(statement.pa_needed or "", "not covered")
    summary = f"{len(orders)} orders: {pa}; no medical policy of this service applies"
    for labels in ([_short(code, display) for code, display in names], [code for code, _ in names]):
        text = f"{_some(labels, 3)}: {pa}; no medical policy of this service applies"
        if len(text) <= 139:
            summary = text
            break
    lines = [statement.values()["reason"].text, "", *(f"- {code}{f' {display}' if display else ''} ({o.reference})"
                                     for (code, display), o in zip(names, orders))]
    return Card(uuid=str(uuid.uuid4()), summary=summary, detail="\n".join(lines), indicator="info",
                source=Source(label=label, topic=topic("coverage-info", version)))


def _short(code: str, display: str | None) -> str:
    if not display:
        return code
    return f"{display if len(display) <= 40 else display[:39].rstrip() + '…'} ({code})"


def _order_name(order: DraftOrder) -> tuple[str, str | None]:
    """The ordered code and its display (or the concept's text, or the order's reference)."""
    for element in ("code", "codeCodeableConcept", "medicationCodeableConcept"):
        concept = order.resource.get(element)
        if not isinstance(concept, dict):
            continue
        for coding in as_list(concept.get("coding")):
            if isinstance(coding, dict) and isinstance(coding.get("code"), str) and coding["code"].strip():
                display = coding.get("display") or concept.get("text")
                return coding["code"].strip(), display if isinstance(display, str) else None
        if isinstance(concept.get("text"), str) and concept["text"].strip():
            return concept["text"].strip(), None
    return order.reference, None


def topic(card_type: str, version: str) -> Coding:
    return Coding(system=CARD_TOPIC_SYSTEMS[version], code=card_type, display=CARD_TYPE_NAMES[card_type])


def configuration_options(card_types, defaults) -> list[dict]:
    """``davinci-crd.configuration-options``: one boolean per card type we send, then max-cards."""
    options = [{"code": t, "type": "boolean", "name": f"{CARD_TYPE_NAMES[t]} cards"
                if t != "coverage-info" else CARD_TYPE_NAMES[t],
                "description": _CARD_TYPE_HELP[t], "default": defaults.allows(t)}
               for t in sorted(card_types, key=list(CARD_TYPE_NAMES).index)]
    options.append({"code": "max-cards", "type": "integer", "name": "Maximum cards",
                    "description": "Return at most this many cards (the most urgent when some must go)",
                    "default": defaults.max_cards})
    return options
