"""Oncology calculators (colony-stimulating-factors spec §b, f.1, f.2) on the spec's worked values."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from cdshooks.facts.calculators.oncology import labs
from cdshooks.facts.calculators.oncology import products
from cdshooks.facts.calculators.oncology import readings
from cdshooks.facts.calculators.oncology import regimen
from cdshooks.facts.calculators.oncology import risk
from cdshooks.facts.facts import Fact
from cdshooks.facts.facts import Item
from cdshooks.fhir import valuesets
from cdshooks.fhir.record import ICD10CM
from conftest import full_prefetch
from conftest import hook_request
from conftest import make_app
from conftest import mapped_csf_products

ROOT = Path(__file__).resolve().parents[1]
FACTS = yaml.safe_load((ROOT / "mappings" / "oncology.yaml").read_text(encoding="utf-8"))["facts"]
VALUESETS = valuesets.load(ROOT / "valuesets")[0]
PRODUCTS = mapped_csf_products()
LOCAL = "http://example.org/fhir/CodeSystem/cds-policy-facts"
HCPCS = "https://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
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


# --------------------------------------------------------------------------- F-PRIORFN
def dated(ref, day, refuted=False):
    return readings.Dated(ref, dt.date.fromisoformat(day) if day else None, refuted)


CUTOFF = T - dt.timedelta(days=8)


def test_prior_febrile_neutropenia_from_a_neutropenia_and_fever_pair():
    result, records = risk.prior_febrile_neutropenia(
        [], [dated("Condition/d70", "2024-11-02")], [dated("Condition/r5081", "2024-11-03")], CUTOFF, 7)
    assert result == "met" and [r.reference for r in records] == ["Condition/d70", "Condition/r5081"]


@pytest.mark.parametrize("episodes, neutropenia, fever, result", [
    ([dated("c/fn", "2025-01-10")], [], [], "met"),
    ([dated("c/fn", "2025-06-10")], [], [], None),                                  # within 8 days of T
    ([dated("c/fn", None)], [], [], None),                                          # undated
    ([dated("c/fn", "2025-01-10", refuted=True)], [], [], "not-met"),
    ([], [dated("c/d70", "2024-11-02")], [dated("c/r50", "2024-11-12")], None),      # 10 days apart
    ([], [dated("c/d70", "2024-11-02", refuted=True)], [dated("c/r50", "2024-11-03")], None),
])
def test_prior_febrile_neutropenia(episodes, neutropenia, fever, result):
    assert risk.prior_febrile_neutropenia(episodes, neutropenia, fever, CUTOFF, 7)[0] == result


def test_latest_complication_before_the_cutoff():
    records = [dated("c/a", "2025-03-01"), dated("c/b", "2025-05-01"), dated("c/c", "2025-06-12"),
               dated("c/d", "2025-05-20", refuted=True)]
    assert risk.latest_dated(records, CUTOFF).reference == "c/b"


# ------------------------------------------------------------------------------- F-ADV
ADVANCED = re.compile(FACTS["csf.advanced_cancer"]["params"]["advanced"], re.IGNORECASE)
EARLY = re.compile(FACTS["csf.advanced_cancer"]["params"]["early"], re.IGNORECASE)


@pytest.mark.parametrize("text, result", [
    ("IIIA", "not-met"), ("Stage IV", "met"), ("IVB", "met"), ("stage iv", "met"), ("cM1", "met"),
    ("pM1a", "met"), ("M0", "not-met"), ("Stage IIA", "not-met"), ("0is", "not-met"), ("IVD", None),
    ("unknown", None), ("", None),
])
def test_stage_readings(text, result):
    assert risk.stage_result([text], ADVANCED, EARLY) == result


# --------------------------------------------------------------------------- F-CHRONIC
CHRONIC = VALUESETS.codes(FACTS["csf.chronic_conditions"]["codes"])


def counted(*codes):
    normal = [c.replace(".", "") for c in codes if CHRONIC.entry_for(ICD10CM, c.replace(".", ""))]
    return len(risk.icd_categories(normal))


def test_chronic_condition_categories_spec_examples():
    assert counted("E11.9", "I10", "J44.9", "N18.30", "F32.9") == 5
    assert counted("E11.9", "E78.5", "I10") == 3


def test_chronic_conditions_exclude_cancer_pregnancy_symptoms_injuries_and_most_infections():
    assert counted("C50.911", "D05.10", "O30.103", "R50.81", "S32.15XA", "T86.01", "Z21", "A41.9", "B25.0") == 0
    assert counted("B18.2", "B20", "D61.9", "Q76.2") == 4
    assert counted("E11.9", "E11.65", "E11.22") == 1                     # one category counts once


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


# ------------------------------------------------------------------------- products (§b)
def concept(*codings, text=None):
    value = {"coding": [dict(zip(("system", "code", "display"), c)) for c in codings]}
    if text:
        value["text"] = text
    return value


@pytest.mark.parametrize("value, brand, label", [
    (concept((HCPCS, "Q5111")), "Udenyca", "pegfilgrastim-cbqv"),          # HCPCS names the ingredient
    (concept((RXNORM, "1605067")), "Zarxio", "Zarxio"),                    # an RxNorm brand code names the brand
    (concept((RXNORM, "68442")), "Neupogen", "filgrastim"),                # the ingredient code is not Neupogen
    (concept((HCPCS, "J2506"), text="Udenyca"), "Neulasta", "pegfilgrastim"),  # the code wins over a name
    (concept((HCPCS, "J3590", "Unclassified biologics"), text="Ryzneuta 20 mg"), "Ryzneuta", "Ryzneuta"),
    (concept((HCPCS, "J3590", "Unclassified biologics")), None, None),
    (concept(text="filgrastim 480 MCG/0.8 ML injection"), "Neupogen", "filgrastim"),
    (concept(text="tbo-filgrastim 300 mcg"), "Granix", "tbo-filgrastim"),  # not plain filgrastim
    (concept(text="pegfilgrastim-cbqv 6 mg"), "Udenyca", "pegfilgrastim-cbqv"),
    (concept(text="peg-filgrastim"), "Neulasta", "pegfilgrastim"),
    (concept(text="Fynetra"), "Fylnetra", "Fylnetra"),                    # the policy's spelling
    (concept(text="Neulasta Onpro kit"), "Neulasta", "Neulasta"),
    (concept(text="filgrastimab"), None, None),
    # RxNorm products the drug list does not code (codes and names from the nmdp-ig RxNorm
    # mobilizing-agents value set, S4): identified by the ingredient or [Brand] in the name
    (concept((RXNORM, "1649944", "1 ML filgrastim 0.3 MG/ML Injection")), "Neupogen", "filgrastim"),
    (concept((RXNORM, "1605071", "0.5 ML filgrastim-sndz 0.6 MG/ML Prefilled Syringe [Zarxio]")), "Zarxio", "Zarxio"),
    (concept((RXNORM, "727542", "0.6 ML pegfilgrastim 10 MG/ML Prefilled Syringe [Neulasta]")), "Neulasta", "Neulasta"),
    (concept((RXNORM, "1442679", "filgrastim Prefilled Syringe [Granix]")), "Granix", "Granix"),
    (concept((RXNORM, "2101456", "1 ML tbo-filgrastim 0.3 MG/ML Injection")), "Granix", "tbo-filgrastim"),
    (concept((RXNORM, "70167", "lenograstim")), None, None),                  # not on the policy's list
    (concept(text="sargramostim 0.25 MG Injection"), "Leukine", "sargramostim"),
    (concept(("http://hl7.org/fhir/sid/ndc", "00000-0000-00", "Neulasta 6 MG in 0.6 ML Prefilled Syringe")),
     "Neulasta", "Neulasta"),
])
def test_product_identification_and_label(value, brand, label):
    found = products.identify(value, PRODUCTS)
    assert (found.product.brand if found else None) == brand
    assert (found.label if found else None) == label


def test_a_product_read_from_its_name_says_so():
    found = products.identify(concept((RXNORM, "1649944", "1 ML filgrastim 0.3 MG/ML Injection")), PRODUCTS)
    assert found.from_name and found.via == "1 ML filgrastim 0.3 MG/ML Injection"
    assert not products.identify(concept((RXNORM, "68442")), PRODUCTS).from_name


def test_every_product_of_the_policy_has_a_family():
    families = {p.brand: p.family for p in PRODUCTS}
    assert families == {"Neupogen": "FIL", "Zarxio": "FIL", "Nivestym": "FIL", "Releuko": "FIL", "Granix": "TBO",
                        "Leukine": "SAR", "Neulasta": "PEG", "Fulphila": "PEG", "Fylnetra": "PEG", "Nyvepria": "PEG",
                        "Stimufend": "PEG", "Udenyca": "PEG", "Ziextenzo": "PEG", "Rolvedon": "EFL",
                        "Ryzneuta": "EFB"}


def test_order_start_prefers_the_first_dose():
    first_dose = {"timing": {"repeat": {"boundsPeriod": {"start": "2025-04-20"}}}}
    assert regimen.order_start({"dosageInstruction": [first_dose], "authoredOn": "2025-04-18"}) == dt.date(2025, 4, 20)
    assert regimen.order_start({"authoredOn": "2025-04-18"}) == dt.date(2025, 4, 18)
    assert regimen.order_start({"dosageInstruction": "junk"}) is None


# -------------------------------------------------------------------- A.b.c2 and A.e
def taken(brand, start, status="completed"):
    product = next(p for p in PRODUCTS if p.brand == brand)
    return regimen.Taken(f"MedicationRequest/{brand.lower()}", product, dt.date.fromisoformat(start), status)


def test_the_last_csf_start_before_the_complication_counts_only_started_orders():
    """The 21-day window is the policy's (A.b.c2); the fact finds the last start on or before Dc."""
    complication = dt.date(2025, 5, 1)
    statuses = frozenset({"active", "completed", "stopped"})
    orders = [taken("Neulasta", "2025-04-09"), taken("Neulasta", "2025-04-20", "cancelled"),
              taken("Udenyca", "2025-04-10"), taken("Zarxio", "2025-05-02")]
    last = regimen.last_start_before(complication, orders, statuses)
    assert (last.product.brand, last.start) == ("Udenyca", dt.date(2025, 4, 10))    # 21 days before Dc
    assert regimen.last_start_before(complication, orders[1:2] + orders[3:], statuses) is None


def test_preferred_step():
    udenyca = next(p for p in PRODUCTS if p.brand == "Udenyca")
    assert regimen.preferred_step([], udenyca, [], T, 365) == (
        "met", [], "no preferred-product list is configured, so step therapy does not apply")
    assert regimen.preferred_step(["udenyca"], udenyca, [], T, 365)[0] == "met"
    assert regimen.preferred_step(["Q5111"], udenyca, [], T, 365)[0] == "met"
    assert regimen.preferred_step(["FIL"], udenyca, [taken("Zarxio", "2024-12-01")], T, 365)[0] == "met"
    assert regimen.preferred_step(["FIL"], udenyca, [taken("Zarxio", "2024-06-14")], T, 365)[0] == "unknown"
    assert regimen.preferred_step(["Zarxio"], udenyca, [taken("Zarxio", "2025-01-01", "entered-in-error")], T,
                              365)[0] == "unknown"


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
