"""Card detail for a clinician (README §7): what decides, open questions, coverage meaning, lengths.

Every policy case also runs ``card_text.style_problems`` on its card (tests/test_cases.py); these
tests read the headline cards as a clinician would and pin the rules on hand-made texts.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from cdshooks.policy.loader import load_policy_set
from cdshooks.respond import card_text
from cdshooks.testing import cases

ROOT = Path(__file__).resolve().parents[1]
POLICIES, MAPPINGS = ROOT / "policies", ROOT / "mappings"
SUITES = dict(cases.load_suites(POLICIES)[0])
LOADED = load_policy_set(POLICIES, MAPPINGS)


def card_of(policy_id: str, case_name: str) -> dict:
    """The card a policy case's request gets from the whole service."""
    from cdshooks import create_app
    from cdshooks import registry

    suite = SUITES[f"{policy_id}_test.yaml"]
    case = next(c for c in suite.cases if c.name == case_name)
    app = create_app({"TESTING": True, "TODAY": (case.today or suite.today).isoformat(), "DATABASE_URL": "sqlite://",
                      "POLICIES": str(POLICIES), "MAPPINGS": str(MAPPINGS), "PUBLIC_BASE_URL": "http://localhost",
                      "POLICY_SETTINGS": {policy_id: dict(case.settings)} if case.settings else {}})
    with app.app_context():
        loaded = registry.get()
    body, order = cases.request_for(POLICIES, policy_id, case, loaded.templates)
    service = next(s for s in loaded.services.values() if s.hook == case.hook)
    response = app.test_client().post(f"/cds-services/{service.id}", json=body).get_json()
    card = cases.card_for(response, policy_id, order)
    assert card is not None
    return card


def questions(detail: str) -> list[str]:
    if card_text.QUESTIONS_HEADING not in detail:
        return []
    block = detail.split(card_text.QUESTIONS_HEADING, 1)[1].split("\n\n", 1)[0]
    return [line.split(". ", 1)[1] for line in block.split("\n")[1:] if re.match(r"^\d+\. ", line)]


def test_breast_cancer_with_unknown_regimen_risk_asks_the_risk_category_first():
    card = card_of("colony-stimulating-factors", "risk category unknown — conditional, document the regimen's risk")
    detail = card["detail"]
    asked = questions(detail)
    assert len(detail) <= 1200 and len(asked) == 5
    assert asked[:3] == ["Is the chemotherapy regimen's febrile-neutropenia risk high (≥ 20 %)?",
                         "Is the chemotherapy regimen's febrile-neutropenia risk intermediate (10 % to under 20 %)?",
                         "Is the chemotherapy regimen's febrile-neutropenia risk low (under 10 %)?"]
    assert not any(word in q for q in asked for word in ("leukaemia", "Ewing", "transplant", "myelodysplastic"))
    assert re.search(r"…and \d+ more in the questionnaire\.", detail)
    assert "Does the patient have a non-myeloid malignancy? **Yes** — " in detail and "C50.911" in detail
    assert "**No prior authorization needed.**" in detail


def test_a_met_card_shows_its_evidence_and_no_open_questions():
    card = card_of("colony-stimulating-factors",
                   "worked example 1 — Udenyca, breast cancer, intermediate risk, age 72 — met")
    detail = card["detail"]
    assert len(detail) <= 600 and not questions(detail) and "unknown" not in detail
    assert detail.startswith("**Meets BCBSM.**") and "age 72 on 2025-06-15" in detail
    assert "**No prior authorization needed.**" in detail


def test_non_malignant_pain_is_not_asked_the_malignant_branch_and_life_expectancy_once():
    card = card_of("intrathecal-pain-pump", "worked example 4 — only buprenorphine and the intrathecal Infumorph — "
                                            "no opioid history, unknown")
    detail = card["detail"]
    assert detail.count("life expectancy") == 1
    assert "malignant origin?" not in detail and "epidural metastasis" not in detail
    assert "non-malignant origin (e.g. failed back surgery syndrome, CRPS)? **Yes**" in detail
    assert questions(detail)[0] == "Is life expectancy more than 3 months?"


def test_a_failed_wean_says_what_decides_with_the_patients_numbers_and_that_it_is_not_covered():
    card = card_of("intrathecal-pain-pump",
                   "worked example 2 — opioids weaned only 28.6 % (140 → 100 MME/day) — not met")
    detail = card["detail"]
    assert "Were systemic opioids weaned by at least 50 % before the trial? **No** — baseline 140 MME/day" in detail
    assert "28.6 % reduction; ≥ 50 % required" in detail and "malignant origin" not in detail
    assert "**Not covered as ordered.**" in detail and not questions(detail)
    assert detail.rstrip().endswith("_LHCC LA.CP.MP.173 criteria: I.A.2.g_")


def test_too_early_is_said_in_words_not_as_an_outcome_code():
    card = card_of("prenatal-cfdna-screening",
                   "worked example 1 — 8w4d on 2025-03-05 — too early, reschedule to 2025-03-08")
    detail = card["detail"]
    assert "Too early: the policy covers cfDNA screening from 9 weeks 0 days" in detail
    assert "too-early" not in detail and "Outcome" not in detail
    assert "From 2025-03-08 this no longer stands in the way; the card's suggestion moves the order" in detail
    assert ("Will gestational age be at least 9 weeks 0 days on the service date? **No** "
            "— gestational age 8w4d") in detail


