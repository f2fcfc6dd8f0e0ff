"""Medication history (D10) and medications identified by ingredient from their names (D9)."""

from __future__ import annotations

import datetime as dt
import json
from types import MappingProxyType

import pytest
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from cdshooks.facts.calculators import opioid_products
from cdshooks.facts.calculators.mme import assess_wean
from cdshooks.facts.calculators.mme import daily_mme
from cdshooks.facts.calculators.mme import load_mme_tables
from cdshooks.facts.calculators.mme import opioid_ingredients
from cdshooks.facts.facts import FactContext
from cdshooks.facts.loader import _compile_select
from cdshooks.facts.model import FactMapping
from cdshooks.fhir import medications
from cdshooks.fhir.codes import CodeSet
from cdshooks.fhir.record import Slot
from cdshooks.fhir.record import build
from cdshooks.fhir.valuesets import ValueSet
from cdshooks.fhir.valuesets import ValueSets
from conftest import make_app

RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
NDC = "http://hl7.org/fhir/sid/ndc"
TABLES = load_mme_tables()
R = dt.date(2025, 6, 15)


def no_resolve(_request):
    return None


def coded(code=None, display=None, system=RXNORM, text=None):
    coding = {k: v for k, v in (("system", system), ("code", code), ("display", display)) if v is not None}
    concept = {"coding": [coding]}
    if text:
        concept["text"] = text
    return concept


def q6h(value=1, unit="{tbl}"):
    return {"timing": {"repeat": {"frequency": 1, "period": 6, "periodUnit": "h"}},
            "doseAndRate": [{"doseQuantity": {"value": value, "unit": unit, "code": unit}}]}


def request(rid, concept, *dosages, status="active", authored="2025-06-01"):
    return {"resourceType": "MedicationRequest", "id": rid, "status": status, "intent": "order",
            "authoredOn": authored, "medicationCodeableConcept": concept, "dosageInstruction": list(dosages)}


def statement(sid, concept, *dosages, status="active", effective=None, **extra):
    resource = {"resourceType": "MedicationStatement", "id": sid, "status": status,
                "medicationCodeableConcept": concept, "dosage": list(dosages), **extra}
    if isinstance(effective, tuple):
        resource["effectivePeriod"] = {k: v for k, v in zip(("start", "end"), effective) if v}
    elif effective:
        resource["effectiveDateTime"] = effective
    return resource


def record_of(*resources):
    bundle = {"resourceType": "Bundle", "entry": [{"resource": r} for r in resources]}
    return build({"all": Slot("data", bundle)}, {"all": "Bundle"}, ())


# --- D9: products identified from their names ----------------------------------------------------


def test_hydrocodone_apap_7_5_q6h_from_the_issue_is_30_mme_by_its_code():
    mme, ingredient, arithmetic = daily_mme(request("mr", coded("857005"), q6h()), no_resolve, TABLES)
    assert (mme, ingredient) == (30, "hydrocodone") and "identified from its name" not in arithmetic


@pytest.mark.parametrize("display, expected", [
    # an RxNorm code the table does not list: the normalized name gives ingredient and strength
    ("Acetaminophen 300 MG / HYDROcodone Bitartrate 5 MG [Vicodin]", 20),
    ("Hydrocodone Bitartrate 7.5 MG / Acetaminophen 325 MG Oral Tablet", 30),
    ("oxyCODONE Hydrochloride 10 MG Oral Tablet", 60),
    ("Morphine Sulfate 15 MG Oral Tablet", 60),
    ("Hydromorphone Hydrochloride 2 MG Oral Tablet", 40),
    ("Methadone Hydrochloride 5 MG Oral Tablet", 94),
    ("tramadol hydrochloride 50 MG Oral Tablet", 40),
    ("tapentadol 50 MG Oral Tablet", 80),
    ("Acetaminophen 300 MG / Codeine Phosphate 30 MG Oral Tablet", 18),
    ("Oxymorphone Hydrochloride 5 MG Oral Tablet", 60),
])
def test_unknown_codes_are_read_from_their_rxnorm_names(display, expected):
    mme, _, arithmetic = daily_mme(request("mr", coded("999999999", display), q6h()), no_resolve, TABLES)
    assert mme == pytest.approx(expected)
    assert f"identified from its name '{display}'" in arithmetic


def test_a_fentanyl_patch_named_only_by_its_rxnorm_name_counts_per_microgram_hour():
    patch = {"timing": {"repeat": {"frequency": 1, "period": 72, "periodUnit": "h"}},
             "doseAndRate": [{"doseQuantity": {"value": 1, "unit": "patch"}}]}
    concept = coded("999999998", "72 HR Fentanyl 0.05 MG/HR Transdermal System [Duragesic]")
    assert daily_mme(request("mr", concept, patch), no_resolve, TABLES)[0] == pytest.approx(120)


