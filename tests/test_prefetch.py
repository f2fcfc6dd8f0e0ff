"""Prefetch semantics: absent → fetch (allow-listed only) or 412; null; OperationOutcome; pages; budget."""

from __future__ import annotations

import os
import re
import threading
import time
from pathlib import Path

import orjson
import pytest
import responses

from cdshooks import jsonio
from cdshooks import registry
from cdshooks import settings
from cdshooks.cds import protocol
from cdshooks.fetch import prefetch
from conftest import bundle
from conftest import full_prefetch
from conftest import hook_request
from conftest import make_app
from conftest import patient
from conftest import service_request
from netfaults import DrippingServer
from netfaults import finishes_within

FHIR = "https://ehr.example.org/fhir"
SIGN = "/cds-services/medical-policy-order-sign"


@pytest.fixture
def fetching_app(tmp_path):
    return make_app(tmp_path, FHIR_ALLOWLIST=FHIR, TODAY="2025-03-05")


def fetch_request(**extra):
    body = hook_request(orders=[service_request("sr-1", "81420")])
    body["fhirServer"] = FHIR
    body["fhirAuthorization"] = {"access_token": "tok-abc", "token_type": "Bearer", "expires_in": 300,
                                 "scope": "patient/*.read", "subject": "cds-service"}
    body.update(extra)
    return body


def ga_observation(oid="ga-1", weeks=8, when="2025-03-01"):
    return {"resourceType": "Observation", "id": oid, "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "49051-6"}]},
            "effectiveDateTime": when,
            "valueQuantity": {"value": weeks, "unit": "wk", "system": "http://unitsofmeasure.org", "code": "wk"}}


def evaluation(response):
    return response.get_json()["cards"][0]["extension"]["cdshooks.evaluation"]


@responses.activate
def test_absent_keys_are_fetched_from_the_fhir_server_with_the_token(fetching_app):
    responses.get(f"{FHIR}/Patient/pat-1", json=patient())
    responses.get(re.compile(rf"{re.escape(FHIR)}/Observation\?.*"), json=bundle(ga_observation()))
    responses.get(re.compile(rf"{re.escape(FHIR)}/\w+\?.*"), json={"resourceType": "Bundle", "type": "searchset"})
    response = fetching_app.test_client().post(SIGN, json=fetch_request())
    assert response.status_code == 200
    assert evaluation(response)["outcome"] == "too-early"
    assert all(call.request.headers["Authorization"] == "Bearer tok-abc" for call in responses.calls)
    assert any("/Observation?patient=pat-1" in call.request.url for call in responses.calls)


@responses.activate
def test_absent_required_key_is_412_when_the_fhir_server_fails(fetching_app):
    responses.get(re.compile(rf"{re.escape(FHIR)}/.*"), status=500)
    response = fetching_app.test_client().post(SIGN, json=fetch_request())
    assert response.status_code == 412
    assert "HTTP 500" in response.get_json()["issue"][0]["diagnostics"]


@responses.activate
def test_fhir_server_not_on_the_allow_list_is_never_called(tmp_path):
    app = make_app(tmp_path, FHIR_ALLOWLIST="https://other.example.org/fhir")
    response = app.test_client().post(SIGN, json=fetch_request())
    assert response.status_code == 412
    assert len(responses.calls) == 0
    assert "ALLOWLIST" in response.get_json()["issue"][0]["diagnostics"]


@responses.activate
def test_empty_allow_list_makes_no_outbound_calls(tmp_path):
    response = make_app(tmp_path).test_client().post(SIGN, json=fetch_request())
    assert response.status_code == 412 and len(responses.calls) == 0


def test_null_key_means_no_data_and_is_not_fetched(fetching_app):
    body = fetch_request(prefetch=full_prefetch(fetching_app))
    with responses.RequestsMock() as mock:  # any call would fail the test
        response = fetching_app.test_client().post(SIGN, json=body)
        assert len(mock.calls) == 0
    assert response.status_code == 200
    result = evaluation(response)
    assert result["decision"] == "unknown"
    assert {"MN-1", "MN-3"} <= set(result["documentation"])


def test_operation_outcome_makes_its_data_unavailable_not_an_error(fetching_app):
    oo = {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "timeout"}]}
    body = hook_request(prefetch=full_prefetch(fetching_app, observations=oo))
    response = fetching_app.test_client().post(SIGN, json=body)
    assert response.status_code == 200
    cards = response.get_json()["cards"]
    result = cards[0]["extension"]["cdshooks.evaluation"]
    mn3 = next(c for c in result["criteria"] if c["id"] == "MN-3")
    assert mn3["result"] == "unknown" and "unavailable" in mn3["note"]
    assert any("could not be read (Observation)" in card["summary"] for card in cards)


