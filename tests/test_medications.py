"""Medication history (D10): MedicationStatements read as orders, counted once."""

from __future__ import annotations

import json
from types import MappingProxyType

import pytest
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from cdshooks.facts.calculators.opioids.dose import daily_mme
from cdshooks.facts.calculators.opioids.wean import assess_wean
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
from opioid_orders import TABLES
from opioid_orders import R
from opioid_orders import coded
from opioid_orders import no_resolve
from opioid_orders import q6h
from opioid_orders import request


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