def test_a_recorded_fetal_demise_reads_as_an_answered_question():
    detail = card_of("prenatal-cfdna-screening", "fetal demise — not viable, not met")["detail"]
    assert "Has there been a fetal demise? **Yes** — O36.4XX0" in detail and "not met" not in detail


def test_order_sign_says_prior_authorization_is_required_and_what_to_send_order_select_does_not():
    signed = card_of("prenatal-cfdna-screening", "worked example 3 — EDD 2025-10-01 on 2025-03-15 — 11w3d, met")
    assert "**Prior authorization required** — send the clinical documentation with the prior-authorization " \
           "request." in signed["detail"]
    selected = card_of("prenatal-cfdna-screening",
                       "order-select gives the too-early card and its suggestion, no coverage information")
    assert "authorization" not in selected["detail"] and "covered" not in selected["detail"]


def test_unavailable_record_data_is_named_in_the_lead():
    detail = card_of("prenatal-cfdna-screening",
                     "Condition and ServiceRequest data unavailable "
                     "— demise and concurrent screening unknown")["detail"]
    assert "Some record data was unavailable" in detail


REAL_RECORDS = ROOT.parent / "shared" / "real-records"
REAL_ORDERS = {"prenatal-cfdna-screening": "cfdna-order-81420", "intrathecal-pain-pump": "pump-trial-62322",
               "colony-stimulating-factors": "csf-order-neupogen", "si-joint-fusion-open": "si-order-no-reason",
               "spinal-surgery-referral": "nhs-referral-m51"}


@pytest.mark.skipif(not REAL_RECORDS.is_dir(), reason="../shared/real-records is not present")
def test_cards_for_third_party_records_keep_the_rules():
    """Each real record × one order per policy on order-sign: every card keeps README §7."""
    import uuid

    from cdshooks import create_app
    from cdshooks import registry
    from cdshooks.respond import card_rules

    app = create_app({"TESTING": True, "TODAY": "2025-06-15", "DATABASE_URL": "sqlite://", "POLICIES": str(POLICIES),
                      "MAPPINGS": str(MAPPINGS), "PUBLIC_BASE_URL": "http://localhost"})
    with app.app_context():
        loaded = registry.get()
    service = next(s for s in loaded.services.values() if s.hook == "order-sign")
    client, seen, broken = app.test_client(), 0, []
    for path in sorted(REAL_RECORDS.glob("*.json")):
        resources = [e["resource"] for e in json.loads(path.read_text(encoding="utf-8")).get("entry", [])]
        patient = next(r for r in resources if r["resourceType"] == "Patient")
        orders = []
        for fixture in REAL_ORDERS.values():
            order = dict(cases.load_fixture(POLICIES, fixture)[0], subject={"reference": f"Patient/{patient['id']}"})
            orders.append(order)
        prefetch = {t.key: ([r for r in resources if r["resourceType"] == "Patient"] or [None])[0] if t.key == "patient"
                    else {"resourceType": "Bundle", "type": "searchset",
                          "entry": [{"resource": r} for r in resources if r["resourceType"] == t.resource_type]}
                    for t in loaded.templates}
        context = {"userId": "Practitioner/x", "patientId": patient["id"],
                   "draftOrders": {"resourceType": "Bundle", "type": "collection",
                                   "entry": [{"resource": o} for o in orders]}}
        response = client.post(f"/cds-services/{service.id}", json={
            "hook": "order-sign", "hookInstance": str(uuid.uuid4()), "context": context, "prefetch": prefetch})
        assert response.status_code == 200, path.name
        for card in response.get_json()["cards"]:
            evaluation = card.get("extension", {}).get("cdshooks.evaluation")
            if evaluation is None:
                continue
            seen += 1
            found = card_rules.problems(card, loaded.policies.by_id[evaluation["policy"]["id"]], "order-sign")
            broken += [(path.name, evaluation["policy"]["id"], p) for p in found]
    assert seen >= 100 and broken == []


def test_detail_choices_never_rank_alike_and_a_finding_comes_before_three_questions():
    choices = [(f, q, quote) for f in range(13) for q in range(6) for quote in ("a quote", None)]
    ranked = sorted(choices, key=card_text._rank, reverse=True)
    assert len({card_text._rank(c) for c in choices}) == len(choices)
    assert ranked[0] == (12, 5, "a quote")
    assert card_text._rank((1, 0, None)) > card_text._rank((0, 5, "a quote"))
    assert card_text._rank((1, 3, None)) > card_text._rank((2, 2, None))


def test_findings_are_worked_out_once_per_evaluation_and_handed_out_as_copies():
    from cdshooks.policy.applicability import Evaluation

    evaluation = Evaluation(None, "met", None, {}, (), {}, None, ())
    evaluation.memo["finding ids"] = ["A.a.i"]
    first = card_text.finding_ids(evaluation)
    first.append("changed")
    assert card_text.finding_ids(evaluation) == ["A.a.i"]
