"""Third-party patient records (../shared/real-records) through both hooks, read as a clinician would.

Each record is sent as prefetch with one draft order per policy; the test asserts what a clinician
reads off the record on its as-of date (SOURCES.tsv; for records without one, the day after their
latest dated resource): which cancers, contraindications, labs, pregnancy findings. Skipped when
../shared is not beside the project (CDSHOOKS_SPEC_DIR set by CI makes it required).
"""

from __future__ import annotations

import copy
import csv
import datetime as dt
import json
import os
from dataclasses import dataclass
from dataclasses import field
from functools import lru_cache
from pathlib import Path

import pytest

from cdshooks import registry
from conftest import make_app

ROOT = Path(__file__).resolve().parents[1]
SPEC_DIR = os.environ.get("CDSHOOKS_SPEC_DIR")
RECORDS = (Path(SPEC_DIR).parent if SPEC_DIR else ROOT.parent / "shared") / "real-records"
pytestmark = pytest.mark.skipif(not SPEC_DIR and not RECORDS.is_dir(),
                                reason="../shared/real-records is not beside the project")

CPT, SNOMED = "http://www.ama-assn.org/go/cpt", "http://snomed.info/sct"
POLICY = {"si": "si-joint-fusion-open", "pump": "intrathecal-pain-pump", "cfdna": "prenatal-cfdna-screening",
          "spine": "spinal-surgery-referral", "csf": "colony-stimulating-factors"}


@dataclass(frozen=True)
class Reading:
    """What a clinician reads off the record: ``(policy, criterion) -> result`` or ``(result, evidence text)``."""

    note: str
    expect: dict
    spinal_diagnosis: bool = False   # a spinal diagnosis on record makes a plain referral applicable
    extra: dict = field(default_factory=dict)


NO_CANCER = {("csf", "A.a.i"): "unknown", ("spine", "RF-1"): "not-met"}
NO_CONTRAINDICATION = {("pump", "II.B.2"): "not-met", ("pump", "II.B.3"): "not-met", ("pump", "II.B.4"): "not-met"}
NOT_PREGNANT_NOW = {("cfdna", "MN-1"): "unknown", ("cfdna", "NMN-2"): "not-met"}

