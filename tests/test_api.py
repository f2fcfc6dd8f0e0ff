"""The HTTP surface: discovery from the registry, routing, slashes, CORS, health, Questionnaires."""

from __future__ import annotations

import shutil

import pytest
from fhir.resources.R4B.questionnaire import Questionnaire

from cdshooks import registry
from cdshooks.store import db as store
from conftest import full_prefetch
from conftest import hook_request
from conftest import make_app


def test_discovery_lists_exactly_the_registry_services(app, client):
    body = client.get("/cds-services").get_json()
    with app.app_context():
        expected = [s.discovery() for s in registry.get().services.values()]
    assert body == {"services": expected}


def test_discovery_has_one_service_per_hook_with_distinct_ids(client):
    services = client.get("/cds-services").get_json()["services"]
    assert sorted(s["hook"] for s in services) == ["order-select", "order-sign"]
    assert len({s["id"] for s in services}) == 2
    for service in services:
        assert service["description"] and service["title"]


def test_discovery_prefetch_uses_only_cds_hooks_2_tokens(client):
    prefetch = client.get("/cds-services").get_json()["services"][0]["prefetch"]
    assert prefetch["patient"] == "Patient/{{context.patientId}}"
    assert prefetch["coverage"] == "Coverage?patient={{context.patientId}}&status=active"
    for key in ("conditions", "observations", "medicationRequests", "procedures", "serviceRequests",
                "diagnosticReports", "questionnaireResponses"):
        assert key in prefetch
    for template in prefetch.values():
        tokens = [t.split("}}")[0] for t in template.split("{{")[1:]]
        assert set(tokens) <= {"context.patientId", "context.userId", "context.encounterId", "userPractitionerId",
                               "userPractitionerRoleId", "userPatientId", "userRelatedPersonId"}


@pytest.mark.parametrize("path", ["/cds-services/", "//cds-services", "/cds-services//",
                                  "//cds-services///"])
def test_discovery_tolerates_trailing_and_doubled_slashes_without_redirect(client, path):
    # PATH_INFO set directly: the test client would read a leading "//" as a host name
    response = client.get("/", environ_overrides={"PATH_INFO": path})
    assert response.status_code == 200


def test_service_path_with_doubled_slash_is_served_not_redirected(app, client):
    body = hook_request(prefetch=full_prefetch(app))
    response = client.post("/", json=body,
                           environ_overrides={"PATH_INFO": "/cds-services//medical-policy-order-sign/"})
    assert response.status_code == 200


def test_preflight_is_answered_without_auth_with_cors_headers(client):
    response = client.options("/cds-services/medical-policy-order-sign", headers={
        "Origin": "https://sandbox.cds-hooks.org", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type",
        "Access-Control-Request-Private-Network": "true"})
    assert response.status_code in (200, 204)
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    allowed = response.headers["Access-Control-Allow-Headers"].lower()
    assert "authorization" in allowed and "content-type" in allowed
    assert response.headers["Access-Control-Allow-Private-Network"] == "true"


def test_error_responses_carry_cors_headers(client):
    response = client.post("/cds-services/nope", json={}, headers={"Origin": "https://sandbox.cds-hooks.org"})
    assert response.status_code == 404
    assert response.headers["Access-Control-Allow-Origin"] == "*"


def test_healthz_reports_loaded_policies(client):
    body = client.get("/healthz").get_json()
    assert body["status"] == "ok"
    assert body["policies"] >= 2 and body["facts"] > 0


def test_every_response_is_json(client):
    for response in (client.get("/nowhere"), client.get("/cds-services"), client.delete("/cds-services")):
        assert response.mimetype == "application/json"


@pytest.mark.parametrize("policy_id", ["intrathecal-pain-pump", "prenatal-cfdna-screening"])
def test_questionnaire_is_valid_fhir_r4_with_one_boolean_item_per_documentation_leaf(client, policy_id):
    body = client.get(f"/fhir/Questionnaire/{policy_id}").get_json()
    Questionnaire.model_validate(body)
    assert body["url"] == f"https://cds.example.org/fhir/Questionnaire/{policy_id}"
    assert body["item"] and all(item["type"] == "boolean" for item in body["item"])
    link_ids = [item["linkId"] for item in body["item"]]
    assert len(link_ids) == len(set(link_ids))


def test_questionnaire_items_are_the_criteria_questions_without_ids(client):
    items = client.get("/fhir/Questionnaire/intrathecal-pain-pump").get_json()["item"]
    assert all(item["text"].endswith("?") and item["linkId"] not in item["text"] for item in items)


def test_pump_questionnaire_asks_the_documentation_leaves_of_the_spec(client):
    link_ids = [i["linkId"] for i in client.get("/fhir/Questionnaire/intrathecal-pain-pump").get_json()["item"]]
    assert "I.A.2.g" in link_ids and "I.A.1.a" in link_ids and "II.A.2.i" in link_ids
    assert "COD-1" not in link_ids and "I.A" not in link_ids


def test_unknown_questionnaire_is_404_with_operation_outcome(client):
    response = client.get("/fhir/Questionnaire/no-such-policy")
    assert response.status_code == 404
    assert response.get_json()["resourceType"] == "OperationOutcome"


def test_policy_page_lists_criteria_with_citations(client):
    body = client.get("/policies/intrathecal-pain-pump").get_json()
    ids = {c["id"] for c in body["criteria"]}
    assert {"I.A.2.g", "COD-1", "II.B.5"} <= ids
    assert all(c["cite"] for c in body["criteria"])


def test_healthz_fails_when_the_store_can_no_longer_write(tmp_path):
    folder = tmp_path / "data"
    client = make_app(tmp_path, DATABASE_URL=f"sqlite:///{folder / 'db.sqlite3'}").test_client()
    assert client.get("/healthz").status_code == 200
    shutil.rmtree(folder)   # the SQLite file is unlinked; SELECT 1 on the open handle still passes
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.get_json()["resourceType"] == "OperationOutcome"


def test_healthz_writes_to_the_store(app, client):
    assert client.get("/healthz").status_code == 200
    with app.app_context():
        (row,) = store.get().rows(store.health)
    assert row["checked_at"] is not None
