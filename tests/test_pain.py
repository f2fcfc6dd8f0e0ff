"""Pain origin (pump spec §f.2): order reasons first, then active Conditions."""

from __future__ import annotations

import pytest

from cdshooks.facts.calculators import pain
from cdshooks.fhir.codes import CodeSet
from cdshooks.fhir.read import ICD10CM

SETS = pain.PainCodeSets(
    CodeSet.of(["icd10cm|G89.3"]),
    CodeSet.of(["icd10cm|M96.1", "icd10cm|G90.5-", "icd10cm|G56.4-", "icd10cm|G57.7-"]),
    CodeSet.of(["icd10cm|G89.21", "icd10cm|G89.22", "icd10cm|G89.28", "icd10cm|G89.29", "icd10cm|G89.4"]),
    CodeSet.of(["icd10cm|C00–C96"]),
)


def icd(*codes):
    return [(ICD10CM, c.replace(".", "")) for c in codes]


@pytest.mark.parametrize("reasons, conditions, origin", [
    (icd("G89.3"), icd("M96.1"), "malignant"),              # order reason decides first
    (icd("M96.1"), icd("G89.3"), "non-malignant"),
    (icd("G89.3", "M96.1"), [], "unknown"),                 # both in the reasons: stop
    ([], icd("G90.50"), "non-malignant"),
    ([], icd("G89.3", "G57.70"), "unknown"),
    (icd("G89.4"), [], "non-malignant"),                    # neutral chronic pain, no cancer
    (icd("G89.4"), icd("C34.90"), "unknown"),               # neutral pain with active cancer
    ([], icd("G89.4", "C7A.00"), "unknown"),                # C7A is inside C00–C96
    ([], [], "unknown"),
])
def test_pain_origin(reasons, conditions, origin):
    assert pain.pain_origin(reasons, conditions, SETS)[0] == origin
