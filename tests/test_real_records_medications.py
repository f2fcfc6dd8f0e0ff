"""Third-party patient records (../shared/real-records) through the service: their medications.

For every record with opioid orders, an intrathecal pump trial (CPT 62322 with an intrathecal
Infumorph order) is sent through order-sign and order-select, and the wean criterion I.A.2.g is
checked against what a clinician reads off the record: which opioids are on record in the
180-day look-back, their MME/day (CDC 2022), and whether the product was recognised from its
name.  The expectations below were written by reading the records' MedicationRequests, not by
running the service.  For the chemotherapy records a filgrastim order (an RxNorm product the
drug list does not code) must be recognised as filgrastim (not "Neupogen") with no earlier G-CSF.
The records are read from ../shared and never copied into the project; without them this skips.
"""

from __future__ import annotations

import json
import os
import re
import uuid
from pathlib import Path

import pytest

from cdshooks import registry
from cdshooks.facts.calculators.oncology.products import identify as identify_csf
from cdshooks.facts.calculators.opioids.dose import opioid_ingredients
from cdshooks.facts.calculators.opioids.tables import load_mme_tables
from cdshooks.facts.calculators.orders import order_concepts
from cdshooks.fhir import medications
from cdshooks.fhir.record import Slot
from cdshooks.fhir.record import build
from conftest import ROOT
from conftest import make_app
from conftest import mapped_csf_products

RECORDS = Path(os.environ.get("CDSHOOKS_SHARED_DIR") or ROOT.parent / "shared") / "real-records"
pytestmark = pytest.mark.skipif(not RECORDS.is_dir(), reason="../shared/real-records is not beside the project")

RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
SIGN, SELECT = "/cds-services/medical-policy-order-sign", "/cds-services/medical-policy-order-select"

# record -> (as-of date, I.A.2.g result, [(opioid, MME/day or None, identified from its name)] in the look-back)
# Synthea writes most opioid orders without dosageInstruction: those are recognised but have no dose.
OPIOIDS = {
    "Carlton_Ledner.json": ("1992-02-01", "unknown", [("hydrocodone", None, True)]),        # Vicodin 5/300, no dosage
    "Clorinda_Wilkinson.json": ("2015-09-04", "met", [("hydrocodone", 30, False)]),         # 7.5/325 q6h, stopped
    "Devin_Bailey.json": ("2018-09-25", "met", [("hydrocodone", 30, False)]),               # 7.5/325 q6h, stopped
    "Evelyn_McCullough.json": ("1935-03-31", "not-met", [("oxycodone", 30, False)]),        # 5/325 q6h, active
    "Fletcher_Hyatt.json": ("1993-11-24", "unknown", [("oxycodone", None, False)] * 3),    # ER 15, 5/325, ER 15
    "Gilberto_Orosco.json": ("1967-09-01", "unknown", [("hydrocodone", None, False)]),      # 856980, active, no dosage
    "Hallie_Hoeger.json": ("2012-04-12", "unknown", [("meperidine", None, False)]),         # no CDC 2022 factor
    "Jacob_King.json": ("1998-04-11", "unknown",
                        [("hydrocodone", None, True), ("hydrocodone", None, True), ("oxycodone", None, False)]),
    "Rick_Prohaska.json": ("1992-12-10", "unknown",
                           [("oxycodone", None, False), ("hydrocodone", None, True),
                            ("hydrocodone", None, True), ("oxycodone", None, False)]),
    "Vito_Feeney.json": ("1979-11-05", "not-met", [("oxycodone", 30, False)]),              # 5/325 q6h since 1923
}
CHEMO = ["Wendell_Lesch.json", "Austin_Franecki.json", "Bambi_Murray.json", "Gilbert_Wunsch.json",
         "Sherman_McGlynn.json", "Thanh_Mosciski.json", "Ali_Herman.json", "mcode_patient01.json"]
_OPIOID_WORDS = re.compile(r"oxycodone|hydrocodone|morphine|fentanyl|meperidine|tramadol|codeine|methadone|"
                           r"hydromorphone|buprenorphine|tapentadol|oxymorphone", re.IGNORECASE)


CSF_PRODUCTS = mapped_csf_products()


def resources(name: str) -> list[dict]:
    document = json.loads((RECORDS / name).read_text(encoding="utf-8"))
    return [e["resource"] for e in document.get("entry", []) if isinstance(e, dict) and "resource" in e]


def record_of(items: list[dict]):
    return build({"all": Slot("data", {"resourceType": "Bundle", "entry": [{"resource": r} for r in items]})},
                 {"all": "Bundle"}, ())


def prefetch_for(app, items: list[dict]) -> tuple[str, dict]:
    """Every advertised key filled from the record, as a FHIR server's searches would."""
    patient = next(r for r in items if r["resourceType"] == "Patient")
    with app.app_context():
        templates = registry.get().templates
    prefetch = {}
    for template in templates:
        if template.key == "patient":
            prefetch["patient"] = patient
            continue
        types = {template.resource_type} | (
            {"Medication"} if template.resource_type.startswith("Medication") else set())
        found = [r for r in items if r["resourceType"] in types]
        prefetch[template.key] = ({"resourceType": "Bundle", "type": "searchset",
                                   "entry": [{"resource": r} for r in found]}
                                  if found else None)
    return patient["id"], prefetch


