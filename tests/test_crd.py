"""Da Vinci CRD on order-sign: coverage-information for every order, card types, 2.2 semantics."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import pytest
import responses

from cdshooks.fhir.orders import DraftOrder
from cdshooks.policy import assertions
from cdshooks.respond import coverage
from cdshooks.respond import crd
from conftest import bundle
from conftest import full_prefetch
from conftest import hook_request
from conftest import make_app
from conftest import service_request

ROOT = Path(__file__).resolve().parents[1]
SIGN = "/cds-services/medical-policy-order-sign"
SELECT = "/cds-services/medical-policy-order-select"
PAYER = {"identifier": {"system": "urn:oid:2.16.840.1.113883.3.0", "value": "PAYER-1"}}
BED = {**service_request("sr-bed", "E0250"), "code": {"coding": [
    {"system": "https://bluebutton.cms.gov/resources/codesystem/hcpcs", "code": "E0250", "display": "Hospital bed"}]}}
CFDNA = service_request("sr-1", "81420")


def covered_by(app, payor=PAYER, **overrides):
    return full_prefetch(app, coverage=bundle({"resourceType": "Coverage", "id": "cov-1", "status": "active",
                                               "payor": [payor]}), **overrides)


def sign(client, app, orders, prefetch=None, extension=None):
    body = hook_request(orders=orders, prefetch=prefetch if prefetch is not None else covered_by(app))
    if extension:
        body["extension"] = extension
    return client.post(SIGN, json=body)


def parts(action) -> dict:
    (ext,) = [e for e in action["resource"]["extension"] if e["url"] == coverage.COVERAGE_INFORMATION]
    return {p["url"]: p for p in ext["extension"]}


def test_an_order_no_policy_covers_gets_the_deployment_statement_and_one_instructions_card(app, client):
    response = sign(client, app, [CFDNA, BED]).get_json()
    bed = next(a for a in response["systemActions"] if a["resource"]["id"] == "sr-bed")
    found = parts(bed)
    assert found["covered"]["valueCode"] == "conditional" and found["pa-needed"]["valueCode"] == "no-auth"
    assert (found["info-needed"]["valueCode"] == "OTH"
            and "No medical policy" in found["reason"]["valueCodeableConcept"]["text"])
    (card,) = [c for c in response["cards"] if c["source"]["topic"]["code"] == "coverage-info"]
    assert "links" not in card and "suggestions" not in card          # an Instructions card
    assert card["source"]["label"] == "Medical policy check"          # the payer has no name in this record
    assert card["summary"].startswith("Hospital bed (E0250): no prior authorization needed")
    assert "ServiceRequest/sr-bed" in card["detail"] and "sr-1" not in card["detail"]
    assert len(response["systemActions"]) == 2                          # the cfDNA order keeps its policy's answer


def test_the_instructions_card_speaks_for_the_payer_named_in_the_coverage(app, client):
    named = covered_by(app, payor={"reference": "Organization/org-1", "display": "Example Health Plan"})
    card = sign(client, app, [BED], prefetch=named).get_json()["cards"][0]
    assert card["source"]["label"] == "Example Health Plan"
    org = {"resourceType": "Organization", "id": "org-1", "name": "Plan from the record"}
    unnamed = covered_by(app, payor={"reference": "Organization/org-1"})
    unnamed["coverage"]["entry"].append({"resource": org})
    assert (sign(client, app, [BED], prefetch=unnamed).get_json()["cards"][0]["source"]["label"]
            == "Plan from the record")


def test_under_2_2_the_statement_is_not_repeated_in_a_card(app, client):
    payer = covered_by(app)
    response = sign(client, app, [BED], prefetch=payer, extension={"davinci-crd.requestedVersion": "2.2"}).get_json()
    assert response["cards"] == [] and parts(response["systemActions"][0])["covered"]["valueCode"] == "conditional"


def test_without_a_coverage_in_the_record_no_statement_and_no_card(app, client):
    response = sign(client, app, [BED], prefetch=full_prefetch(app)).get_json()
    assert response == {"cards": [], "systemActions": []}


def test_the_statement_and_its_card_are_set_per_deployment(tmp_path):
    app = make_app(tmp_path, UNCOVERED_ORDERS={"covered": "covered", "pa-needed": "no-auth", "info-needed": None,
                                               "reason": "Covered under the plan; no PA.", "card": False})
    response = sign(app.test_client(), app, [BED]).get_json()
    found = parts(response["systemActions"][0])
    assert found["covered"]["valueCode"] == "covered" and "info-needed" not in found
    assert found["reason"]["valueCodeableConcept"] == {"text": "Covered under the plan; no PA."}
    assert response["cards"] == []


def test_coverage_info_off_sends_neither_the_actions_nor_the_coverage_card(app, client):
    response = sign(client, app, [CFDNA, BED], extension={"davinci-crd.configuration": {"coverage-info": False}})
    body = response.get_json()
    assert body["systemActions"] == [] and [c["source"]["topic"]["code"] for c in body["cards"]] == ["appropriate-use"]


@pytest.mark.parametrize("path", [SIGN, SELECT])
def test_each_card_type_option_switches_its_cards_off_on_both_hooks(app, client, path):
    hook = "order-sign" if path == SIGN else "order-select"
    body = hook_request(hook, orders=[CFDNA], prefetch=covered_by(app))
    assert [c["source"]["topic"]["code"]
            for c in client.post(path, json=body).get_json()["cards"]] == ["appropriate-use"]
    body["extension"] = {"davinci-crd.configuration": {"appropriate-use": False, "guideline": True}}
    assert client.post(path, json=body).get_json()["cards"] == []


def test_the_data_unavailable_card_goes_with_the_cards_it_qualifies(app, client):
    outcome = {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "timeout"}]}
    prefetch = covered_by(app, observations=outcome)
    cards = sign(client, app, [CFDNA], prefetch=prefetch).get_json()["cards"]
    assert [c["source"]["topic"]["code"] for c in cards] == ["appropriate-use", "appropriate-use"]
    off = sign(client, app, [CFDNA], prefetch=prefetch,
               extension={"davinci-crd.configuration": {"appropriate-use": False}})
    assert off.get_json()["cards"] == []


def test_discovery_offers_one_boolean_per_card_type_the_service_sends(client):
    for service in client.get("/cds-services").get_json()["services"]:
        options = service["extension"]["davinci-crd.configuration-options"]
        sign_only = ["coverage-info"] if service["hook"] == "order-sign" else []
        assert [o["code"] for o in options] == sign_only + ["guideline", "appropriate-use", "max-cards"]
        assert all(o["type"] == "boolean" and o["default"] is True and o["name"] and o["description"]
                   for o in options[:-1])


def test_an_order_that_already_carries_the_same_assertion_gets_no_update(app, client):
    first = sign(client, app, [CFDNA, BED]).get_json()
    returned = [a["resource"] for a in first["systemActions"]]
    again = sign(client, app, returned).get_json()
    assert again["systemActions"] == []
    assert [c["source"]["topic"]["code"] for c in again["cards"]] == ["appropriate-use"]  # no repeated instructions
    changed = sign(client, app, returned, prefetch=covered_by(app, questionnaireResponses=None,
                                                                 observations=bundle(_ga_obs(10))))
    assert [a["resource"]["id"] for a in changed.get_json()["systemActions"]] == ["sr-1"]  # news for the cfDNA order


def _ga_obs(weeks):
    return {"resourceType": "Observation", "id": "ga", "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "49051-6"}]},
            "effectiveDateTime": "2025-06-14", "valueQuantity": {"value": weeks, "unit": "wk",
                                                                 "system": "http://unitsofmeasure.org", "code": "wk"}}


def test_the_reason_is_readable_text_not_ids_and_codes_technical_trouble_only_under_2_2(app, client):
    outcome = {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "timeout"}]}
    prefetch = covered_by(app, observations=outcome)
    reason = parts(sign(client, app, [CFDNA], prefetch=prefetch).get_json()["systemActions"][0])["reason"]
    text = reason["valueCodeableConcept"]["text"]
    assert not text.startswith("prenatal-cfdna-screening:")        # was "<policy-id>: <decision>; <ids>"
    assert text.startswith("Coverage conditional under Carelon GEN04 (") and "could not be read" in text
    assert "coding" not in reason["valueCodeableConcept"]            # 2.0.1's value set has no code for it
    found = parts(sign(client, app, [CFDNA], prefetch=prefetch,
                       extension={"davinci-crd.requestedVersion": "2.2"}).get_json()["systemActions"][0])
    assert found["reason"]["valueCodeableConcept"]["coding"] == [{"system": assertions.CRD_CODES, "code": "technical"}]
    detail = {p["url"]: p for p in found["detail"]["extension"]}
    assert "Questionnaire/prenatal-cfdna-screening" in detail["value"]["valueString"]


@pytest.mark.parametrize("version, status", [(None, 422), ("2.2", 400), ("2.0", 422)])
def test_a_non_conformant_request_is_400_under_crd_2_2_and_422_otherwise(client, version, status):
    body = hook_request()
    del body["hookInstance"]
    if version:
        body["extension"] = {"davinci-crd.requestedVersion": version}
    response = client.post(SIGN, json=body)
    assert response.status_code == status
    assert "hookInstance" in response.get_json()["issue"][0]["diagnostics"]


def test_under_2_2_a_coverage_without_a_payer_identifier_or_no_coverage_is_400(app, client):
    v22 = {"davinci-crd.requestedVersion": "2.2"}
    nameless = covered_by(app, payor={"reference": "Organization/org1234"})
    response = sign(client, app, [BED], prefetch=nameless, extension=v22)
    assert response.status_code == 400 and "payor identifier" in response.get_json()["issue"][0]["diagnostics"]
    assert sign(client, app, [BED], prefetch=nameless).status_code == 200          # 2.0.1: unchanged
    empty = full_prefetch(app, coverage={"resourceType": "Bundle", "type": "searchset", "total": 0})
    response = sign(client, app, [BED], prefetch=empty, extension=v22)
    assert response.status_code == 400 and response.get_json()["issue"][0]["expression"] == ["prefetch.coverage"]
    assert sign(client, app, [BED], prefetch=empty).get_json() == {"cards": [], "systemActions": []}
    org = {"resourceType": "Organization", "id": "org1234", "identifier": [{"value": "PAYER-1"}]}
    resolved = covered_by(app, payor={"reference": "Organization/org1234"})
    resolved["coverage"]["entry"].append({"resource": org})
    assert sign(client, app, [BED], prefetch=resolved, extension=v22).status_code == 200


def test_a_pump_ordered_with_the_blue_button_hcpcs_uri_is_evaluated_by_the_pump_policy(app, client):
    pump = {"resourceType": "DeviceRequest", "id": "dr-1", "status": "draft", "intent": "original-order",
            "subject": {"reference": "Patient/pat-1"},
            "codeCodeableConcept": {"coding": [{"system": "https://bluebutton.cms.gov/resources/codesystem/hcpcs",
                                                "code": "E0783"}]}}
    response = sign(client, app, [pump]).get_json()
    (card,) = response["cards"]
    assert card["extension"]["cdshooks.evaluation"]["policy"]["id"] == "intrathecal-pain-pump"
    assert "intrathecal-pain-pump" in response["systemActions"][0]["description"]


def test_two_assertions_on_one_order_make_one_update_with_one_assertion_id():
    order = DraftOrder("ServiceRequest/sr", {"resourceType": "ServiceRequest", "id": "sr"}, 0)
    values = {"covered": "covered", "pa-needed": "no-auth"}
    actions, updated = crd.actions([crd.Assertion(order, values, "a"), crd.Assertion(order, values, "b")],
                                   {"id": "cov"}, dt.date(2025, 6, 15), "2.0")
    (action,) = actions
    ids = {p["valueString"] for e in action.resource["extension"] for p in e["extension"]
           if p["url"] == "coverage-assertion-id"}
    assert len(action.resource["extension"]) == 2 and len(ids) == 1 and updated == [order]


FHIR = "https://ehr.example.org/fhir"


def _with_server(body):
    body["fhirServer"] = FHIR
    body["fhirAuthorization"] = {"access_token": "tok-abc", "token_type": "Bearer", "expires_in": 300,
                                 "scope": "patient/*.read", "subject": "cds"}
    del body["prefetch"]["coverage"]
    return body


@responses.activate
def test_an_absent_coverage_is_fetched_for_orders_no_policy_covers(tmp_path):
    app = make_app(tmp_path, FHIR_ALLOWLIST=FHIR)
    responses.get(f"{FHIR}/Coverage?patient=pat-1&status=active",
                  json=bundle({"resourceType": "Coverage", "id": "cov-9", "status": "active", "payor": [PAYER]}))
    body = _with_server(hook_request(orders=[BED], prefetch=full_prefetch(app)))
    response = app.test_client().post(SIGN, json=body).get_json()
    assert parts(response["systemActions"][0])["coverage"]["valueReference"] == {"reference": "Coverage/cov-9"}


@responses.activate
def test_failing_to_fetch_the_coverage_for_uncovered_orders_is_no_error_and_no_problem_card(tmp_path):
    app = make_app(tmp_path, FHIR_ALLOWLIST=FHIR)
    responses.get(re.compile(rf"{re.escape(FHIR)}/.*"), status=500)
    body = _with_server(hook_request(orders=[BED], prefetch=full_prefetch(app)))
    response = app.test_client().post(SIGN, json=body)
    assert response.status_code == 200 and response.get_json() == {"cards": [], "systemActions": []}


def test_every_card_type_a_policy_may_use_has_a_name_and_a_configuration_option():
    from typing import get_args

    from cdshooks.cds.protocol import CrdConfiguration
    from cdshooks.policy.model import Policy

    topics = set(get_args(Policy.model_fields["topic"].annotation))
    assert topics == set(crd.CARD_TYPE_NAMES)
    assert all(CrdConfiguration().allows(t) for t in topics)
    assert not CrdConfiguration.model_validate({t: False for t in topics}).allows("guideline")


def test_the_reason_names_the_criteria_that_decided_not_the_branches_that_cannot_matter(tmp_path):
    """Pump trial for non-malignant pain, opioids weaned 30 %: the wean decides, the malignant
    branch (I.A.1.*) is decided by its gate and must not be listed."""
    body = json.loads((ROOT / "examples" / "pump-trial-opioids-weaned-30pct.json").read_text())
    app = make_app(tmp_path, TODAY="2025-06-15")
    actions = app.test_client().post(SIGN, json=body).get_json()["systemActions"]
    texts = [parts(a)["reason"]["valueCodeableConcept"]["text"] for a in actions]
    (pump,) = [t for t in texts if "LA.CP.MP.173" in t]
    assert "Criteria: I.A.2.g." in pump and "I.A.1." not in pump
