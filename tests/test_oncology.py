"""The oncology facts end to end: a malformed record is answered, never raised."""

from __future__ import annotations

from cdshooks.fhir.record import ICD10CM
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
