"""Allow-list matching on normalized URLs; redirects and size limits of the FHIR client."""

from __future__ import annotations

import time

import pytest
import responses

from cdshooks.fetch import outbound
from netfaults import DrippingServer
from netfaults import finishes_within

ALLOW = ("https://ehr.example/fhir",)


@pytest.mark.parametrize("url", [
    "https://ehr.example/fhir/Patient/1",
    "https://EHR.example/fhir/Condition?patient=1",
    "HTTPS://ehr.example:443/fhir/Observation",
    "https://ehr.example/fhir",
    "https://ehr.example//fhir//Patient/1",
])
def test_urls_under_the_allowed_base_are_allowed(url):
    assert outbound.is_allowed(url, ALLOW)


@pytest.mark.parametrize("url", [
    "https://ehr.example.evil/fhir/Patient/1",
    "https://ehr.example@evil.example/fhir/Patient/1",
    "https://user:pw@ehr.example/fhir/Patient/1",
    "http://ehr.example/fhir/Patient/1",
    "https://ehr.example:8443/fhir/Patient/1",
    "https://ehr.example/fhirx/Patient/1",
    "https://ehr.example/other",
    "https://[::1]/fhir/Patient/1",
    "ftp://ehr.example/fhir",
    "https://ehr.example:notaport/fhir",
    "not a url",
])
def test_lookalike_urls_are_refused(url):
    assert not outbound.is_allowed(url, ALLOW)


def test_ipv6_literal_base_matches_only_itself():
    assert outbound.is_allowed("https://[2001:db8::1]/fhir/Patient/1", ("https://[2001:db8::1]/fhir",))
    assert not outbound.is_allowed("https://[2001:db8::2]/fhir/Patient/1", ("https://[2001:db8::1]/fhir",))


def client(**kwargs):
    return outbound.FhirClient(ALLOW, "tok", time.monotonic() + 5, kwargs.get("max_bytes", 10_000))


@responses.activate
def test_redirect_off_the_allow_list_is_not_followed():
    responses.get("https://ehr.example/fhir/Patient/1", status=302,
                  headers={"Location": "https://evil.example/steal"})
    with pytest.raises(outbound.FetchError, match="not on CDSHOOKS_FHIR_ALLOWLIST"):
        client().get("https://ehr.example/fhir/Patient/1")
    assert len(responses.calls) == 1


@responses.activate
def test_redirect_within_the_allow_list_is_followed():
    responses.get("https://ehr.example/fhir/Patient/1", status=301,
                  headers={"Location": "/fhir/Patient/1b"})
    responses.get("https://ehr.example/fhir/Patient/1b", json={"resourceType": "Patient", "id": "1b"})
    assert client().get("https://ehr.example/fhir/Patient/1")["id"] == "1b"


@responses.activate
def test_oversized_response_is_refused():
    responses.get("https://ehr.example/fhir/Patient/1", body=b"{" + b" " * 20_000 + b"}")
    with pytest.raises(outbound.FetchError, match="exceeds"):
        client(max_bytes=1000).get("https://ehr.example/fhir/Patient/1")


@responses.activate
def test_not_found_is_no_data():
    responses.get("https://ehr.example/fhir/Patient/1", status=404)
    assert client().get("https://ehr.example/fhir/Patient/1") is None


@responses.activate
def test_errors_name_the_url_without_its_query():
    responses.get("https://ehr.example/fhir/Condition", status=500)
    with pytest.raises(outbound.FetchError) as caught:
        client().get("https://ehr.example/fhir/Condition?patient=secret-id")
    assert "secret-id" not in str(caught.value)


def test_a_read_from_a_dripping_server_ends_at_the_deadline():
    server = DrippingServer(interval=0.05)
    fhir = outbound.FhirClient((f"http://127.0.0.1:{server.port}",), None, time.monotonic() + 0.5, 10_000_000)
    try:
        finished, outcome = finishes_within(10, fhir.get, f"http://127.0.0.1:{server.port}/Patient?x=1")
        assert finished, "the read outlived the deadline"
        assert isinstance(outcome, outbound.FetchError) and "time budget" in str(outcome)
    finally:
        fhir.close()
        server.close()


def test_the_allow_list_refusal_names_the_url_with_its_port_and_without_its_query():
    fhir = outbound.FhirClient(("http://127.0.0.1:9130/other",), None, time.monotonic() + 5, 1000)
    with pytest.raises(outbound.FetchError) as error:
        fhir.get("http://user:pw@127.0.0.1:9130/fhir/Patient?patient=pat-1")
    fhir.close()
    assert "http://127.0.0.1:9130/fhir/Patient is not on" in str(error.value)
    assert "pat-1" not in str(error.value) and "pw" not in str(error.value)


@responses.activate
def test_post_creates_with_the_token_and_reads_the_new_reference_from_location_or_body():
    responses.post("https://ehr.example/fhir/QuestionnaireResponse", status=201,
                   headers={"Location": "https://ehr.example/fhir/QuestionnaireResponse/77/_history/1"})
    resource = {"resourceType": "QuestionnaireResponse", "status": "completed"}
    assert client().post("https://ehr.example/fhir/QuestionnaireResponse", resource) == "QuestionnaireResponse/77"
    sent = responses.calls[0].request
    assert sent.headers["Authorization"] == "Bearer tok" and sent.headers["Content-Type"] == "application/fhir+json"
    responses.post("https://ehr.example/fhir/QuestionnaireResponse", status=200, json={"resourceType": "x", "id": "9"})
    assert client().post("https://ehr.example/fhir/QuestionnaireResponse", resource) == "QuestionnaireResponse/9"


@responses.activate
def test_post_is_refused_off_the_allow_list_and_redirects_are_not_followed():
    with pytest.raises(outbound.FetchError, match="not on CDSHOOKS_FHIR_ALLOWLIST"):
        client().post("https://evil.example/fhir/QuestionnaireResponse", {"resourceType": "QuestionnaireResponse"})
    responses.post("https://ehr.example/fhir/QuestionnaireResponse", status=307,
                   headers={"Location": "https://evil.example/fhir/QuestionnaireResponse"})
    with pytest.raises(outbound.FetchError, match="HTTP 307"):
        client().post("https://ehr.example/fhir/QuestionnaireResponse", {"resourceType": "QuestionnaireResponse"})
    assert len(responses.calls) == 1