def call(app, path: str, patient_id: str, prefetch: dict, orders: list[dict]) -> dict:
    hook = "order-select" if path == SELECT else "order-sign"
    context = {"userId": "Practitioner/pr-1", "patientId": patient_id,
               "draftOrders": {"resourceType": "Bundle", "type": "collection",
                               "entry": [{"resource": o} for o in orders]}}
    if hook == "order-select":
        context["selections"] = [f"{o['resourceType']}/{o['id']}" for o in orders]
    body = {"hook": hook, "hookInstance": str(uuid.uuid4()), "context": context, "prefetch": prefetch}
    response = app.test_client().post(path, json=body)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def pump_trial(patient_id: str) -> list[dict]:
    subject = {"reference": f"Patient/{patient_id}"}
    return [
        {"resourceType": "ServiceRequest", "id": "sr-it-trial", "status": "draft", "intent": "order",
         "subject": subject, "code": {"coding": [{"system": "http://www.ama-assn.org/go/cpt", "code": "62322"}]}},
        {"resourceType": "MedicationRequest", "id": "mr-it-morphine", "status": "draft", "intent": "order",
         "subject": subject,
         "medicationCodeableConcept": {"coding": [{"system": RXNORM, "code": "892652"}]},
         "dosageInstruction": [{"route": {"coding": [{"system": "http://snomed.info/sct", "code": "72607000"}]}}]},
    ]


def criterion(body: dict, policy_title: str, criterion_id: str) -> dict:
    for card in body["cards"]:
        evaluation = card.get("extension", {}).get("cdshooks.evaluation")
        if evaluation and card["summary"].startswith(policy_title):
            return next(c for c in evaluation["criteria"] if c["id"] == criterion_id)
    raise AssertionError(f"no {policy_title} card in {[c['summary'] for c in body['cards']]}")


def as_read(evidence: dict) -> tuple[str, float | None, bool]:
    """('oxycodone', 30.0, False) from 'oxycodone 5 mg × 4/day × 1.5 = 30'."""
    value = evidence["value"]
    mme = re.search(r"= (\d+(?:\.\d+)?)$", value)
    return (re.match(r"[a-z]+", value).group(0), float(mme.group(1)) if mme else None,
            "identified from its name" in value)


@pytest.mark.parametrize("name", sorted(OPIOIDS))
def test_pump_trial_reads_the_opioids_and_their_mme(name, tmp_path):
    today, result, opioids = OPIOIDS[name]
    app = make_app(tmp_path, TODAY=today)
    patient_id, prefetch = prefetch_for(app, resources(name))
    for path in (SIGN, SELECT):
        wean = criterion(call(app, path, patient_id, prefetch, pump_trial(patient_id)), "IT pump trial", "I.A.2.g")
        assert wean["result"] == result, wean
        seen = sorted(as_read(e) for e in wean.get("evidence", ()))
        assert seen == sorted((drug, None if mme is None else float(mme), by_name) for drug, mme, by_name in opioids)


def test_every_opioid_order_in_the_corpus_is_recognised():
    """All MedicationRequests/Statements naming an opioid are recognised (1 of 42 before D9: meperidine)."""
    tables = load_mme_tables()
    named = recognised = 0
    for path in sorted(RECORDS.glob("*.json")):
        for resource in resources(path.name):
            if resource["resourceType"] in medications.HISTORY_TYPES and \
                    _OPIOID_WORDS.search(json.dumps(resource.get("medicationCodeableConcept"))):
                named += 1
                recognised += bool(opioid_ingredients(resource, lambda _: None, tables))
    assert named >= 42 and recognised == named


@pytest.mark.parametrize("name", CHEMO)
def test_a_filgrastim_order_is_named_by_its_ingredient_and_no_earlier_gcsf_is_on_record(name, tmp_path):
    app = make_app(tmp_path)
    items = resources(name)
    patient_id, prefetch = prefetch_for(app, items)
    order = {"resourceType": "MedicationRequest", "id": "mr-csf", "status": "draft", "intent": "order",
             "subject": {"reference": f"Patient/{patient_id}"},
             "medicationCodeableConcept": {"coding": [{"system": RXNORM, "code": "1649944",
                                                       "display": "1 ML filgrastim 0.3 MG/ML Injection"}]}}
    body = call(app, SIGN, patient_id, prefetch, [order])
    product = criterion(body, "Colony-stimulating factor", "A.d.i.prod")
    assert product["result"] == "met"
    assert product["evidence"][0]["value"] == \
        "identified from its name '1 ML filgrastim 0.3 MG/ML Injection' → filgrastim, family FIL"
    assert "Neupogen" not in json.dumps(body)
    # The record's own medication history (orders and statements) holds no G-CSF.
    record = record_of(items)
    history = medications.history(record, drafts=False)
    assert history, "every chemotherapy record has medications on record"
    assert [r for r, _ in history if identify_csf(order_concepts(r, record), CSF_PRODUCTS)] == []


def test_the_mcode_patients_medication_statement_is_history_but_neither_opioid_nor_gcsf():
    record = record_of(resources("mcode_patient01.json"))
    (statement, draft), = medications.history(record)
    assert statement["resourceType"] == "MedicationStatement" and not draft
    assert statement["status"] == "stopped"
    assert statement["dosageInstruction"][0]["timing"]["repeat"]["boundsPeriod"] == {"start": "2019-04-01"}
