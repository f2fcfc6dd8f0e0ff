"""Medication history (D10): MedicationRequests and MedicationStatements read as one list.

A MedicationStatement counts wherever a MedicationRequest does (MME, prior products).  It is
read through the same code as an order, so it is presented in an order's shape:

* ``effective[x]`` is the active interval (it becomes the dosage's ``boundsPeriod``, which the
  order readers take first); ``effectiveDateTime`` is a start without an end, so — like an order
  with only ``authoredOn`` — it lasts the default supply unless the statement is active;
* ``dosage`` is the dose (``dosageInstruction``);
* ``status``: active, completed, intended, stopped and on-hold count as for orders (intended reads
  as active: it is current medication the patient is expected to take); entered-in-error,
  not-taken and unknown never count.
A statement that records an order already in the record (``basedOn`` / ``derivedFrom`` / ``partOf``
resolving to a MedicationRequest) is left out so the same medication is not counted twice.
"""

from __future__ import annotations

from cdshooks.fhir.read import as_dict
from cdshooks.fhir.read import as_list
from cdshooks.fhir.read import objects
from cdshooks.fhir.record import Record

HISTORY_TYPES = ("MedicationRequest", "MedicationStatement")
_STATUS_AS_ORDER = {"active": "active", "completed": "completed", "intended": "active",
                    "stopped": "stopped", "on-hold": "on-hold"}
_COPIED = ("id", "resourceType", "medicationCodeableConcept", "medicationReference", "contained",
           "subject", "reasonCode", "reasonReference", "category")


def history(record: Record, drafts: bool = True) -> list[tuple[dict, bool]]:
    """(order-shaped resource, is_draft) for every MedicationRequest and counting statement."""
    found = [(r, record.is_draft(r)) for r in record.of_type("MedicationRequest")
             if drafts or not record.is_draft(r)]
    for statement in record.of_type("MedicationStatement"):
        order = record.derived("statement-as-order", statement,
                               lambda s: None if _records_an_order(s, record) else as_order(s))
        if order is not None:
            found.append((order, False))
    return found


def as_order(statement: dict) -> dict | None:
    """The statement in a MedicationRequest's shape; None when its status never counts."""
    status = statement.get("status")
    if not isinstance(status, str) or status not in _STATUS_AS_ORDER:
        return None
    order = {key: statement[key] for key in _COPIED if key in statement}
    order.update(status=_STATUS_AS_ORDER[status], intent="order")
    dosages = objects(statement.get("dosage"))
    bounds = _effective_bounds(statement)
    if bounds:
        first = dosages[0] if dosages else {}
        timing = as_dict(first.get("timing"))
        repeat = as_dict(timing.get("repeat"))
        first = {**first, "timing": {**timing, "repeat": {**repeat, "boundsPeriod": bounds}}}
        dosages = [first, *dosages[1:]]
    if dosages:
        order["dosageInstruction"] = dosages
    return order


def _effective_bounds(statement: dict) -> dict | None:
    period = statement.get("effectivePeriod")
    if isinstance(period, dict) and (period.get("start") or period.get("end")):
        return {k: period[k] for k in ("start", "end") if isinstance(period.get(k), str)}
    when = statement.get("effectiveDateTime")
    return {"start": when} if isinstance(when, str) else None


def _records_an_order(statement: dict, record: Record) -> bool:
    for element in ("basedOn", "derivedFrom", "partOf"):
        for reference in as_list(statement.get(element)):
            target = record.resolve(reference, statement)
            if isinstance(target, dict) and target.get("resourceType") == "MedicationRequest":
                return True
    return False