READINGS = {
    "Ali_Herman.json": Reading(
        "prostate carcinoma in situ only (not invasive); creatinine 0.9 mg/dL → CrCl ≥ 50; albumin 4.6 g/dL; "
        "pain 1.8/10",
        {**NO_CANCER, ("csf", "A.a.ii.2.g"): ("not-met", "creatinine 0.9"),
         ("csf", "A.a.ii.2.h"): ("not-met", "albumin 4.6"), ("spine", "RF-8"): ("not-met", "1.84688"),
         **NO_CONTRAINDICATION}),
    "Austin_Franecki.json": Reading(
        "non-small cell lung cancer (SNOMED only), stage 1",
        {("csf", "A.a.i"): ("met", "254637007"), ("spine", "RF-1"): "met", ("spine", "RF-2"): "met",
         **NO_CONTRAINDICATION}),
    "Bambi_Murray.json": Reading(
        "malignant tumour of colon, active",
        {("csf", "A.a.i"): ("met", "363406005"), ("spine", "RF-2"): ("met", "Malignant tumor of colon")}),
    "Carlton_Ledner.json": Reading(
        "Alzheimer's disease → pump contraindicated (dementia); no cancer",
        {("pump", "II.B.3"): ("met", "26929004"), ("pump", "II.B.2"): "not-met", **NO_CANCER}),
    "Cary_OHara.json": Reading(
        "chronic pain without cancer (non-malignant origin); chronic paralysis from a spinal-cord lesion; "
        "a drug overdose is not a substance-use disorder",
        {("pump", "I.A.2.dx"): ("met", "82423001"), ("pump", "I.A.1.dx"): "not-met", ("pump", "II.B.2"): "not-met",
         **NO_CANCER}, spinal_diagnosis=True),
    "Clorinda_Wilkinson.json": Reading(
        "Alzheimer's disease; osteoporosis with pathological fractures; no cancer",
        {("pump", "II.B.3"): ("met", "Alzheimer"), **NO_CANCER}),
    "Courtney_Schinner.json": Reading(
        "past pregnancies (all resolved), gout, hypertension: nothing the policies read",
        {**NOT_PREGNANT_NOW, **NO_CANCER, **NO_CONTRAINDICATION}),
    "Devin_Bailey.json": Reading(
        "hypertension, anaemia, forearm fracture: no cancer, no contraindication",
        {**NO_CANCER, **NO_CONTRAINDICATION}),
    "Elvira_Pacheco.json": Reading(
        "pregnant now, no gestational age recorded → viability and 9-week rule cannot be decided; pain 3.1/10",
        {("cfdna", "MN-1"): "unknown", ("cfdna", "MN-3"): "unknown", ("cfdna", "NMN-2"): "not-met",
         ("spine", "RF-8"): ("not-met", "3.113")}),
    "Evelyn_McCullough.json": Reading(
        "a 12-year-old: back pain under 20 is a red flag",
        {("spine", "RF-7"): ("met", "age 12"), **NO_CANCER}),
    "Fletcher_Hyatt.json": Reading(
        "alcoholism (pump contraindication), non-small cell lung cancer; "
        "chronic pain with active cancer → origin unclear",
        {("pump", "II.B.2"): ("met", "7200002"), ("pump", "I.A.2.dx"): "unknown",
         ("csf", "A.a.i"): ("met", "254637007"), ("spine", "RF-1"): "met"}),
    "Gilbert_Wunsch.json": Reading(
        "non-small cell lung cancer",
        {("csf", "A.a.i"): ("met", "Non-small cell lung cancer"), ("spine", "RF-2"): "met", **NO_CONTRAINDICATION}),
    "Gilberto_Orosco.json": Reading(
        "opioid abuse → pump contraindicated",
        {("pump", "II.B.2"): ("met", "5602001"), **NO_CANCER}),
    "Hallie_Hoeger.json": Reading(
        "atrial fibrillation, osteoarthritis: nothing the policies read",
        {**NO_CANCER, **NO_CONTRAINDICATION, **NOT_PREGNANT_NOW}),
    "Jacob_King.json": Reading(
        "chronic pain without cancer",
        {("pump", "I.A.2.dx"): ("met", "Chronic pain"), **NO_CANCER, **NO_CONTRAINDICATION}),
    "Juliette_Padberg.json": Reading(
        "pregnant now, no gestational age recorded",
        {("cfdna", "MN-1"): "unknown", ("cfdna", "MN-3"): "unknown", **NO_CANCER}),
    "Karan_Gerhold.json": Reading(
        "tubal pregnancy 12 weeks ago → this pregnancy is not viable",
        {("cfdna", "MN-1"): ("not-met", "79586000")}),
    "Libbie_Shields.json": Reading(
        "tubal pregnancy last week → not viable",
        {("cfdna", "MN-1"): ("not-met", "Tubal pregnancy")}),
    "Max_Dicki.json": Reading(
        "Alzheimer's disease",
        {("pump", "II.B.3"): ("met", "26929004"), **NO_CANCER}),
    "Meg_Toy.json": Reading(
        "chronic pain without cancer; a drug overdose is not a substance-use disorder",
        {("pump", "I.A.2.dx"): "met", ("pump", "II.B.2"): "not-met", **NO_CANCER}),
    "Nelida_Gislason.json": Reading(
        "tubal pregnancy this year → not viable",
        {("cfdna", "MN-1"): ("not-met", "79586000")}),
    "Neva_Hyatt.json": Reading(
        "pregnant now (no gestational age); chronic paralysis from a spinal-cord lesion",
        {("cfdna", "MN-1"): "unknown", **NO_CANCER}, spinal_diagnosis=True),
    "Rick_Prohaska.json": Reading(
        "chronic pain without cancer; heart failure, stroke",
        {("pump", "I.A.2.dx"): "met", **NO_CANCER, **NO_CONTRAINDICATION}),
    "Sherman_McGlynn.json": Reading(
        "opioid abuse; small cell lung cancer",
        {("pump", "II.B.2"): ("met", "Opioid abuse"), ("csf", "A.a.i"): ("met", "254632001"),
         ("spine", "RF-1"): "met"}),
    "Thanh_Mosciski.json": Reading(
        "colon cancer recorded as resolved (D2: not active, still a previous cancer); "
        "creatinine 3.09 mg/dL → CrCl < 50; albumin 4.8 g/dL",
        {("spine", "RF-1"): ("met", "109838007"), ("spine", "RF-2"): "not-met",
         ("csf", "A.a.ii.2.g"): ("met", "creatinine 3.09"), ("csf", "A.a.ii.2.h"): ("not-met", "albumin 4.8")}),
    "Virginia_Mercado.json": Reading(
        "opioid abuse; age 19",
        {("pump", "II.B.2"): ("met", "5602001"), ("spine", "RF-7"): ("met", "age 19")}),
    "Vito_Feeney.json": Reading(
        "prostate cancer metastatic → malignancy and advanced cancer; BMI 30",
        {("csf", "A.a.i"): ("met", "314994000"), ("csf", "A.a.ii.2.j"): ("met", "Metastasis"),
         ("spine", "RF-1"): "met", ("csf", "A.a.ii.2.h"): ("unknown", "BMI 30.1")}),
    "Wendell_Lesch.json": Reading(
        "overlapping malignant neoplasm of colon, active; bilirubin 1.1 mg/dL → liver dysfunction",
        {("csf", "A.a.i"): ("met", "109838007"), ("csf", "A.a.ii.2.e"): ("met", "bilirubin 1.1")}),
    "davinci_HypoxemiaPatientBundle.json": Reading(
        "left lower lobe infiltrate only",
        {**NO_CANCER, **NO_CONTRAINDICATION}),
    "davinci_ProstheticsPatientData.json": Reading(
        "impaired wheelchair mobility, leg swelling",
        {**NO_CANCER, **NO_CONTRAINDICATION}),
    "mcode_patient01.json": Reading(
        "NSCLC stage IIIC with a brain metastasis → malignancy and advanced cancer (the metastasis decides)",
        {("csf", "A.a.i"): ("met", "254637007"), ("csf", "A.a.ii.2.j"): ("met", "94225005"),
         ("spine", "RF-2"): "met"}),
    "mimic-high.json": Reading("vital signs, WBC and creatinine under MIMIC local codes; no diagnoses",
                               {**NO_CANCER, **NO_CONTRAINDICATION}),
    "mimic-moderate.json": Reading("vital signs and labs only", {**NO_CANCER, **NO_CONTRAINDICATION}),
    "mimic-low.json": Reading("vital signs and labs only", {**NO_CANCER, **NO_CONTRAINDICATION}),
}


