"""One hook call end to end: audit row, log line, junk never yields a 5xx."""

from __future__ import annotations

import json
import logging

from hypothesis import HealthCheck
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from cdshooks import registry
from cdshooks.store import db as store
from cdshooks.testing import cases
from conftest import ROOT
from conftest import full_prefetch
from conftest import hook_request
from conftest import make_app
from conftest import service_request

SIGN = "/cds-services/medical-policy-order-sign"
SELECT = "/cds-services/medical-policy-order-select"


def test_each_hook_call_writes_one_audit_row_with_ids_only(app, client):
    body = hook_request(prefetch=full_prefetch(app))
    client.post(SIGN, json=body)
    with app.app_context():
        assert store.get().writer.flush(10)
        (row,) = store.get().rows(store.audit)
    assert row["hook_instance"] == body["hookInstance"] and row["patient_id"] == "pat-1"
    assert row["status"] == 200 and row["service_id"] == "medical-policy-order-sign"
    assert json.loads(row["order_refs"]) == ["ServiceRequest/sr-1"]
    decision = json.loads(row["decisions"])[0]
    assert decision["policy"] == "prenatal-cfdna-screening" and decision["decision"] == "unknown"
    assert len(json.loads(row["card_ids"])) == 1
    assert row["latency_ms"] > 0


def test_failed_calls_are_audited_with_their_status(app, client):
    client.post(SIGN, json={"hook": "order-sign"})
    with app.app_context():
        assert store.get().writer.flush(10)
        (row,) = store.get().rows(store.audit)
    assert row["status"] == 422


def test_each_call_logs_hook_service_instance_status_and_time(app, client, caplog):
    body = hook_request(prefetch=full_prefetch(app))
    with caplog.at_level(logging.INFO, logger="cdshooks.calls"):
        client.post(SIGN, json=body)
    (line,) = [r.getMessage() for r in caplog.records if r.name == "cdshooks.calls"]
    assert f"hookInstance={body['hookInstance']}" in line
    assert "hook=order-sign service=medical-policy-order-sign" in line and "status=200" in line


def test_order_select_returns_cards_only(app, client):
    response = client.post(SELECT, json=hook_request("order-select", prefetch=full_prefetch(app)))
    body = response.get_json()
    assert response.status_code == 200 and "systemActions" not in body and body["cards"]


def test_order_sign_without_coverage_still_has_system_actions_key(app, client):
    body = client.post(SIGN, json=hook_request(prefetch=full_prefetch(app))).get_json()
    assert body["systemActions"] == []


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=30,
)
keys = st.sampled_from(["hook", "hookInstance", "context", "prefetch", "fhirServer", "fhirAuthorization"])
context_keys = st.sampled_from(["patientId", "userId", "draftOrders", "selections", "encounterId"])


def mutated_request(base):
    return st.tuples(st.dictionaries(keys, json_values, max_size=3),
                     st.dictionaries(context_keys, json_values, max_size=3)).map(
        lambda parts: _merge(base, *parts))


def _merge(base, top, context):
    body = json.loads(json.dumps(base))
    body.update(top)
    if isinstance(body.get("context"), dict):
        body["context"].update(context)
    return body


def test_generated_junk_never_yields_a_server_error(tmp_path):
    app = make_app(tmp_path)
    client = app.test_client()
    base = hook_request(prefetch=full_prefetch(app))

    @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(st.one_of(json_values, mutated_request(base)), st.sampled_from([SIGN, SELECT]))
    def check(body, path):
        response = client.post(path, data=json.dumps(body), content_type="application/json")
        assert response.status_code < 500, response.get_data(as_text=True)

    check()


def test_generated_junk_prefetch_never_yields_a_server_error(tmp_path):
    app = make_app(tmp_path)
    client = app.test_client()
    base = hook_request(prefetch=full_prefetch(app))
    prefetch_keys = st.sampled_from(list(base["prefetch"]))
    resource = st.fixed_dictionaries({"resourceType": st.sampled_from(
        ["Observation", "Condition", "Patient", "Bundle", "MedicationRequest", "QuestionnaireResponse"])},
        optional={"id": json_values, "status": json_values, "code": json_values, "entry": json_values,
                  "valueQuantity": json_values, "effectiveDateTime": json_values, "birthDate": json_values,
                  "clinicalStatus": json_values, "item": json_values, "dosageInstruction": json_values})

    @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(st.dictionaries(prefetch_keys, st.one_of(resource, json_values, resource.map(
        lambda r: {"resourceType": "Bundle", "entry": [{"resource": r}]})), max_size=4))
    def check(prefetch):
        body = json.loads(json.dumps(base))
        body["prefetch"].update(prefetch)
        response = client.post(SIGN, data=json.dumps(body), content_type="application/json")
        assert response.status_code < 500, response.get_data(as_text=True)

    check()


def test_system_actions_are_mirrored_under_extension_only_when_asked(tmp_path):
    from conftest import bundle

    for mirror in (False, True):
        folder = tmp_path / str(mirror)
        folder.mkdir()
        app = make_app(folder, SANDBOX_SYSTEM_ACTIONS=mirror, TODAY="2025-03-05")
        coverage = bundle({"resourceType": "Coverage", "id": "cov-1", "status": "active"})
        request = hook_request(prefetch=full_prefetch(app, coverage=coverage))
        body = app.test_client().post(SIGN, json=request).get_json()
        assert len(body["systemActions"]) == 1
        assert ("extension" in body) is mirror
        if mirror:
            assert body["extension"]["systemActions"] == body["systemActions"]


