"""Facts about the orders themselves: codes, reasons (D6), and the markers applicability needs."""

from __future__ import annotations

import re

from cdshooks.fhir.read import as_list
from cdshooks.fhir.read import codings
from cdshooks.fhir.read import main_code_element
from cdshooks.fhir.record import Record

_MEDICATION_TYPES = ("MedicationRequest", "MedicationStatement")


def order_concepts(order: dict, record: Record) -> list:
    """The CodeableConcept(s) that say what is ordered (D7 for medications)."""
    element = main_code_element(order.get("resourceType"))
    concepts = as_list(order.get(element))
    if order.get("resourceType") in _MEDICATION_TYPES and not concepts:
        medication = record.resolve(order.get("medicationReference"), order)
        if medication is not None:
            concepts = as_list(medication.get("code"))
    return concepts


def order_codes(order: dict, record: Record) -> list[tuple[str, str]]:
    """``(system, normalized code)`` of what is ordered."""
    return codings(order_concepts(order, record))


def reason_codes(order: dict, record: Record) -> tuple[list[tuple[str, str]], list[str]]:
    """D6: ``reasonCode`` ∪ codes of the Conditions ``reasonReference`` resolves to; and those references."""
    pairs = codings(order.get("reasonCode"))
    references = []
    for reference in as_list(order.get("reasonReference")):
        condition = record.resolve(reference, order)
        if condition is not None and condition.get("resourceType") == "Condition":
            pairs.extend(codings(condition.get("code")))
            references.append(reference.get("reference") if isinstance(reference, dict) else str(reference))
    return pairs, references


def texts(concepts) -> list[str]:
    """Every ``text`` and coding ``display`` of some CodeableConcepts."""
    out = []
    for cc in as_list(concepts):
        if isinstance(cc, dict):
            if isinstance(cc.get("text"), str):
                out.append(cc["text"])
            out.extend(c["display"] for c in as_list(cc.get("coding"))
                       if isinstance(c, dict) and isinstance(c.get("display"), str))
    return out


def text_matches(concepts, pattern: re.Pattern) -> str | None:
    """The first text or display of ``concepts`` that ``pattern`` finds, else None."""
    return next((t for t in texts(concepts) if pattern.search(t)), None)