@lru_cache(maxsize=None)
def _as_of() -> dict[str, str]:
    text = (RECORDS / "SOURCES.tsv").read_text(encoding="utf-8")
    return {r["file"]: r["suggested as-of date"] for r in csv.DictReader(text.splitlines(), delimiter="\t")}


def load(name: str) -> dict:
    return json.loads((RECORDS / name).read_text(encoding="utf-8"))


def as_of(name: str, record: dict) -> str:
    given = _as_of().get(name, "None")
    if given != "None":
        return given
    dates = [str(e["resource"].get(k))[:10] for e in record["entry"]
             for k in ("effectiveDateTime", "onsetDateTime", "authoredOn", "recordedDate", "issued")
             if e["resource"].get(k)]
    return (dt.date.fromisoformat(max(dates)) + dt.timedelta(days=1)).isoformat()


def orders(patient_id: str) -> list[dict]:
    """One draft order per policy (and a referral that only a spinal diagnosis makes applicable)."""
    subject = {"reference": f"Patient/{patient_id}"}

    def service(rid, code, system=CPT, **extra):
        return {"resourceType": "ServiceRequest", "id": rid, "status": "draft", "intent": "order", "subject": subject,
                "code": {"coding": [{"system": system, "code": code}]}, **extra}

    referral = {"category": [{"coding": [{"system": SNOMED, "code": "3457005"}]}]}
    return [service("rr-si", "27280"), service("rr-pump", "62350"), service("rr-cfdna", "81420"),
            service("rr-spine", "308481009", SNOMED, bodySite=[{"coding": [{"system": SNOMED, "code": "421060004"}]}],
                    **referral),
            service("rr-spine-dx", "308481009", SNOMED, **referral),
            {"resourceType": "MedicationRequest", "id": "rr-csf", "status": "draft", "intent": "order",
             "subject": subject, "medicationCodeableConcept": {"coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm",
                                                       "code": "338036", "display": "pegfilgrastim"}]}}]


