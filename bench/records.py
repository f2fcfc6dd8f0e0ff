"""Deterministic, realistic hook requests of a given record size (seeded) for the benchmarks.

A record has a Patient, a Coverage, Conditions, Observations (labs, vitals, gestational age),
MedicationRequests (opioids with real dosage, and others), Procedures and ServiceRequests; the
draft orders trigger every loaded policy: an intrathecal-pump trial with an intrathecal opioid,
a cfDNA screen, an open SI-joint fusion and a spinal-surgery referral (and, once loaded, a CSF).
"""

from __future__ import annotations

import random
import uuid

CPT = "http://www.ama-assn.org/go/cpt"
ICD = "http://hl7.org/fhir/sid/icd-10-cm"
LOINC = "http://loinc.org"
RX = "http://www.nlm.nih.gov/research/umls/rxnorm"
SCT = "http://snomed.info/sct"
UCUM = "http://unitsofmeasure.org"
PATIENT = "pat-bench"

CONDITIONS = [("M96.1", "Postlaminectomy syndrome"), ("G89.4", "Chronic pain syndrome"),
              ("M51.26", "Other intervertebral disc displacement, lumbar region"),
              ("I10", "Essential (primary) hypertension"), ("E11.9", "Type 2 diabetes mellitus without complications"),
              ("J45.909", "Unspecified asthma, uncomplicated"), ("F11.21", "Opioid dependence, in remission"),
              ("Z95.0", "Presence of cardiac pacemaker"), ("O30.001", "Twin pregnancy, first trimester")]
LABS = [("751-8", "Neutrophils [#/volume] in Blood", "10*3/uL", 1.2, 9.0),
        ("1975-2", "Bilirubin.total", "mg/dL", 0.2, 2.0),
        ("1751-7", "Albumin", "g/dL", 2.5, 5.0), ("8867-4", "Heart rate", "/min", 50, 110),
        ("8480-6", "Systolic blood pressure", "mm[Hg]", 95, 170)]
OPIOIDS = [("1049563", 12), ("856999", 6), ("1049502", 12), ("891885", 12), ("897702", 6), ("835603", 6),
           ("1049683", 6)]
OTHER_DRUGS = ["197361", "310965", "314076", "860975"]
PROCEDURES = [("62322", "epidural injection"), ("99213", "office visit"), ("71046", "chest x-ray")]


def request(size: int, seed: int = 7, hook: str = "order-sign", today: str = "2025-06-15",
            single: bool = False, uncovered: bool = False) -> dict:
    """A complete hook request whose prefetch holds ``size`` resources.

    Its draft orders trigger every policy, or with ``single`` only the first (the pump trial and
    its intrathecal opioid): the common shape of a real order-sign call; with ``uncovered`` one
    order no policy covers (a chest X-ray): the shape of most EHR traffic.
    """
    rng = random.Random(seed)
    makers = [(0.25, _condition), (0.45, _observation), (0.15, _medication), (0.10, _procedure), (0.05, _service)]
    resources: dict[str, list] = {"Condition": [], "Observation": [], "MedicationRequest": [], "Procedure": [],
                                  "ServiceRequest": []}
    for i in range(max(0, size - 2)):
        share, maker = _pick(rng, makers)
        resource = maker(rng, i)
        resources[resource["resourceType"]].append(resource)
    resources["Observation"].append(_ga())
    drafts = [_trial(), _intrathecal_morphine(), _cfdna(), _si_fusion(), _spinal_referral(), _pegfilgrastim()]
    if single:
        drafts = drafts[:2]
    if uncovered:
        drafts = [_chest_xray()]
    context = {"userId": "Practitioner/bench", "patientId": PATIENT,
               "draftOrders": {"resourceType": "Bundle", "type": "collection",
                               "entry": [{"resource": r} for r in drafts]}}
    if hook == "order-select":
        context["selections"] = [f"{d['resourceType']}/{d['id']}" for d in drafts
                                 if d["resourceType"] == "ServiceRequest"]
    prefetch = {"patient": {"resourceType": "Patient", "id": PATIENT, "birthDate": "1985-04-02"},
                "coverage": _bundle([{"resourceType": "Coverage", "id": "cov", "status": "active",
                                      "beneficiary": {"reference": f"Patient/{PATIENT}"},
                                      "payor": [{"display": "Plan"}]}])}
    for rtype, key in (("Condition", "conditions"), ("Observation", "observations"),
                       ("MedicationRequest", "medicationRequests"), ("Procedure", "procedures"),
                       ("ServiceRequest", "serviceRequests")):
        prefetch[key] = _bundle(resources[rtype]) if resources[rtype] else None
    prefetch.update(diagnosticReports=None, deviceRequests=None, questionnaireResponses=None)
    return {"hook": hook, "hookInstance": str(uuid.UUID(int=rng.getrandbits(128))), "context": context,
            "prefetch": prefetch}


def _pick(rng, makers):
    x, acc = rng.random(), 0.0
    for share, maker in makers:
        acc += share
        if x < acc:
            return share, maker
    return makers[-1]


def _cc(system, code, display=None):
    coding = {"system": system, "code": code}
    if display:
        coding["display"] = display
    return {"coding": [coding]}


def _date(rng, lo=2023, hi=2025):
    return f"{rng.randint(lo, hi)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"


def _condition(rng, i):
    code, display = rng.choice(CONDITIONS)
    return {"resourceType": "Condition", "id": f"c{i}", "subject": {"reference": f"Patient/{PATIENT}"},
            "clinicalStatus": _cc("http://terminology.hl7.org/CodeSystem/condition-clinical",
                                  rng.choice(["active", "active", "resolved"])),
            "verificationStatus": _cc("http://terminology.hl7.org/CodeSystem/condition-ver-status", "confirmed"),
            "code": _cc(ICD, code, display), "onsetDateTime": _date(rng)}


