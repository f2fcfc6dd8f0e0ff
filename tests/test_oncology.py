"""The oncology facts end to end: a malformed record is answered, never raised."""

from __future__ import annotations

import re
from typing import get_args

import pytest

from cdshooks.cli import main as cli
from cdshooks.facts.calculators import oncology
from cdshooks.facts.calculators.oncology import labs
from cdshooks.fhir.read import ICD10CM
from conftest import full_prefetch
from conftest import hook_request
from conftest import make_app

LOCAL = "http://example.org/fhir/CodeSystem/cds-policy-facts"
HCPCS = "https://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets"


def test_a_malformed_oncology_record_is_answered_not_raised(tmp_path):
    app = make_app(tmp_path, TODAY="2025-06-15")
    order = {"resourceType": "MedicationRequest", "id": "mr-1", "status": "draft", "intent": "order",
             "subject": {"reference": "Patient/pat-1"}, "dosageInstruction": "junk",
             "medicationCodeableConcept": {"coding": [{"system": HCPCS, "code": "Q5111"}]}}
    junk = [
        {"resourceType": "Observation", "id": "o1", "status": "final", "effectiveDateTime": "2025-06-10",
         "code": {"coding": [{"system": "http://loinc.org", "code": "751-8"}]}, "valueQuantity": {"value": "many"}},
        {"resourceType": "Observation", "id": "o2", "status": "final", "effectiveDateTime": "2025-06-10",
         "code": {"coding": [{"system": "http://loinc.org", "code": "1920-8"}]},
         "valueQuantity": {"value": 90, "code": "U/L"}, "referenceRange": "junk"},
        {"resourceType": "Observation", "id": "o3", "status": "final", "effectiveDateTime": "not a date",
         "code": {"coding": [{"system": LOCAL, "code": "fn-regimen-risk"}]},
         "valueQuantity": {"value": 15, "code": "%"}},
        {"resourceType": "Observation", "id": "o4", "status": "final", "effectiveDateTime": "2025-06-10",
         "code": {"coding": [{"system": "http://loinc.org", "code": "21908-9"}]}, "valueCodeableConcept": [1, 2]},
        {"resourceType": "Condition", "id": "c1", "code": {"coding": [{"system": ICD10CM, "code": "C"}]},
         "onsetDateTime": 12},
        {"resourceType": "MedicationRequest", "id": "mr-old", "status": 3, "intent": "order",
         "medicationCodeableConcept": {"coding": [{"system": HCPCS, "code": "J2506"}]}, "dosageInstruction": [None]},
    ]
    by_type = {}
    for resource in junk:
        by_type.setdefault(resource["resourceType"], []).append(resource)
    keys = {"Observation": "observations", "Condition": "conditions", "MedicationRequest": "medicationRequests"}
    overrides = {keys[t]: {"resourceType": "Bundle", "type": "searchset", "entry": [{"resource": r} for r in rs]}
                 for t, rs in by_type.items()}
    response = app.test_client().post("/cds-services/medical-policy-order-sign",
                                      json=hook_request(orders=[order], prefetch=full_prefetch(app, **overrides)))
    assert response.status_code == 200
    cards = [c for c in response.get_json()["cards"]
             if c.get("extension", {}).get("cdshooks.evaluation", {}).get("policy", {}).get("id")
             == "colony-stimulating-factors"]
    assert len(cards) == 1 and cards[0]["extension"]["cdshooks.evaluation"]["decision"] == "unknown"


# ----------------------------------------------------------------------- typed params
@pytest.fixture
def tree(shipped_tree):
    return shipped_tree


def break_mapping(tree, old: str, new: str) -> int:
    """Replace ``old`` by ``new`` in mappings/oncology.yaml; the line of ``new``."""
    path = tree / "mappings" / "oncology.yaml"
    text = path.read_text(encoding="utf-8")
    assert text.count(old) >= 1, old
    text = text.replace(old, new, 1)
    path.write_text(text, encoding="utf-8")
    return text[:text.index(new)].count("\n") + 1


def test_every_oncology_calculator_declares_its_params():
    untyped = [c.name for c in oncology.CALCULATORS if c.params is None]
    assert untyped == [] and len(oncology.CALCULATORS) == 17
    assert all(c.params.model_config.get("extra") == "forbid" for c in oncology.CALCULATORS)
    assert set(get_args(labs.LabParams.model_fields["lab"].annotation)) == set(labs.LABS)


@pytest.mark.parametrize("fact, old, new, key, known", [
    ("labs.anc_per_ul", "params: {lab: anc, days: 30}", "params: {lab: anc, dayz: 30}", "dayz", "days"),
    ("csf.prior_febrile_neutropenia", "{before_days: 8, pair_days: 7}", "{before_days: 8, pair_dayz: 7}",
     "pair_dayz", "pair_days"),
    ("csf.preferred_step", "      lookback_days: 365", "      lookback_day: 365", "lookback_day", "lookback_days"),
    ("labs.ast_times_uln", "params: {label: AST}", "params: {lable: AST}", "lable", "label"),
])
def test_a_misspelt_oncology_param_fails_check_at_its_file_and_line(tree, capsys, fact, old, new, key, known):
    line = break_mapping(tree, old, new)
    assert cli.main(["check"]) == 1
    out = capsys.readouterr().out
    assert (f"mappings/oncology.yaml:{line}: facts[{fact}].params.{key}: "
            f"unknown key '{key}' (did you mean '{known}'?)") in out


def test_a_misspelt_key_of_a_drug_list_row_fails_check_at_the_row(tree, capsys):
    line = break_mapping(tree, "codes: [neupogen], brand_codes:", "codes: [neupogen], brand_code:")
    assert cli.main(["check"]) == 1
    out = capsys.readouterr().out
    assert re.search(rf"mappings/oncology\.yaml:{line}: facts\[csf\.product_family\]\.params\.products\S*"
                     rf"\.brand_code: unknown key 'brand_code' \(did you mean 'brand_codes'\?\)", out), out


@pytest.mark.parametrize("fact, old, new, key", [
    ("labs.anc_per_ul", "params: {lab: anc, days: 30}", "params: {lab: anx, days: 30}", "lab"),
    ("csf.started_before_complication", "      statuses: [active, completed, stopped]",
     "      statuses: [active, complete, stopped]", "statuses"),
    ("csf.prior_febrile_neutropenia", "{before_days: 8, pair_days: 7}", "{before_days: soon, pair_days: 7}",
     "before_days"),
])
def test_a_wrong_oncology_param_value_fails_check_at_its_line(tree, capsys, fact, old, new, key):
    line = break_mapping(tree, old, new)
    assert cli.main(["check"]) == 1
    assert re.search(rf"mappings/oncology\.yaml:{line}: facts\[{re.escape(fact)}\]\.params\.{key}\S*: ",
                     capsys.readouterr().out)


def test_a_calculator_without_params_refuses_any(tree, capsys):
    line = break_mapping(tree, "    calculator: csf_bmi\n", "    calculator: csf_bmi\n    params: {days: 90}\n") + 1
    assert cli.main(["check"]) == 1
    assert f"mappings/oncology.yaml:{line}: facts[labs.bmi].params.days: unknown key 'days'" in capsys.readouterr().out
