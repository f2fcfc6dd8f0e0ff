"""Oncology labs (colony-stimulating-factors f.1, f.2): values in the units the policy's thresholds
use, on the spec's worked values."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from cdshooks.facts.calculators.oncology import labs
from cdshooks.facts.calculators.oncology import readings
from cdshooks.facts.facts import Fact
from cdshooks.facts.facts import Item

ROOT = Path(__file__).resolve().parents[1]
FACTS = yaml.safe_load((ROOT / "mappings" / "oncology.yaml").read_text(encoding="utf-8"))["facts"]
LOCAL = "http://example.org/fhir/CodeSystem/cds-policy-facts"
T = dt.date(2025, 6, 15)


def quantity(value, unit):
    return {"valueQuantity": {"value": value, "unit": unit, "code": unit}}


# ------------------------------------------------------------------------ F-NEUT units
@pytest.mark.parametrize("value, unit, per_ul", [
    (1.2, "10*3/uL", 1200), (1.8, "10*9/L", 1800), (900, "/uL", 900), (2.1, "K/uL", 2100),
    (450, "{cells}/uL", 450), (700, "10*6/L", 700), (45, "%", None), (3, None, None), (3, "g/dL", None),
])
def test_anc_in_cells_per_microlitre(value, unit, per_ul):
    result = readings.convert((value, unit), labs.ANC_PER_UL)
    assert result == pytest.approx(per_ul) if per_ul is not None else result is None


# ------------------------------------------------------------------------------ F-ECOG
ANSWERS = {str(k): v for k, v in FACTS["labs.ecog"]["params"]["answers"].items()}


@pytest.mark.parametrize("resource, score", [
    ({"valueCodeableConcept": {"coding": [{"system": "http://loinc.org", "code": "LA9625-0"}]}}, 3),
    ({"valueInteger": 1}, 1),
    (quantity(4, "{score}"), 4),
    ({"valueInteger": 7}, None),                      # not an ECOG grade
    ({"valueInteger": 2.5}, None),
    ({"valueString": "three"}, None),
])
def test_ecog_score(resource, score):
    assert labs.ecog_score(resource, ANSWERS) == score


# ----------------------------------------------------------------------------- F-LIVER
# The thresholds (bilirubin ≥ 1.0 mg/dL, an enzyme ≥ 2 × ULN) are the policy's; the facts are the
# latest values in the threshold's unit, each enzyme as a multiple of its own upper limit.
def observations(*dated):
    items = tuple(Item(r, "Observation", when, None, "1920-8", "", None) for r, when in dated)
    return Fact("known", items)


def enzyme(value, high=None):
    ranges = {"referenceRange": [{"high": {"value": high, "unit": "U/L", "code": "U/L"}}]} if high else {}
    return {"resourceType": "Observation", **quantity(value, "U/L"), **ranges}


def ctx_of(facts):
    return SimpleNamespace(fact=lambda name, at: facts[name])


def test_bilirubin_in_micromoles_is_read_in_mg_per_dl():
    bilirubin = {"resourceType": "Observation", **quantity(15, "umol/L")}
    facts = {"o": observations((bilirubin, T))}
    result = labs.latest_lab(ctx_of(facts), T, {"observations": "o"}, {"lab": "bilirubin"})
    assert result.value == pytest.approx(0.877, abs=1e-3)             # below the policy's 1.0
    assert result.evidence[0].value == "bilirubin 0.88 mg/dL (15 umol/L)"


@pytest.mark.parametrize("value, high, times", [(80, 40, 2.0), (79.9, 40, 1.9975), (35, 40, 0.875)])
def test_enzymes_are_multiples_of_their_upper_limit_of_normal(value, high, times):
    result = labs.times_upper_limit(ctx_of({"o": observations((enzyme(value, high), T))}), T,
                                   {"observations": "o"}, {"label": "AST"})
    assert result.value == pytest.approx(times)


def test_an_enzyme_without_an_upper_limit_is_evidence_without_a_value():
    result = labs.times_upper_limit(ctx_of({"o": observations((enzyme(95), T))}), T, {"observations": "o"},
                                   {"label": "AST"})
    assert result.known and result.value is None and "no upper limit of normal" in result.evidence[0].value


def test_the_upper_limit_is_the_chosen_readings_own_even_when_observations_have_no_id():
    newest_first = observations((enzyme(100, 40), T), (enzyme(100, 100), T - dt.timedelta(days=10)))
    result = labs.times_upper_limit(ctx_of({"o": newest_first}), T, {"observations": "o"}, {"label": "AST"})
    assert result.value == 2.5      # AST 100 against its own ULN of 40 (not the older reading's 100)


# ----------------------------------------------------------------------------- F-RENAL
def test_cockcroft_gault_spec_examples():
    assert labs.cockcroft_gault(70, 60, 1.2, "female") == pytest.approx(41.3, abs=0.05)
    assert labs.cockcroft_gault(50, 80, 1.0, "male") == pytest.approx(100)
    assert readings.convert((106, "umol/L"), labs.CREATININE_MG_DL) == pytest.approx(1.20, abs=0.005)
    assert labs.cockcroft_gault(70, 60, 1.2, "unknown") is None
    assert labs.cockcroft_gault(70, 60, 0, "female") is None


def test_weight_and_clearance_units():
    assert readings.convert((132.277, "[lb_av]"), labs.WEIGHT_KG) == pytest.approx(60, abs=0.01)
    assert readings.convert((55, "mL/min/{1.73_m2}"), labs.CRCL_ML_MIN) == 55   # normalised taken as is
    assert readings.convert((55, "mL/s"), labs.CRCL_ML_MIN) is None


# ------------------------------------------------------------------------------ F-NUTR
def test_nutrition_spec_examples():
    assert readings.convert((34, "g/L"), labs.ALBUMIN_G_DL) == pytest.approx(3.4)           # ≤ 3.5 → met
    assert labs.body_mass_index(50, readings.convert((170, "cm"), labs.HEIGHT_M)) == pytest.approx(17.30, abs=0.01)
    assert labs.body_mass_index(70, readings.convert((65, "[in_i]"), labs.HEIGHT_M)) == pytest.approx(25.6, abs=0.1)
    assert labs.body_mass_index(70, 0) is None


def test_a_recorded_bmi_comes_before_weight_and_height():
    def reading(value, unit):
        return observations(({"resourceType": "Observation", **quantity(value, unit)}, T))
    facts = {"bmi": reading(22, "kg/m2"), "weight": reading(50, "kg"), "height": reading(170, "cm")}
    assert labs.bmi(ctx_of(facts), T, {k: k for k in facts}, {}).value == 22
    facts["bmi"] = Fact("unknown")
    assert labs.bmi(ctx_of(facts), T, {k: k for k in facts}, {}).value == pytest.approx(17.30, abs=0.01)


# ------------------------------------------------------------------- FN risk category (f.1)
@pytest.mark.parametrize("resource, category", [
    ({"valueCodeableConcept": {"coding": [{"system": LOCAL, "code": "intermediate"}]}}, "intermediate"),
    ({"valueCodeableConcept": {"coding": [{"system": "http://other", "code": "high"}]}}, None),
    (quantity(15, "%"), "intermediate"), (quantity(20, "%"), "high"), (quantity(9.9, "%"), "low"),
    (quantity(10, "%"), "intermediate"), (quantity(15, "mg"), None), (quantity("15", "%"), None),
])
def test_risk_category_from_an_observation(resource, category):
    assert labs.risk_category(resource, LOCAL) == category


def test_risk_category_from_documentation():
    assert labs.category_from_answers({"intermediate": True, "high": False})[0] == "intermediate"
    assert labs.category_from_answers({"intermediate": True, "high": True}) == (
        None, "documentation names several risk categories")
    assert labs.category_from_answers({"low": False})[0] is None


# ----------------------------------------------------------------- malformed FHIR
@pytest.mark.parametrize("resource", [
    {"valueQuantity": "junk"}, {"valueQuantity": {"value": "1.2", "code": "10*3/uL"}},
    {"valueQuantity": {"value": float("nan"), "code": "%"}}, {"valueInteger": True},
    {"valueCodeableConcept": "junk"}, {},
])
def test_junk_values_read_as_nothing(resource):
    assert readings.quantity(resource) is None
    assert labs.risk_category(resource, LOCAL) is None
    assert labs.ecog_score(resource, ANSWERS) is None