def _observation(rng, i):
    code, display, unit, lo, hi = rng.choice(LABS)
    return {"resourceType": "Observation", "id": f"o{i}", "status": "final",
            "subject": {"reference": f"Patient/{PATIENT}"},
            "code": _cc(LOINC, code, display), "effectiveDateTime": _date(rng, 2024, 2025),
            "valueQuantity": {"value": round(rng.uniform(lo, hi), 1), "unit": unit, "system": UCUM, "code": unit}}


def _medication(rng, i):
    opioid = rng.random() < 0.4
    code, hours = rng.choice(OPIOIDS) if opioid else (rng.choice(OTHER_DRUGS), 24)
    start = _date(rng, 2024, 2025)
    return {"resourceType": "MedicationRequest", "id": f"m{i}",
            "status": rng.choice(["active", "completed", "stopped"]), "intent": "order",
            "subject": {"reference": f"Patient/{PATIENT}"}, "medicationCodeableConcept": _cc(RX, code),
            "authoredOn": start,
            "dosageInstruction": [{"timing": {"repeat": {"frequency": 1, "period": hours, "periodUnit": "h"}},
                                   "doseAndRate": [{"doseQuantity": {"value": 1, "unit": "tablet", "system": UCUM,
                                                                     "code": "{tbl}"}}]}],
            "dispenseRequest": {"expectedSupplyDuration": {"value": rng.choice([30, 60, 90]), "unit": "days",
                                                           "system": UCUM, "code": "d"}}}


def _procedure(rng, i):
    code, display = rng.choice(PROCEDURES)
    return {"resourceType": "Procedure", "id": f"p{i}", "status": "completed",
            "subject": {"reference": f"Patient/{PATIENT}"},
            "code": _cc(CPT, code, display), "performedDateTime": _date(rng, 2023, 2025)}


def _service(rng, i):
    return {"resourceType": "ServiceRequest", "id": f"s{i}", "status": rng.choice(["active", "completed"]),
            "intent": "order", "subject": {"reference": f"Patient/{PATIENT}"},
            "code": _cc(CPT, rng.choice(["80053", "85025", "81508"])),
            "authoredOn": _date(rng, 2024, 2025)}


def _ga():
    return {"resourceType": "Observation", "id": "ga", "status": "final",
            "subject": {"reference": f"Patient/{PATIENT}"},
            "code": _cc(LOINC, "49051-6", "Gestational age in weeks"), "effectiveDateTime": "2025-06-10",
            "valueQuantity": {"value": 10, "unit": "wk", "system": UCUM, "code": "wk"}}


def _trial():
    return {"resourceType": "ServiceRequest", "id": "sr-trial", "status": "draft", "intent": "order",
            "subject": {"reference": f"Patient/{PATIENT}"},
            "code": _cc(CPT, "62322", "Epidural/subarachnoid injection, lumbar")}


def _intrathecal_morphine():
    return {"resourceType": "MedicationRequest", "id": "mr-it", "status": "draft", "intent": "order",
            "subject": {"reference": f"Patient/{PATIENT}"}, "medicationCodeableConcept": _cc(RX, "892652"),
            "dosageInstruction": [{"route": _cc(SCT, "72607000", "Intrathecal route"), "text": "trial dose"}]}


def _chest_xray():
    return {"resourceType": "ServiceRequest", "id": "sr-xray", "status": "draft", "intent": "order",
            "subject": {"reference": f"Patient/{PATIENT}"},
            "code": _cc(CPT, "71046", "Radiologic examination, chest; 2 views")}


def _cfdna():
    return {"resourceType": "ServiceRequest", "id": "sr-cfdna", "status": "draft", "intent": "order",
            "subject": {"reference": f"Patient/{PATIENT}"}, "code": _cc(CPT, "81420", "cfDNA aneuploidy panel")}


def _si_fusion():
    return {"resourceType": "ServiceRequest", "id": "sr-si-fusion", "status": "draft", "intent": "order",
            "priority": "routine", "subject": {"reference": f"Patient/{PATIENT}"},
            "code": _cc(CPT, "27280", "Arthrodesis, open, sacroiliac joint"),
            "reasonCode": [_cc(ICD, "S32.810A", "Multiple fractures of pelvis with stable disruption of pelvic ring")]}


def _spinal_referral():
    return {"resourceType": "ServiceRequest", "id": "sr-referral", "status": "draft", "intent": "order",
            "priority": "routine", "subject": {"reference": f"Patient/{PATIENT}"},
            "category": [_cc(SCT, "3457005", "Patient referral")],
            "code": _cc(SCT, "308482002", "Referral to neurosurgeon"),
            "reasonCode": [_cc(ICD, "M51.16", "Intervertebral disc disorders with radiculopathy, lumbar region")]}


def _pegfilgrastim():
    return {"resourceType": "MedicationRequest", "id": "mr-pegfilgrastim", "status": "draft", "intent": "order",
            "subject": {"reference": f"Patient/{PATIENT}"},
            "medicationCodeableConcept": {"coding": [{"system": RX, "code": "338036", "display": "pegfilgrastim"},
                                                     {"system": "https://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets",
                                                      "code": "J2506", "display": "Injection, pegfilgrastim, 0.5 mg"}]},
            "dosageInstruction": [{"text": "6 mg subcutaneously once per chemotherapy cycle"}]}


def _bundle(resources):
    return {"resourceType": "Bundle", "type": "searchset", "entry": [{"resource": r} for r in resources]}
