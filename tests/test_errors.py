"""Every error status of CONTRACT §3 answers with an OperationOutcome naming the field."""

from __future__ import annotations

import io
import json

import pytest

from conftest import full_prefetch
from conftest import hook_request
from conftest import make_app
from conftest import service_request

SIGN = "/cds-services/medical-policy-order-sign"
SELECT = "/cds-services/medical-policy-order-select"


def outcome(response, status):
    assert response.status_code == status, response.get_data(as_text=True)
    body = response.get_json()
    assert body["resourceType"] == "OperationOutcome"
    issue = body["issue"][0]
    assert issue["severity"] == "error" and issue["diagnostics"]
    return issue


@pytest.mark.parametrize("data", [b"not json", b"{", b"\xff\xfe\x00", b""])
def test_body_that_is_not_json_is_400(client, data):
    issue = outcome(client.post(SIGN, data=data, content_type="application/json"), 400)
    assert "JSON" in issue["diagnostics"]


@pytest.mark.parametrize("data", [b"[]", b"42", b'"text"', b"null"])
def test_json_that_is_not_an_object_is_400(client, data):
    issue = outcome(client.post(SIGN, data=data, content_type="application/json"), 400)
    assert "object" in issue["diagnostics"]


def test_deeply_nested_json_is_400_not_500(client):
    data = b"[" * 5000 + b"]" * 5000
    outcome(client.post(SIGN, data=data, content_type="application/json"), 400)


def test_unknown_service_is_404(client):
    issue = outcome(client.post("/cds-services/no-such-service", json=hook_request()), 404)
    assert "no-such-service" in issue["diagnostics"]


def test_unknown_path_is_404(client):
    outcome(client.get("/not-here"), 404)


def test_wrong_method_is_405(client):
    outcome(client.get(SIGN), 405)
    outcome(client.put("/cds-services", json={}), 405)


def test_body_over_the_limit_is_413_before_parsing(tmp_path):
    client = make_app(tmp_path, MAX_BODY_BYTES=1000).test_client()
    issue = outcome(client.post(SIGN, data=b"x" * 2000, content_type="application/json"), 413)
    assert "1000" in issue["diagnostics"]


def test_body_over_the_limit_without_content_length_is_413(tmp_path):
    client = make_app(tmp_path, MAX_BODY_BYTES=1000).test_client()
    response = client.post(SIGN, input_stream=io.BytesIO(b"{" * 2000), content_type="application/json",
                           environ_overrides={"wsgi.input_terminated": True})
    outcome(response, 413)


@pytest.mark.parametrize("remove, field", [
    (("hookInstance",), "hookInstance"),
    (("hook",), "hook"),
    (("context",), "context"),
    (("context", "patientId"), "context.patientId"),
    (("context", "draftOrders"), "context.draftOrders"),
])
def test_missing_required_member_is_422_naming_it(client, remove, field):
    body = hook_request()
    target = body
    for key in remove[:-1]:
        target = target[key]
    del target[remove[-1]]
    issue = outcome(client.post(SIGN, json=body), 422)
    assert issue["expression"] == [field]
    assert field in issue["diagnostics"]


def test_order_select_without_selections_is_422(client):
    body = hook_request("order-select")
    del body["context"]["selections"]
    assert outcome(client.post(SELECT, json=body), 422)["expression"] == ["context.selections"]


def test_selection_naming_no_draft_order_is_422(client):
    body = hook_request("order-select")
    body["context"]["selections"] = ["ServiceRequest/elsewhere"]
    issue = outcome(client.post(SELECT, json=body), 422)
    assert issue["expression"] == ["context.selections[0]"]


def test_hook_not_matching_the_service_is_422(client):
    issue = outcome(client.post(SELECT, json=hook_request("order-sign")), 422)
    assert issue["expression"] == ["hook"]