def test_an_ndc_coding_is_read_by_its_display():
    concept = coded("00000-0000-00", "Oxycodone Hydrochloride 5 MG Oral Tablet", system=NDC)
    assert opioid_ingredients(request("mr", concept), no_resolve, TABLES) == {"7804"}
    assert daily_mme(request("mr", concept, q6h()), no_resolve, TABLES)[0] == 30


def test_a_pharmacy_style_ndc_description_gives_ingredient_and_strength():
    concept = coded("00000-0000-02", "OXYCODONE HCL ER 20 MG TABLET", system=NDC)
    mme, ingredient, arithmetic = daily_mme(request("mr", concept, q6h()), no_resolve, TABLES)
    assert (mme, ingredient) == (120, "oxycodone") and "identified from its name" in arithmetic


def test_a_solution_in_mg_per_ml_dosed_in_ml():
    concept = {"text": "Oxycodone Hydrochloride 1 MG/ML Oral Solution"}
    mme, _, arithmetic = daily_mme(request("mr", concept, q6h(5, "mL")), no_resolve, TABLES)
    assert mme == 30 and "5 mL × 1 mg/mL" in arithmetic


def test_a_name_without_strength_identifies_the_opioid_but_not_the_dose():
    concept = coded("999999997", "Acetaminophen/Hydrocodone")
    mme, ingredient, arithmetic = daily_mme(request("mr", concept, q6h()), no_resolve, TABLES)
    assert (mme, ingredient) == (None, "hydrocodone") and "states no strength" in arithmetic


def test_an_ingredient_code_takes_its_strength_from_the_products_name():
    concept = {"coding": [{"system": RXNORM, "code": "7804", "display": "oxycodone"}],
               "text": "Oxycodone Hydrochloride 5 MG Oral Tablet"}
    assert daily_mme(request("mr", concept, q6h()), no_resolve, TABLES)[0] == 30
    # ...but not from the name of another drug
    other = {"coding": [{"system": RXNORM, "code": "7804"}], "text": "Morphine Sulfate 15 MG Oral Tablet"}
    mme, ingredient, arithmetic = daily_mme(request("mr", other, q6h()), no_resolve, TABLES)
    assert (mme, ingredient) == (None, "oxycodone") and "not convertible to mg" in arithmetic


def test_non_opioid_names_are_not_opioids():
    for display in ("Acetaminophen 325 MG Oral Tablet", "Naloxone Hydrochloride 4 MG/ACTUAT Nasal Spray",
                    "Simvistatin 10 MG"):
        assert opioid_ingredients(request("mr", coded("1", display)), no_resolve, TABLES) == frozenset()


def test_identification_is_memoised_per_medication():
    tables = load_mme_tables()
    concept = coded("999999996", "Morphine Sulfate 30 MG Oral Tablet")
    first = opioid_products.identify(concept, tables)
    assert opioid_products.identify(dict(concept), tables) is first and len(tables.identified) == 1


def test_name_candidates_put_rxnorm_displays_first_then_ndc_then_text():
    concept = {"coding": [{"system": NDC, "display": "B"}, {"system": "urn:local", "display": "C"},
                          {"system": RXNORM, "display": "A"}], "text": "D"}
    assert opioid_products.name_candidates(concept) == ["A", "B", "C", "D"]


# --- D10: MedicationStatement as medication history ----------------------------------------------


def test_a_statement_reads_as_an_order_with_its_effective_period_as_bounds():
    order = medications.as_order(statement("ms", coded("857005"), q6h(), effective=("2025-05-01", "2025-05-31")))
    assert order["resourceType"] == "MedicationStatement" and order["intent"] == "order"
    assert order["dosageInstruction"][0]["timing"]["repeat"]["boundsPeriod"] == {"start": "2025-05-01",
                                                                                 "end": "2025-05-31"}
    assert order["dosageInstruction"][0]["timing"]["repeat"]["frequency"] == 1


@pytest.mark.parametrize("status, counts_as", [
    ("active", "active"), ("completed", "completed"), ("intended", "active"), ("stopped", "stopped"),
    ("on-hold", "on-hold"), ("entered-in-error", None), ("not-taken", None), ("unknown", None), (None, None),
])
def test_statement_statuses(status, counts_as):
    order = medications.as_order(statement("ms", coded("857005"), status=status))
    assert (order["status"] if order else None) == counts_as