def request(app, record: dict, hook: str) -> dict:
    """The record as prefetch: each advertised key gets the record's resources of its type."""
    entries = record["entry"]
    patient = next(e["resource"] for e in entries if e["resource"]["resourceType"] == "Patient")
    with app.app_context():
        templates = registry.get().templates
    prefetch = {t.key: patient if t.resource_type == "Patient" else
                {"resourceType": "Bundle", "type": "searchset",
                 "entry": [e for e in entries if e["resource"]["resourceType"] == t.resource_type]}
                for t in templates}
    drafts = orders(patient["id"])
    context = {"userId": "Practitioner/pr-1", "patientId": patient["id"],
               "draftOrders": {"resourceType": "Bundle", "type": "collection",
                               "entry": [{"resource": o} for o in drafts]}}
    if hook == "order-select":
        context["selections"] = [f"{o['resourceType']}/{o['id']}" for o in drafts]
    return {"hook": hook, "hookInstance": "7c2b9a70-0d8e-4f5e-9d2c-1f3b5a6e8d90", "context": context,
            "prefetch": prefetch}


def evaluations(body: dict) -> dict[tuple[str, str], dict]:
    """``(policy id, order reference) -> cdshooks.evaluation`` of every card."""
    found = {}
    for card in body["cards"]:
        evaluation = card.get("extension", {}).get("cdshooks.evaluation")
        if evaluation:
            found[(evaluation["policy"]["id"], evaluation["order"])] = {**evaluation, "detail": card["detail"]}
    return found


_ORDER = {"si": "ServiceRequest/rr-si", "pump": "ServiceRequest/rr-pump", "cfdna": "ServiceRequest/rr-cfdna",
          "spine": "ServiceRequest/rr-spine", "csf": "MedicationRequest/rr-csf"}


@pytest.mark.parametrize("name", sorted(READINGS))
def test_each_record_reads_as_a_clinician_reads_it(tmp_path, name):
    record, reading = load(name), READINGS[name]
    app = make_app(tmp_path, TODAY=as_of(name, record))
    client = app.test_client()
    answers = {}
    for hook in ("order-select", "order-sign"):
        response = client.post(f"/cds-services/medical-policy-{hook}", json=request(app, record, hook))
        assert response.status_code == 200, (hook, response.get_json())
        answers[hook] = evaluations(response.get_json())
    found = answers["order-sign"]
    for short, policy in POLICY.items():
        assert (policy, _ORDER[short]) in found, f"{name}: no {policy} card"
    assert ((POLICY["spine"], "ServiceRequest/rr-spine-dx") in found) == reading.spinal_diagnosis, reading.note
    failures = []
    for (short, criterion), wanted in reading.expect.items():
        result, text = wanted if isinstance(wanted, tuple) else (wanted, None)
        evaluation = found[(POLICY[short], _ORDER[short])]
        got = next(c for c in evaluation["criteria"] if c["id"] == criterion)
        shown = json.dumps(got.get("evidence", []) + [got.get("note", "")])
        if got["result"] != result or (text and text not in shown):
            failures.append(f"{short} {criterion}: {got['result']} {shown[:300]} (wanted {result} {text or ''})")
    # order-select reads the same record the same way
    assert ({k: v["decision"] for k, v in answers["order-select"].items()}
            == {k: v["decision"] for k, v in found.items()})
    assert not failures, f"{name} ({reading.note}):\n" + "\n".join(failures)


