"""Da Vinci CRD coverage-information (CONTRACT §4.2), valid under CRD 2.0.1 and 2.2 rules."""

from __future__ import annotations

import datetime as dt
import uuid

COVERAGE_INFORMATION = "http://hl7.org/fhir/us/davinci-crd/StructureDefinition/ext-coverage-information"


class CoverageInvariantError(ValueError):
    """Coverage values that would break a CRD invariant; never sent."""


def invariant_problems(values: dict) -> list[str]:
    """Broken CRD invariants (2.2 q1–q8, read so that 2.0.1 is satisfied as well)."""
    covered, pa, doc = values.get("covered"), values.get("pa-needed"), values.get("doc-needed")
    purpose, info = values.get("doc-purpose"), values.get("info-needed")
    problems = []
    if (covered != "not-covered") != (pa is not None):
        problems.append("pa-needed must be present exactly when covered is not 'not-covered' (q2)")
    conditional = "conditional" in (covered, pa, doc)
    if conditional != (info is not None):
        problems.append("info-needed must be present exactly when something is 'conditional' (q3)")
    if purpose == "withpa" and pa != "auth-needed":
        problems.append("doc-purpose 'withpa' needs pa-needed 'auth-needed' (q4)")
    if purpose is not None and doc is None:
        problems.append("doc-purpose needs doc-needed")
    if values.get("questionnaire") and doc is None:
        problems.append("questionnaire needs doc-needed (q1)")
    if (info == "OTH" or purpose is not None) and not values.get("reason"):
        problems.append("info-needed OTH and doc-purpose need a reason (q6, q8)")
    return problems


def extension(values: dict, coverage_ref: str, today: dt.date) -> dict:
    """The ext-coverage-information extension; raise :class:`CoverageInvariantError` if invalid."""
    problems = invariant_problems(values)
    if problems:
        raise CoverageInvariantError("; ".join(problems))
    parts = [{"url": "coverage", "valueReference": {"reference": coverage_ref}},
             {"url": "covered", "valueCode": values["covered"]}]
    for key in ("pa-needed", "doc-needed", "doc-purpose", "info-needed"):
        if values.get(key):
            parts.append({"url": key, "valueCode": values[key]})
    if values.get("reason"):
        parts.append({"url": "reason", "valueCodeableConcept": {"text": values["reason"]}})
    if values.get("questionnaire"):
        parts.append({"url": "questionnaire", "valueCanonical": values["questionnaire"]})
    parts += [{"url": "date", "valueDate": today.isoformat()},
              {"url": "coverage-assertion-id", "valueString": str(uuid.uuid4())}]
    return {"url": COVERAGE_INFORMATION, "extension": parts}


def normalized(resource: dict) -> dict:
    """A copy of a draft order with the sandbox's cardinality slips (object for array) repaired."""
    updated = dict(resource)
    for key in ("category", "reasonCode", "reasonReference", "dosageInstruction"):
        if isinstance(updated.get(key), dict):
            updated[key] = [updated[key]]
    return updated


def with_extension(resource: dict, ext: dict) -> dict:
    """A copy of the draft order carrying ``ext`` (replacing an earlier coverage-information)."""
    updated = normalized(resource)
    kept = [e for e in resource.get("extension") or []
            if not (isinstance(e, dict) and e.get("url") == COVERAGE_INFORMATION)]
    updated["extension"] = kept + [ext]
    return updated


def active_coverage(coverages: list[dict]) -> str | None:
    """Reference of the first active Coverage in the record."""
    for coverage in coverages:
        if coverage.get("status", "active") == "active" and isinstance(coverage.get("id"), str):
            return f"Coverage/{coverage['id']}"
    return None
