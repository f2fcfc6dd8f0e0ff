"""Da Vinci CRD coverage-information (CONTRACT §4.2), valid under CRD 2.0.1 and 2.2 rules."""

from __future__ import annotations

import datetime as dt

from cdshooks.fhir.read import objects
from cdshooks.policy.assertions import CRD_CODES
from cdshooks.policy.assertions import invariant_problems

COVERAGE_INFORMATION = "http://hl7.org/fhir/us/davinci-crd/StructureDefinition/ext-coverage-information"
# Elements that make up an assertion: equal values for the same coverage = nothing new (CRD resp-35).
_ASSERTED = ("covered", "pa-needed", "doc-needed", "doc-purpose", "info-needed", "questionnaire")


class CoverageInvariantError(ValueError):
    """Coverage values that would break a CRD invariant; never sent."""


def extension(values: dict, coverage_ref: str, today: dt.date, assertion_id: str, version: str = "2.0") -> dict:
    """The ext-coverage-information extension; raise :class:`CoverageInvariantError` if invalid.

    ``values``: the coded elements (``covered`` … ``info-needed``), ``reason`` (a :class:`Reason`),
    ``questionnaire``, and ``detail`` (text of the information needed; sent under CRD 2.2).
    """
    problems = invariant_problems(values, version)
    if problems:
        raise CoverageInvariantError("; ".join(problems))
    parts = [{"url": "coverage", "valueReference": {"reference": coverage_ref}},
             {"url": "covered", "valueCode": values["covered"]}]
    for key in ("pa-needed", "doc-needed", "doc-purpose", "info-needed"):
        if values.get(key):
            parts.append({"url": key, "valueCode": values[key]})
    if values.get("reason"):
        parts.append({"url": "reason", "valueCodeableConcept": values["reason"].concept()})
    if version == "2.2" and values.get("detail"):
        parts.append({"url": "detail", "extension": [
            {"url": "category", "valueCode": "cat-limitation"},
            {"url": "code", "valueCodeableConcept": {"coding": [{"system": CRD_CODES, "code": "instructions"}]}},
            {"url": "value", "valueString": values["detail"]}]})
    if values.get("questionnaire"):
        parts.append({"url": "questionnaire", "valueCanonical": values["questionnaire"]})
    parts += [{"url": "date", "valueDate": today.isoformat()},
              {"url": "coverage-assertion-id", "valueString": assertion_id}]
    return {"url": COVERAGE_INFORMATION, "extension": parts}


def assertion(ext: dict) -> tuple:
    """What a coverage-information extension asserts, for which coverage (dates and ids left out)."""
    found: dict[str, list] = {}
    for part in ext.get("extension") or []:
        if isinstance(part, dict) and part.get("url") in _ASSERTED + ("coverage",):
            value = next((v for k, v in part.items() if k.startswith("value")), None)
            found.setdefault(part["url"], []).append(value.get("reference") if isinstance(value, dict) else value)
    return tuple((key, tuple(sorted(map(str, found.get(key, []))))) for key in ("coverage",) + _ASSERTED)


def is_news(resource: dict, extensions: list[dict]) -> bool:
    """Whether ``extensions`` assert something the draft's own coverage-information does not (resp-35)."""
    present = _coverage_extensions(resource)
    if not present:   # the usual case: nothing asserted yet
        return True
    new = {assertion(e) for e in extensions}
    coverages = {a[0] for a in new}
    return new != {a for a in map(assertion, present) if a[0] in coverages}


def normalized(resource: dict) -> dict:
    """A copy of a draft order with the sandbox's cardinality slips (object for array) repaired."""
    updated = dict(resource)
    for key in ("category", "reasonCode", "reasonReference", "dosageInstruction"):
        if isinstance(updated.get(key), dict):
            updated[key] = [updated[key]]
    return updated


def with_extensions(resource: dict, extensions: list[dict]) -> dict:
    """A copy of the draft order carrying ``extensions`` (replacing earlier coverage-information
    for the same coverages; other extensions, and assertions about other coverages, stay)."""
    updated = normalized(resource)
    present = resource.get("extension")
    kept = list(present) if isinstance(present, list) else [present] if isinstance(present, dict) else []
    if _coverage_extensions(resource):
        ours = {assertion(e)[0] for e in extensions}
        kept = [e for e in kept if not (isinstance(e, dict) and e.get("url") == COVERAGE_INFORMATION
                                        and assertion(e)[0] in ours)]
    updated["extension"] = kept + list(extensions)
    return updated


def _coverage_extensions(resource: dict) -> list[dict]:
    extensions = resource.get("extension")
    return [e for e in extensions if isinstance(e, dict) and e.get("url") == COVERAGE_INFORMATION] \
        if isinstance(extensions, list) else []


def active_coverage(coverages: list[dict]) -> dict | None:
    """The first active Coverage in the record."""
    for coverage in coverages:
        if coverage.get("status", "active") == "active" and isinstance(coverage.get("id"), str):
            return coverage
    return None


def reference(coverage: dict) -> str:
    return f"Coverage/{coverage['id']}"


def payer_name(coverage: dict, resolve) -> str | None:
    """The payer's name as the member's card would show it: the payor reference's display, else the
    name of the payer resource it resolves to (CRD: ``source.label`` is the insurer's name)."""
    for payor in _payors(coverage):
        target = resolve(payor, coverage)
        for name in (payor.get("display"), target.get("name") if isinstance(target, dict) else None):
            if isinstance(name, str) and name.strip():
                return name.strip()
    return None


def _payors(coverage: dict) -> list[dict]:
    return objects(coverage.get("payor"))


def has_payer_identifier(coverage: dict, resolve) -> bool:
    """Whether a payer of the Coverage carries an identifier (CRD 2.2 hook-13): on the reference
    itself, or on the payer resource it resolves to (``resolve(reference, container)``)."""
    for payor in _payors(coverage):
        if _has_identifier(payor.get("identifier")):
            return True
        target = resolve(payor, coverage)
        if isinstance(target, dict) and _has_identifier(target.get("identifier")):
            return True
    return False


def _has_identifier(value) -> bool:
    items = value if isinstance(value, list) else [value]
    return any(isinstance(i, dict) and isinstance(i.get("value"), str) and i["value"].strip() for i in items)