def test_every_record_of_the_corpus_has_a_reading():
    assert sorted(p.name for p in RECORDS.glob("*.json")) == sorted(READINGS)


def test_another_patients_diagnosis_inside_a_real_record_is_left_out_and_counted(tmp_path):
    record = load("Bambi_Murray.json")
    alzheimers = copy.deepcopy(next(e for e in load("Max_Dicki.json")["entry"]
                                    if "26929004" in json.dumps(e["resource"].get("code", {}))))
    alzheimers["resource"]["subject"] = {"reference": "Patient/someone-else"}
    record["entry"].append(alzheimers)
    app = make_app(tmp_path, TODAY=as_of("Bambi_Murray.json", record))
    response = app.test_client().post("/cds-services/medical-policy-order-sign",
                                      json=request(app, record, "order-sign"))
    pump = evaluations(response.get_json())[(POLICY["pump"], _ORDER["pump"])]
    assert next(c for c in pump["criteria"] if c["id"] == "II.B.3")["result"] == "not-met"
    assert "1 resource of another patient was left out (Condition 1)" in pump["detail"]


def test_a_ten_thousand_resource_prefetch_is_accepted_on_default_settings(tmp_path):
    """D12: a long-lived patient's record (10,000 resources, about 10 MB) is ordinary."""
    record = load("Vito_Feeney.json")
    app = make_app(tmp_path, TODAY=as_of("Vito_Feeney.json", record))   # default limits
    with app.app_context():
        read = {t.resource_type for t in registry.get().templates} - {"Patient"}
    entries, patient = record["entry"], next(e for e in record["entry"] if e["resource"]["resourceType"] == "Patient")
    clinical = [e for e in entries if e["resource"]["resourceType"] in read]
    grown = []
    while len(grown) < 10_000 - 1:
        copy_no = len(grown) // len(clinical)
        for entry in clinical[: 10_000 - 1 - len(grown)]:
            resource = {**entry["resource"], "id": f"{entry['resource']['id']}-{copy_no}"}
            grown.append({"fullUrl": f"urn:uuid:{resource['id']}", "resource": resource})
    record["entry"] = [patient] + grown
    body = request(app, record, "order-sign")
    text = json.dumps(body, indent=1)   # as an EHR pretty-prints it: above the old 10 MiB default
    assert sum(len(v.get("entry", [])) for v in body["prefetch"].values() if isinstance(v, dict)) >= 9_999
    assert len(text.encode()) > 10 * 1024 * 1024
    response = app.test_client().post("/cds-services/medical-policy-order-sign", data=text,
                                      content_type="application/json")
    assert response.status_code == 200, response.get_json()
    assert len(evaluations(response.get_json())) >= 5


@pytest.mark.parametrize("name, today, value", [("mimic-high.json", "2188-08-07", 2.0),
                                                ("Thanh_Mosciski.json", None, 3.09)])
def test_creatinine_is_read_under_loinc_in_blood_and_under_a_local_lab_code(tmp_path, name, today, value):
    """Synthea records creatinine as 38483-4 (in blood), MIMIC as its local lab item 50912 (read on
    the day after its lab draw: the record's vital signs run four years later)."""
    from cdshooks import pipeline

    record = load(name)
    app = make_app(tmp_path, TODAY=today or as_of(name, record))
    from cdshooks import settings
    with app.app_context():
        loaded, config = registry.get(), settings.get()
    service = loaded.services["medical-policy-order-sign"]
    call = pipeline.offline_call(service, request(app, record, "order-sign"), config)
    readings = pipeline.answer(loaded, config, call).facts.fact("csf.creatinine_observations").value
    assert readings, f"{name}: no creatinine read"
    codes = {i.code for i in readings}
    assert codes <= {"38483-4", "50912"}
    assert any(round(i.resource["valueQuantity"]["value"], 2) == value for i in readings)