@pytest.mark.parametrize("as_sent", [False, True], ids=["dict", "deferred"])
def test_only_the_slots_a_call_reads_are_searched_for_an_error_outcome(fetching_app, as_sent):
    oo = {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "timeout"}]}
    body = hook_request(prefetch=full_prefetch(fetching_app, observations=bundle(ga_observation(), oo)))
    if as_sent:   # as the hook route parses it: slots parsed only when read
        body = jsonio.loads_deferring(orjson.dumps(body), "prefetch")
    request = protocol.parse_request(body, "order-sign", 100, 100).request
    with fetching_app.app_context():
        templates, config = registry.get().templates, settings.get()
    key = next(t.key for t in templates if t.resource_type == "Observation")
    deadline = time.monotonic() + 3

    def state(examine):
        return prefetch.resolve(request, templates, frozenset(), config, deadline, examine=examine)[key].state
    assert state(frozenset()) == "data"   # not read by the call: its entries are not visited
    if as_sent:
        assert key not in request.prefetch._read   # nor parsed
    assert state(None) == state(frozenset({key})) == "unavailable"


@responses.activate
def test_paginated_searchset_is_followed(fetching_app):
    first = bundle(ga_observation("ga-old", 4, "2025-01-01"))
    first["link"] = [{"relation": "next", "url": f"{FHIR}/Observation?page=2"}]
    responses.get(f"{FHIR}/Observation?page=2", json=bundle(ga_observation("ga-new", 8, "2025-03-01")))
    body = hook_request(prefetch=full_prefetch(fetching_app, observations=first))
    body["fhirServer"] = FHIR
    response = fetching_app.test_client().post(SIGN, json=body)
    assert response.status_code == 200
    mn3 = next(c for c in evaluation(response)["criteria"] if c["id"] == "MN-3")
    assert mn3["evidence"][0]["reference"] == "Observation/ga-new"
    assert len(responses.calls) == 1


@responses.activate
def test_next_page_that_fails_makes_the_key_unavailable(fetching_app):
    first = bundle(ga_observation())
    first["link"] = [{"relation": "next", "url": f"{FHIR}/Observation?page=2"}]
    responses.get(f"{FHIR}/Observation?page=2", status=503)
    body = hook_request(prefetch=full_prefetch(fetching_app, observations=first))
    body["fhirServer"] = FHIR
    response = fetching_app.test_client().post(SIGN, json=body)
    mn3 = next(c for c in evaluation(response)["criteria"] if c["id"] == "MN-3")
    assert mn3["result"] == "unknown"


def test_slow_fhir_server_cannot_push_the_call_past_the_budget(tmp_path):
    app = make_app(tmp_path, FHIR_ALLOWLIST=FHIR, TIME_BUDGET_MS=300)

    def slow(request):
        time.sleep(1.5)
        return 200, {}, '{"resourceType": "Bundle", "type": "searchset"}'

    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.add_callback(responses.GET, re.compile(rf"{re.escape(FHIR)}/.*"), callback=slow)
        started = time.monotonic()
        response = app.test_client().post(SIGN, json=fetch_request())
        elapsed = time.monotonic() - started
    assert response.status_code == 412
    assert "time budget" in response.get_json()["issue"][0]["diagnostics"]
    assert elapsed < 1.2


def test_template_tokens_are_rendered_from_the_context():
    request = prefetch.HookRequest.model_validate(hook_request(userId="PractitionerRole/role-9"))
    assert prefetch.render("Condition?patient={{context.patientId}}", request) == "Condition?patient=pat-1"
    assert prefetch.render("X?r={{userPractitionerRoleId}}", request) == "X?r=role-9"
    assert prefetch.render("X?p={{userPractitionerId}}", request) is None
    assert prefetch.render("Encounter/{{context.encounterId}}", request) is None


def _sockets_to(port: int) -> int:
    """How many sockets this process holds open to ``port`` on loopback (client side)."""
    inodes = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    count = 0
    for line in Path("/proc/self/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[2].split(":")[1], 16) == port and fields[9] in inodes:
            count += 1
    return count


def _prefetch_threads(before=frozenset()) -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("prefetch") and t not in before]


@pytest.mark.parametrize("drip_head", [False, True])
def test_a_dripping_fhir_server_leaves_no_thread_or_socket_behind(tmp_path, drip_head):
    server = DrippingServer(interval=0.1, drip_head=drip_head)
    base = f"http://127.0.0.1:{server.port}/fhir"
    app = make_app(tmp_path, FHIR_ALLOWLIST=base, TIME_BUDGET_MS=500)
    client = app.test_client()
    try:
        before = frozenset(threading.enumerate())  # earlier tests' mocked slow servers may still sleep
        for _ in range(3):
            finished, response = finishes_within(10, client.post, SIGN, json=fetch_request(fhirServer=base))
            assert finished, "the hook call waited on the dripping server"
            assert response.status_code == 412
            assert _prefetch_threads(before) == []
            assert _sockets_to(server.port) == 0
        assert server.connections >= 8
    finally:
        server.close()


def test_fetches_still_queued_at_the_deadline_are_unavailable_not_a_server_error(tmp_path):
    release = threading.Event()
    jobs = {f"key-{i}": (lambda *_: release.wait(5), None) for i in range(12)}  # 8 run, 4 wait in the queue
    request = prefetch.HookRequest.model_validate(hook_request())
    app = make_app(tmp_path)
    try:
        slots = prefetch._run(jobs, request, settings.get_from(app), time.monotonic() + 0.05)
    finally:
        release.set()
    assert {slot.state for slot in slots.values()} == {"unavailable"} and len(slots) == 12
    assert {slot.reason for slot in slots.values()} == {"time budget exhausted"}
