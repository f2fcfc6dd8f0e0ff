"""The record index: one pass, by type, by reference, by code; reference resolution."""

from __future__ import annotations

from cdshooks.fhir import record
from cdshooks.fhir.orders import DraftOrder
from cdshooks.fhir.record import Slot
from conftest import bundle

ICD = record.ICD10CM


def condition(cid, code):
    return {"resourceType": "Condition", "id": cid, "code": {"coding": [{"system": ICD, "code": code}]}}


def build(*resources, drafts=()):
    return record.build({"conditions": Slot("data", bundle(*resources))}, {"conditions": "Condition"}, drafts)


def test_resources_are_indexed_by_type_reference_code_and_icd_category():
    rec = build(condition("c1", "M51.26"), condition("c2", "m51.26"))
    assert [r["id"] for r in rec.with_code(ICD, "M51.26")] == ["c1", "c2"]
    assert len(rec.with_icd_category("M51")) == 2 and rec.by_ref["Condition/c1"]["id"] == "c1"


def test_a_draft_and_its_prefetched_copy_count_once():
    draft = DraftOrder("ServiceRequest/sr-1", {"resourceType": "ServiceRequest", "id": "sr-1", "status": "draft"}, 0)
    prefetched = {"resourceType": "ServiceRequest", "id": "sr-1", "status": "active"}
    slots = {"serviceRequests": Slot("data", bundle(prefetched))}
    rec = record.build(slots, {"serviceRequests": "ServiceRequest"}, (draft,))
    assert rec.of_type("ServiceRequest") == [draft.resource] and rec.is_draft(draft.resource)


def test_references_resolve_contained_relative_and_absolute():
    rec = build(condition("c1", "Z88.5"))
    container = {"contained": [{"resourceType": "Medication", "id": "m"}]}
    assert rec.resolve({"reference": "#m"}, container)["resourceType"] == "Medication"
    assert rec.resolve("Condition/c1")["id"] == "c1"
    assert rec.resolve({"reference": "https://ehr.example/fhir/Condition/c1"})["id"] == "c1"
    assert rec.resolve({"reference": "Condition/none"}) is None and rec.resolve(None) is None


def test_unavailable_slots_mark_their_resource_type():
    rec = record.build({"conditions": Slot("unavailable", reason="OperationOutcome")}, {"conditions": "Condition"}, ())
    assert rec.unavailable == {"Condition": "OperationOutcome"}


def test_junk_entries_are_skipped():
    value = {"resourceType": "Bundle", "entry": [None, {"resource": 7}, {"resource": {"no": "type"}},
                                                 {"resource": condition("c1", "F03.90")}]}
    rec = record.build({"conditions": Slot("data", value)}, {"conditions": "Condition"}, ())
    assert [r["id"] for r in rec.of_type("Condition")] == ["c1"]


def test_icd_10_cm_codes_are_shown_with_their_dot_whatever_the_record_wrote():
    assert record.display_code(ICD, "C50911") == "C50.911" and record.display_code(ICD, "c50.911") == "C50.911"
    assert record.display_code(ICD, "I10") == "I10" and record.display_code(ICD, "O36.4XX0") == "O36.4XX0"
    assert record.display_code("http://www.ama-assn.org/go/cpt", "81420") == "81420"


def test_evidence_shows_an_undotted_icd_10_cm_code_with_its_dot():
    from cdshooks.facts.select import written_code

    concept = {"coding": [{"system": ICD, "code": "C50911", "display": "Malignant neoplasm of right breast"}]}
    assert written_code(concept, "C50911") == "C50.911 Malignant neoplasm of right breast"
    assert written_code(None, "C50911", ICD) == "C50.911"  # a code from a referenced Condition


def _of(subject: str, rid: str = "c1") -> dict:
    return {**condition(rid, "C50.911"), "subject": {"reference": subject}}


def test_resources_of_another_patient_are_left_out_and_counted():
    other = [_of("Patient/someone-else", "c2"), _of("https://ehr.example/fhir/Patient/someone-else/_history/2", "c3"),
             {"resourceType": "Patient", "id": "someone-else"}]
    mine = [_of("Patient/p1", "c1"), _of("https://ehr.example/fhir/Patient/p1", "c4"), condition("c5", "I10"),
            {"resourceType": "Patient", "id": "p1"}]
    rec = record.build({"conditions": Slot("data", bundle(*other, *mine))}, {"conditions": "Condition"}, (), "p1")
    assert sorted(r["id"] for r in rec.of_type("Condition")) == ["c1", "c4", "c5"]
    assert rec.other_patients == {"Condition": 2, "Patient": 1} and rec.patient["id"] == "p1"


def test_bundle_local_urn_references_name_a_patient_only_through_a_full_url():
    value = {"resourceType": "Bundle", "entry": [
        {"fullUrl": "urn:uuid:aaa", "resource": {"resourceType": "Patient", "id": "p1"}},
        {"fullUrl": "urn:uuid:bbb", "resource": {"resourceType": "Patient", "id": "p2"}},
        {"resource": _of("urn:uuid:aaa", "mine")}, {"resource": _of("urn:uuid:bbb", "theirs")},
        {"resource": _of("urn:uuid:unknown", "unresolved")}]}
    rec = record.build({"all": Slot("data", value)}, {"all": "Condition"}, (), "p1")
    assert sorted(r["id"] for r in rec.of_type("Condition")) == ["mine", "unresolved"]
    assert rec.other_patients == {"Condition": 1, "Patient": 1}


def test_slots_outside_read_resolve_by_reference_and_count_other_patients_but_are_not_indexed():
    coverage = {"resourceType": "Coverage", "id": "cov", "beneficiary": {"reference": "Patient/p1"}}
    slots = {"conditions": Slot("data", bundle(_of("Patient/p1", "c1"), _of("Patient/someone-else", "c2"))),
             "coverage": Slot("data", bundle(coverage)), "observations": Slot("unavailable", reason="timeout")}
    types = {"conditions": "Condition", "coverage": "Coverage", "observations": "Observation"}
    rec = record.build(slots, types, (), "p1", read=frozenset({"coverage"}))
    assert rec.of_type("Coverage") == [coverage] and rec.of_type("Condition") == []
    assert rec.with_icd_category("C50") == [] and rec.resolve("Condition/c1")["id"] == "c1"
    assert rec.other_patients == {"Condition": 1} and rec.unavailable == {"Observation": "timeout"}
    whole = record.build(slots, types, (), "p1")
    assert [r["id"] for r in whole.of_type("Condition")] == ["c1"] and whole.other_patients == rec.other_patients


def test_deferred_slots_are_walked_only_when_a_reference_needs_them_and_resolve_as_read_ones_do():
    coverage = {"resourceType": "Coverage", "id": "cov", "beneficiary": {"reference": "Patient/p1"}}
    slots = {"conditions": Slot("data", bundle(_of("Patient/p1", "c1"), _of("Patient/someone-else", "c2"))),
             "coverage": Slot("data", bundle(coverage))}
    types = {"conditions": "Condition", "coverage": "Coverage"}
    rec = record.build(slots, types, (), "p1", read=frozenset({"coverage"}), defer_unread=True)
    assert rec.of_type("Coverage") == [coverage] and rec.resolve("Coverage/cov") is coverage
    assert rec.other_patients == {} and len(rec.deferred) == 1   # the conditions were not walked yet
    assert rec.resolve("Condition/c1")["id"] == "c1" and rec.resolve("Condition/c2") is None
    assert rec.deferred == [] and rec.of_type("Condition") == [] and rec.other_patients == {"Condition": 1}
