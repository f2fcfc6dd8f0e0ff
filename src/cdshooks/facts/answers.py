"""Documentation answers from completed QuestionnaireResponses (policy specs README §4).

A record reader below the policy layer: the evaluator reads a leaf's answer, and a fact may read
answers too when its definition says so (the FN risk category of colony-stimulating-factors f.1)."""

from __future__ import annotations

from dataclasses import dataclass

from cdshooks.facts.facts import Evidence
from cdshooks.fhir.read import as_list
from cdshooks.fhir.record import Record
from cdshooks.fhir.record import reference_of


@dataclass(frozen=True)
class DocAnswer:
    """A clinician's yes/no to one criterion (the Questionnaire's linkId is the criterion id); not
    the pipeline's answer to a hook call."""

    value: bool
    evidence: Evidence


def answers_for(policy_id: str, record: Record) -> dict[str, DocAnswer]:
    """linkId → the answer of the latest ``authored`` QR for this policy (missing authored = oldest)."""
    patient_refs = _patient_refs(record)
    chosen: dict[str, tuple[str, DocAnswer]] = {}
    for qr in record.of_type("QuestionnaireResponse"):
        if not _counts(qr, policy_id, patient_refs):
            continue
        authored = qr.get("authored") if isinstance(qr.get("authored"), str) else ""
        reference = reference_of(qr) or "QuestionnaireResponse"
        for link_id, value in _boolean_items(qr.get("item")):
            answer = DocAnswer(value, Evidence(reference, f"{link_id} answered {'yes' if value else 'no'}",
                                            authored[:10] or None))
            if link_id not in chosen or authored >= chosen[link_id][0]:
                chosen[link_id] = (authored, answer)
    return {link_id: answer for link_id, (_, answer) in chosen.items()}


def _patient_refs(record: Record) -> set[str]:
    patient = record.patient
    return {f"Patient/{patient['id']}"} if patient and isinstance(patient.get("id"), str) else set()


def _counts(qr: dict, policy_id: str, patient_refs: set[str]) -> bool:
    if qr.get("status") not in ("completed", "amended"):
        return False
    canonical = qr.get("questionnaire")
    if not isinstance(canonical, str) or not canonical.split("|", 1)[0].endswith(f"Questionnaire/{policy_id}"):
        return False
    subject = qr.get("subject")
    if subject is None or not patient_refs:
        return True
    ref = subject.get("reference") if isinstance(subject, dict) else None
    return isinstance(ref, str) and any(ref == p or ref.endswith("/" + p) for p in patient_refs)


MAX_ITEM_DEPTH = 50


def _boolean_items(items):
    """``(linkId, valueBoolean)`` of every item, nested ones included (iterative: a hostile
    QuestionnaireResponse nested thousands deep must not exhaust the stack)."""
    stack = [(item, 1) for item in reversed(as_list(items))]
    while stack:
        item, depth = stack.pop()
        if not isinstance(item, dict) or depth > MAX_ITEM_DEPTH:
            continue
        answers = as_list(item.get("answer"))
        first = answers[0] if answers and isinstance(answers[0], dict) else {}
        if isinstance(item.get("linkId"), str) and isinstance(first.get("valueBoolean"), bool):
            yield item["linkId"], first["valueBoolean"]
        nested = as_list(item.get("item")) + [child for answer in answers if isinstance(answer, dict)
                                              for child in as_list(answer.get("item"))]
        stack.extend((child, depth + 1) for child in reversed(nested))