@pytest.mark.parametrize("mutate, field", [
    (lambda b: b.__setitem__("hookInstance", 7), "hookInstance"),
    (lambda b: b["context"].__setitem__("patientId", ["x"]), "context.patientId"),
    (lambda b: b["context"].__setitem__("draftOrders", "orders"), "context.draftOrders"),
    (lambda b: b["context"]["draftOrders"].__setitem__("resourceType", "List"), "context.draftOrders.resourceType"),
    (lambda b: b["context"]["draftOrders"].__setitem__("entry", {}), "context.draftOrders.entry"),
    (lambda b: b["context"]["draftOrders"]["entry"].append({"resource": 3}), "context.draftOrders.entry[1].resource"),
    (lambda b: b.__setitem__("prefetch", []), "prefetch"),
    (lambda b: b.__setitem__("fhirAuthorization", {"access_token": "t"}), "body"),
])
def test_wrong_types_are_422_naming_the_field(client, mutate, field):
    body = hook_request()
    mutate(body)
    issue = outcome(client.post(SIGN, json=body), 422)
    assert field in issue["diagnostics"] or issue.get("expression") == [field]


def test_too_many_draft_orders_is_422(tmp_path):
    client = make_app(tmp_path, MAX_DRAFT_ORDERS=2).test_client()
    orders = [service_request(f"sr-{i}", "99999") for i in range(3)]
    outcome(client.post(SIGN, json=hook_request(orders=orders)), 422)


def test_required_prefetch_absent_without_fhir_server_is_412(client):
    body = hook_request(orders=[service_request("sr-1", "81420")])
    issue = outcome(client.post(SIGN, json=body), 412)
    assert issue["expression"][0].startswith("prefetch.")
    assert "absent" in issue["diagnostics"]


def test_no_policy_applies_needs_only_the_patient(app, client):
    body = hook_request(orders=[service_request("sr-1", "99213")],
                        prefetch={"patient": {"resourceType": "Patient", "id": "pat-1"}})
    response = client.post(SIGN, json=body)
    assert response.status_code == 200
    assert response.get_json() == {"cards": [], "systemActions": []}


def test_huge_string_values_are_handled(app, client):
    body = hook_request(prefetch=full_prefetch(app))
    body["context"]["userId"] = "Practitioner/" + "x" * 500_000
    assert client.post(SIGN, json=body).status_code == 200


def test_too_many_prefetch_entries_is_422(tmp_path):
    app = make_app(tmp_path, MAX_PREFETCH_ENTRIES=5)
    observations = {"resourceType": "Bundle", "entry": [{"resource": {"resourceType": "Observation", "id": str(i)}}
                                                        for i in range(6)]}
    body = hook_request(prefetch=full_prefetch(app, observations=observations))
    issue = outcome(app.test_client().post(SIGN, json=body), 422)
    assert issue["expression"] == ["prefetch"] and "6 entries" in issue["diagnostics"]


def test_context_nested_deeper_than_the_limit_is_422(tmp_path):
    app = make_app(tmp_path, MAX_JSON_DEPTH=20)
    nested = {}
    node = nested
    for _ in range(30):
        node["x"] = {}
        node = node["x"]
    body = hook_request(prefetch=full_prefetch(app), extraContext=nested)
    assert outcome(app.test_client().post(SIGN, json=body), 422)["expression"] == ["context"]


def test_a_questionnaire_response_nested_hundreds_deep_is_harmless(app, client):
    # 400 levels of items (≈ 800 JSON levels, under the parser's 1024) written as text: the
    # stdlib encoder would itself recurse too deep to build it
    levels = 400
    item = ('{"linkId": "g", "item": [' * levels + '{"linkId": "MN-3", "answer": [{"valueBoolean": true}]}'
            + "]}" * levels)
    qr = ('{"resourceType": "QuestionnaireResponse", "id": "deep", "status": "completed", '
          '"questionnaire": "https://x/fhir/Questionnaire/prenatal-cfdna-screening", "item": [' + item + "]}")
    body = hook_request(prefetch=full_prefetch(app, questionnaireResponses="QR"))
    text = json.dumps(body).replace('"questionnaireResponses": "QR"',
                                    '"questionnaireResponses": {"resourceType": "Bundle", "entry": [{"resource": '
                                    + qr + "}]}")
    assert client.post(SIGN, data=text, content_type="application/json").status_code == 200
