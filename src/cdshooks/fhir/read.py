"""Tolerant readers of FHIR JSON: how every module reads arrays, objects, numbers and codings.

Clients send what sandboxes send: a lone object where an array belongs, a string where a number
belongs, a code under an aliased system URI.  A reader answers an odd shape with an empty value
(``[]``, ``{}``, ``None``) instead of raising, so no request data can make a call fail.
"""

from __future__ import annotations

import math
from typing import Any

ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"
HCPCS = "https://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets"
# Other URIs in use for a system we know, read as that system.  The Da Vinci CRD test kit (and
# CMS Blue Button data) write HCPCS codes with the Blue Button code-system URI.
SYSTEM_ALIASES = {"https://bluebutton.cms.gov/resources/codesystem/hcpcs": HCPCS}

# The CodeableConcept that says what a resource *is*, by resource type (types not listed have none
# the record indexes; a select fact on another type reads ``code``).
MAIN_CODE = {
    "Condition": "code",
    "Observation": "code",
    "Procedure": "code",
    "ServiceRequest": "code",
    "DiagnosticReport": "code",
    "DeviceRequest": "codeCodeableConcept",
    "MedicationRequest": "medicationCodeableConcept",
    "MedicationStatement": "medicationCodeableConcept",
    "Medication": "code",
}


def main_code_element(resource_type) -> str:
    """The element holding what a resource of this type is (``code`` for types not listed)."""
    return MAIN_CODE.get(resource_type, "code")


def as_list(value) -> list:
    """Read an element that should be an array but may arrive as one object (sandbox shapes)."""
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def objects(value) -> list[dict]:
    """The objects of an array (or of a lone object); anything else in it is skipped."""
    return [item for item in as_list(value) if isinstance(item, dict)]


def as_dict(value) -> dict:
    """Read a FHIR object; anything else counts as empty."""
    return value if isinstance(value, dict) else {}


def first(value) -> dict:
    """Element [0] of an array (or the lone object) if it is an object, else empty."""
    items = as_list(value)
    return items[0] if items and isinstance(items[0], dict) else {}


def text(value) -> str | None:
    """A string element, or None for any other shape (lists are unhashable)."""
    return value if isinstance(value, str) else None


def number(value) -> int | float | None:
    """A finite JSON number as written (int or float); strings and booleans do not count."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        finite = math.isfinite(value)
    except OverflowError:  # JSON integers have no size limit
        return None
    return value if finite else None


def positive(value) -> float | None:
    """A positive finite JSON number, as a float; strings and booleans do not count."""
    if number(value) is None:
        return None
    try:
        as_float = float(value)
    except OverflowError:
        return None
    return as_float if as_float > 0 else None


def get_path(resource, path: tuple) -> Any:
    """The value at ``path``: keys of objects; an int reads that element of an array (a lone object is element 0)."""
    value = resource
    for key in path:
        if isinstance(key, int):
            items = as_list(value)
            value = items[key] if key < len(items) else None
        elif isinstance(value, dict):
            value = value.get(key)
        else:
            return None
    return value


def canonical_system(system):
    """The system URI we match on: ``system`` itself unless it is a known alias."""
    return SYSTEM_ALIASES.get(system, system)


def normalize_code(system: str, code: str) -> str:
    """The comparison form of a code (D1: ICD-10-CM without dots, case-insensitive)."""
    if system == ICD10CM:
        return code.replace(".", "").upper().strip()
    return code.strip()


def codings(concept) -> list[tuple[str, str]]:
    """``(system, normalized code)`` pairs of a CodeableConcept (or a list of them); junk ignored."""
    # Hot path (every resource is indexed by it): exact type checks, no helper calls.
    if concept is None:
        return []
    pairs = []
    for cc in concept if type(concept) is list else (concept,):
        coding = cc.get("coding") if type(cc) is dict else None
        if coding is None:
            continue
        for item in coding if type(coding) is list else (coding,):
            if type(item) is dict:
                system, code = item.get("system"), item.get("code")
                if type(system) is str and type(code) is str and code.strip():
                    system = SYSTEM_ALIASES.get(system, system)
                    pairs.append((system, normalize_code(system, code)))
    return pairs


def codes_in(concept, system: str | None) -> list[str]:
    """Codes (stripped, as written) of a CodeableConcept's codings in one system; None: codings without one."""
    return [c["code"].strip() for c in objects(as_dict(concept).get("coding"))
            if canonical_system(c.get("system")) == system and isinstance(c.get("code"), str)]


def status_code(concept) -> str | None:
    """The first code of a status CodeableConcept (clinicalStatus / verificationStatus)."""
    for cc in as_list(concept):
        for coding in as_list(cc.get("coding") if isinstance(cc, dict) else None):
            if isinstance(coding, dict) and isinstance(coding.get("code"), str):
                return coding["code"]
    return None