def _coverage_prefetch(app):
    from conftest import bundle
    return full_prefetch(app, coverage=bundle({"resourceType": "Coverage", "id": "cov-1", "status": "active",
                                               "payor": [{"identifier": {"system": "urn:oid:2.16.840.1.113883.3.0",
                                                                         "value": "PAYER-1"}}]}))


def test_card_topics_use_the_crd_2_0_1_system_unless_2_2_is_requested(app, client):
    body = hook_request(prefetch=_coverage_prefetch(app))
    topic = client.post(SIGN, json=body).get_json()["cards"][0]["source"]["topic"]
    assert topic["system"] == "http://hl7.org/fhir/us/davinci-crd/CodeSystem/temp"
    body["extension"] = {"davinci-crd.requestedVersion": "2.2"}
    topic = client.post(SIGN, json=body).get_json()["cards"][0]["source"]["topic"]
    assert topic["system"] == "http://terminology.hl7.org/CodeSystem/cdshooks-card-type"


def test_discovery_advertises_crd_versions_and_configuration_options(client):
    sign = next(s for s in client.get("/cds-services").get_json()["services"] if s["hook"] == "order-sign")
    extension = sign["extension"]
    assert extension["davinci-crd.version"] == ["2.0", "2.2"]
    options = {o["code"]: o for o in extension["davinci-crd.configuration-options"]}
    assert options["coverage-info"]["default"] is True and options["max-cards"]["type"] == "integer"


def test_crd_configuration_can_switch_off_coverage_information_and_cap_the_cards(app, client):
    body = hook_request(prefetch=_coverage_prefetch(app))
    body["extension"] = {"davinci-crd.configuration": {"coverage-info": False, "max-cards": 0, "unknown-option": 1}}
    response = client.post(SIGN, json=body).get_json()
    assert response == {"cards": [], "systemActions": []}


def test_discovery_advertises_the_max_cards_default_that_requests_get(app, client):
    extension = client.get("/cds-services").get_json()["services"][0]["extension"]
    advertised = {o["code"]: o["default"] for o in extension["davinci-crd.configuration-options"]}["max-cards"]
    orders = [service_request(f"sr-{i}", "81420") for i in range(advertised + 2)]
    body = hook_request(orders=orders, prefetch=_coverage_prefetch(app))
    assert len(client.post(SIGN, json=body).get_json()["cards"]) == advertised


def test_when_cards_must_be_cut_the_most_urgent_are_kept(tmp_path):
    policies = ROOT / "policies"
    suite = next(s for _, s in cases.load_suites(policies)[0] if s.policy == "prenatal-cfdna-screening")
    case = next(c for c in suite.cases if c.name.startswith("worked example 2"))
    app = make_app(tmp_path, TODAY=(case.today or suite.today).isoformat())
    with app.app_context():
        body, _ = cases.request_for(policies, suite.policy, case, registry.get().templates)
        key = next(t.key for t in registry.get().templates if t.resource_type == "MedicationRequest")
    body["prefetch"][key] = {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "timeout"}]}
    cards = app.test_client().post(SIGN, json=body).get_json()["cards"]
    assert [c["indicator"] for c in cards] == ["info", "warning"]   # the met card, then "data unavailable"
    body["extension"] = {"davinci-crd.configuration": {"max-cards": 1}}
    cards = app.test_client().post(SIGN, json=body).get_json()["cards"]
    assert [c["indicator"] for c in cards] == ["warning"]


def test_a_malformed_crd_configuration_is_422(client, app):
    body = hook_request(prefetch=_coverage_prefetch(app))
    body["extension"] = {"davinci-crd.configuration": {"max-cards": "ten"}}
    response = client.post(SIGN, json=body)
    assert response.status_code == 422
    assert "davinci-crd.configuration" in response.get_json()["issue"][0]["diagnostics"]


def _answer_sign(app, orders, prefetch):
    from cdshooks import pipeline
    from cdshooks import settings as config
    with app.app_context():
        loaded, conf = registry.get(), config.get()
    service = next(s for s in loaded.services.values() if s.hook == "order-sign")
    body = hook_request(orders=orders, prefetch=prefetch)
    return pipeline.answer(loaded, conf, pipeline.offline_call(service, body, conf))


def test_an_order_no_policy_covers_indexes_only_patient_and_coverage_and_still_gets_coverage_information(app):
    from conftest import bundle
    with app.app_context():
        key = sorted(registry.get().keys_for({"Condition"}))[0]
    condition = {"resourceType": "Condition", "id": "c-1", "subject": {"reference": "Patient/pat-1"},
                 "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "M51.26"}]}}
    prefetch = {**_coverage_prefetch(app), key: bundle(condition)}
    uncovered = _answer_sign(app, [service_request("sr-x", "71046")], prefetch)
    assert uncovered.evaluations == [] and len(uncovered.body["systemActions"]) == 1
    assert uncovered.facts.record.of_type("Condition") == [] and uncovered.facts.record.of_type("Coverage")
    assert uncovered.facts.record.resolve("Condition/c-1") is condition
    covered = _answer_sign(app, [service_request("sr-1", "81420")], prefetch)
    assert covered.evaluations and covered.facts.record.of_type("Condition") == [condition]
