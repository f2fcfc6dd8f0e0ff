"""Documentation answers from QuestionnaireResponses (policy README §4, CONTRACT §4.3)."""

from __future__ import annotations

from cdshooks.facts.answers import answers_for
from cdshooks.fhir import record
from cdshooks.fhir.record import Slot
from conftest import bundle
from conftest import patient


def qr(qid, items, authored="2025-06-01", status="completed", subject="Patient/pat-1",
       questionnaire="https://cds.example.org/fhir/Questionnaire/intrathecal-pain-pump|2025-02"):
    resource = {"resourceType": "QuestionnaireResponse", "id": qid, "status": status, "questionnaire": questionnaire,
                "item": items}
    if authored:
        resource["authored"] = authored
    if subject:
        resource["subject"] = {"reference": subject}
    return resource


def item(link_id, value):
    return {"linkId": link_id, "answer": [{"valueBoolean": value}]}


def answers(*qrs):
    slots = {"patient": Slot("data", patient()), "questionnaireResponses": Slot("data", bundle(*qrs))}
    rec = record.build(slots, {"patient": "Patient", "questionnaireResponses": "QuestionnaireResponse"}, ())
    return {k: a.value for k, a in answers_for("intrathecal-pain-pump", rec).items()}


def test_version_suffix_is_ignored_and_nested_items_are_found():
    nested = {"linkId": "group", "item": [item("I.A.2.b", True)]}
    assert answers(qr("q1", [nested, item("I.A.2.c", False)])) == {"I.A.2.b": True, "I.A.2.c": False}


def test_latest_authored_wins_per_link_id_and_missing_authored_is_oldest():
    old = qr("old", [item("I.A.2.b", False), item("I.A.2.c", True)], authored="2025-01-01")
    new = qr("new", [item("I.A.2.b", True)], authored="2025-06-01")
    undated = qr("undated", [item("I.A.2.b", False)], authored=None)
    assert answers(new, undated, old) == {"I.A.2.b": True, "I.A.2.c": True}


def test_only_completed_or_amended_responses_for_this_patient_and_policy_count():
    assert answers(qr("draft", [item("I.A.2.b", True)], status="in-progress")) == {}
    assert answers(qr("other", [item("I.A.2.b", True)], subject="Patient/someone-else")) == {}
    assert answers(qr("policy", [item("I.A.2.b", True)],
                      questionnaire="https://x/fhir/Questionnaire/prenatal-cfdna-screening")) == {}
    assert answers(qr("amended", [item("I.A.2.b", True)], status="amended")) == {"I.A.2.b": True}
    assert answers(qr("no-subject", [item("I.A.2.b", True)], subject=None)) == {"I.A.2.b": True}


def test_items_without_a_boolean_answer_are_ignored():
    junk = [{"linkId": "I.A.2.b", "answer": [{"valueString": "yes"}]}, {"linkId": "I.A.2.c"}, "junk",
            {"linkId": 7, "answer": [{"valueBoolean": True}]}]
    assert answers(qr("q", junk)) == {}