def test_statements_that_record_an_order_on_file_are_not_counted_twice():
    mr = request("mr-1", coded("857005"), q6h())
    duplicate = statement("ms-1", coded("857005"), q6h(), basedOn=[{"reference": "MedicationRequest/mr-1"}])
    own = statement("ms-2", coded("857005"), q6h())
    history = medications.history(record_of(mr, duplicate, own))
    assert [r["id"] for r, _ in history] == ["mr-1", "ms-2"]


def test_opioid_wean_counts_statements_as_history():
    # 120 MME/day reported by a statement in April, 30 MME/day ordered now: weaned by 75 %.
    before = statement("ms-oxy", coded("1049683"), {**q6h(2)}, status="completed",
                       effective=("2025-04-01", "2025-04-30"))
    now = request("mr-hc", coded("857005"), q6h(), authored="2025-06-01")
    result = assess_wean(medications.history(record_of(before, now)), no_resolve, R, TABLES)
    assert (result.result, result.baseline, result.current) == ("met", 120, 30)
    assert "MedicationStatement/ms-oxy" in {o.reference for o in result.orders}


def test_an_entered_in_error_statement_is_no_history():
    wrong = statement("ms", coded("1049683"), q6h(2), status="entered-in-error", effective=("2025-04-01", "2025-04-30"))
    assert medications.history(record_of(wrong)) == []


def test_medication_statement_is_a_mapping_source_with_d10_statuses():
    oxycodone = ValueSet("oxycodone-er", "urn:test:oxycodone-er", "Oxycodone ER 10 MG", CodeSet.of(["rxnorm|1049683"]),
                         ("test",), "test", {"rxnorm": 1})
    fact = _compile_select("meds.oxycodone", FactMapping(
        description="oxycodone statements", source="MedicationStatement", codes=["oxycodone-er"], pick="count"),
        ValueSets(MappingProxyType({"oxycodone-er": oxycodone})))
    taken = statement("ms-1", coded("1049683"), effective="2025-06-01")
    not_taken = statement("ms-2", coded("1049683"), status="not-taken", effective="2025-06-01")
    ctx = FactContext({"meds.oxycodone": fact}, record_of(taken, not_taken), R, {})
    value = ctx.fact("meds.oxycodone")
    assert value.value == 1 and value.evidence[0].reference == "MedicationStatement/ms-1"


def test_discovery_advertises_medication_statements(tmp_path):
    app = make_app(tmp_path)
    with app.test_client() as client:
        services = client.get("/cds-services").get_json()["services"]
    for service in services:
        assert service["prefetch"]["medicationStatements"] == \
            "MedicationStatement?patient={{context.patientId}}&_include=MedicationStatement:medication"


def test_a_filgrastim_ingredient_order_is_labelled_filgrastim_not_neupogen(tmp_path):
    # Issue 14 item 5: RxNorm 68442 is the ingredient filgrastim; only 227304 (BN) is Neupogen.
    from conftest import full_prefetch
    from conftest import hook_request
    app = make_app(tmp_path)
    orders = {"filgrastim": ("68442", "filgrastim"), "Neupogen": ("227304", "Neupogen")}
    for label, (code, shown) in orders.items():
        order = {"resourceType": "MedicationRequest", "id": f"mr-{code}", "status": "draft", "intent": "order",
                 "subject": {"reference": "Patient/pat-1"}, "medicationCodeableConcept": coded(code)}
        body = app.test_client().post("/cds-services/medical-policy-order-sign",
                                      json=hook_request(orders=[order], prefetch=full_prefetch(app))).get_json()
        (card,) = body["cards"]
        criteria = {c["id"]: c for c in card["extension"]["cdshooks.evaluation"]["criteria"]}
        assert criteria["A.d.i.prod"]["evidence"][0]["value"] == f"{code} → {shown}" + (
            ", family FIL" if shown == "filgrastim" else " (filgrastim), family FIL")
        assert ("Neupogen" in json.dumps(body)) == (label == "Neupogen")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=10), children, max_size=3),
    max_leaves=20,
)
statement_keys = st.sampled_from(["status", "dosage", "effectivePeriod", "effectiveDateTime", "basedOn",
                                  "derivedFrom", "partOf", "medicationCodeableConcept", "medicationReference", "id"])


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(statement_keys, json_values, max_size=6))
def test_malformed_statements_never_raise(junk):
    resource = {"resourceType": "MedicationStatement", **junk}
    if not isinstance(resource.get("id"), str):
        resource.pop("id", None)
    record = record_of(resource, request("mr", coded("857005"), q6h()))
    history = medications.history(record)
    assess_wean(history, no_resolve, R, TABLES)
    for order, _ in history:
        daily_mme(order, no_resolve, TABLES)
