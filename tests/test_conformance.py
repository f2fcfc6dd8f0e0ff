"""The Inferno Da Vinci CRD test kit's server checks, run on the kit's own request bodies.

Bodies: ``conformance/crd-kit-requests/`` (the kit's RI preset), and variants of its order-sign
bodies whose orders our policies cover. Coverage-information is validated against the CRD 2.0.1
package (``conformance/davinci-crd-2.0.1/``) by ``crd_profile``. Skipped when ``../shared`` is absent.
"""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path

import pytest

from cdshooks import registry
from cdshooks.policy import assertions
from conftest import ROOT
from conftest import make_app
from crd_profile import URL
from crd_profile import CoverageInformationProfile

SPEC_DIR = os.environ.get("CDSHOOKS_SPEC_DIR")
SHARED = Path(SPEC_DIR).parent if SPEC_DIR else ROOT.parent / "shared"
KIT = SHARED / "conformance" / "crd-kit-requests"
PACKAGE = SHARED / "conformance" / "davinci-crd-2.0.1"
pytestmark = pytest.mark.skipif(not SPEC_DIR and not KIT.is_dir(),
                                reason="../shared/conformance is not beside the project")

BLUEBUTTON_HCPCS = "https://bluebutton.cms.gov/resources/codesystem/hcpcs"
CPT = "http://www.ama-assn.org/go/cpt"
ORDER_TYPES = {"DeviceRequest", "MedicationRequest", "NutritionOrder", "ServiceRequest", "VisionPrescription"}
# (order-sign body, system, code, policy that covers it): the kit's orders recoded to ones we have policies for
VARIANTS = [
    (0, BLUEBUTTON_HCPCS, "E0783", "intrathecal-pain-pump"),
    (1, CPT, "81420", "prenatal-cfdna-screening"),
    (1, BLUEBUTTON_HCPCS, "J1442", "colony-stimulating-factors"),
    (1, CPT, "27280", "si-joint-fusion-open"),
]


def kit_bodies(hook: str) -> list[dict]:
    bodies = []
    for path in sorted(KIT.glob("*.json")):
        loaded = json.loads(path.read_text(encoding="utf-8"))
        bodies += [b for b in (loaded if isinstance(loaded, list) else [loaded]) if b["hook"] == hook]
    return bodies


def variant(index: int, system: str, code: str, templates) -> dict:
    """A kit order-sign body whose order is recoded; every other advertised key answered as 'nothing found'."""
    body = copy.deepcopy(kit_bodies("order-sign")[index])
    order = body["context"]["draftOrders"]["entry"][0]["resource"]
    element = "codeCodeableConcept" if order["resourceType"] == "DeviceRequest" else "code"
    order[element] = {"coding": [{"system": system, "code": code}]}
    for template in templates:
        body["prefetch"].setdefault(template.key, None)
    return body


@pytest.fixture(scope="module")
def profile():
    return CoverageInformationProfile(PACKAGE)


@pytest.fixture
def kit(tmp_path):
    app = make_app(tmp_path, TODAY="2026-03-01")
    client = app.test_client()
    services = {s["hook"]: s for s in client.get("/cds-services").get_json()["services"]}
    with app.app_context():
        templates = registry.get().templates
    return client, services, templates


def call(client, service, body):
    response = client.post(f"/cds-services/{service['id']}", json=body)
    assert response.status_code == 200, response.get_json()      # kit test 1: every body answers 200
    return response.get_json()


def order_sign_bodies(templates):
    return [(f"kit[{i}]", b) for i, b in enumerate(kit_bodies("order-sign"))] + [
        (f"{policy} {code}", variant(i, system, code, templates)) for i, system, code, policy in VARIANTS]


def check_response(response: dict, hook: str) -> None:
    """Kit test 5 (service response) and 6 (card optional fields)."""
    assert isinstance(response["cards"], list)
    if hook == "order-sign":
        assert isinstance(response["systemActions"], list)
    for card in response["cards"]:
        assert isinstance(card["summary"], str) and len(card["summary"]) < 140
        assert card["indicator"] in ("info", "warning", "critical")
        assert card["source"]["label"] and card["source"]["topic"]["code"] and card["source"]["topic"]["system"]
        if card.get("suggestions"):
            assert card["selectionBehavior"] in ("at-most-one", "any")
            assert all(s["label"] and s["actions"] for s in card["suggestions"])
        for link in card.get("links", []):
            assert link["label"] and link["url"] and link["type"] in ("absolute", "smart")
        for reason in card.get("overrideReasons", []):
            assert reason["code"] and reason["system"] and reason["display"]
    for action in response.get("systemActions", []):
        assert action["type"] in ("create", "update", "delete") and action["description"]


def coverage_extensions(resource: dict) -> list[dict]:
    return [e for e in resource.get("extension", []) if e["url"] == URL]


def test_every_order_sign_answer_carries_valid_coverage_information_for_every_order(kit, profile):
    client, services, templates = kit
    for name, body in order_sign_bodies(templates):
        response = call(client, services["order-sign"], body)
        check_response(response, "order-sign")
        drafts = {f"{e['resource']['resourceType']}/{e['resource']['id']}": e["resource"]
                  for e in body["context"]["draftOrders"]["entry"]}
        updates = {f"{a['resource']['resourceType']}/{a['resource']['id']}": a for a in response["systemActions"]}
        assert set(updates) == set(drafts), name                  # one update per order, none missing
        for reference, action in updates.items():
            assert action["type"] == "update" and action["resource"]["resourceType"] in ORDER_TYPES
            extensions = coverage_extensions(action["resource"])
            assert extensions, name
            for ext in extensions:
                assert profile.problems(ext) == [], (name, ext)
            # kit test 11: one coverage, one coverage-assertion-id
            ids = {p["valueString"] for e in extensions for p in e["extension"] if p["url"] == "coverage-assertion-id"}
            assert len(ids) == 1, name
            # the update is the draft plus the extension, nothing else changed (CRD resp-37)
            draft = drafts[reference]
            assert {k: v for k, v in action["resource"].items() if k != "extension"} == \
                {k: v for k, v in draft.items() if k != "extension"}, name
            assert [e for e in action["resource"]["extension"] if e["url"] != URL] == draft.get("extension", [])


def test_the_variants_are_answered_by_the_policy_that_covers_them(kit):
    client, services, templates = kit
    for index, system, code, policy in VARIANTS:
        response = call(client, services["order-sign"], variant(index, system, code, templates))
        (action,) = response["systemActions"]
        assert policy in action["description"]
        assert any(c.get("extension", {}).get("cdshooks.evaluation", {}).get("policy", {}).get("id") == policy
                   for c in response["cards"])


def test_the_kits_orders_no_policy_covers_get_the_deployment_statement_and_an_instructions_card(kit):
    client, services, _ = kit
    for body in kit_bodies("order-sign"):
        response = call(client, services["order-sign"], body)
        (action,) = response["systemActions"]
        parts = {p["url"]: p for p in coverage_extensions(action["resource"])[0]["extension"]}
        assert parts["covered"]["valueCode"] == "conditional" and parts["pa-needed"]["valueCode"] == "no-auth"
        assert parts["coverage"]["valueReference"] == {"reference": "Coverage/cov015"}
        assert "No medical policy" in parts["reason"]["valueCodeableConcept"]["text"]
        # kit test 9: an Instructions card (no links, no suggestions)
        assert any(not c.get("links") and not c.get("suggestions") for c in response["cards"])


def test_across_the_kits_hooks_the_three_required_response_types_appear(kit):
    """The kit's cross-hook group: an External Reference card, an Instructions card, a coverage-info action."""
    client, services, templates = kit
    responses = [call(client, services["order-sign"], b) for _, b in order_sign_bodies(templates)]
    cards = [c for r in responses for c in r["cards"]]
    assert any(c.get("links") and not c.get("suggestions") and all(li["type"] == "absolute" for li in c["links"])
               for c in cards)
    assert any(not c.get("links") and not c.get("suggestions") for c in cards)
    assert any(coverage_extensions(a["resource"]) for r in responses for a in r["systemActions"])


def test_card_types_sent_are_the_ones_discovery_offers_and_each_option_switches_its_cards_off(kit):
    client, services, templates = kit
    for hook in ("order-sign", "order-select"):
        offered = {o["code"]: o for o in services[hook]["extension"]["davinci-crd.configuration-options"]}
        assert all(o["type"] == "boolean" and o["default"] is True for c, o in offered.items() if c != "max-cards")
        for name, body in order_sign_bodies(templates):
            body = copy.deepcopy(body)
            if hook == "order-select":
                body["hook"] = "order-select"
                body["context"]["selections"] = [f"{e['resource']['resourceType']}/{e['resource']['id']}"
                                                 for e in body["context"]["draftOrders"]["entry"]]
            cards = call(client, services[hook], body)["cards"]
            sent = {c["source"]["topic"]["code"] for c in cards}
            assert sent <= offered.keys(), (hook, name, sent)
            for card_type in sent:
                body["extension"] = {"davinci-crd.configuration": {card_type: False}}
                off = call(client, services[hook], body)
                assert card_type not in {c["source"]["topic"]["code"] for c in off["cards"]}, (hook, name)


def test_a_second_call_with_the_returned_orders_sends_no_repeated_update(kit):
    client, services, templates = kit
    for name, body in order_sign_bodies(templates):
        first = call(client, services["order-sign"], body)
        again = copy.deepcopy(body)
        again["context"]["draftOrders"]["entry"] = [{"resource": a["resource"]} for a in first["systemActions"]]
        second = call(client, services["order-sign"], again)
        assert second["systemActions"] == [], name
        assert not any(c["source"]["topic"]["code"] == "coverage-info" and not c.get("links")
                       for c in second["cards"]), name   # nor the instructions card for orders already told


def test_the_kits_order_select_bodies_answer_with_cards_only_once_the_fhir_server_is_reachable(tmp_path):
    """The kit's order-select bodies carry no patient prefetch: the service reads it from fhirServer."""
    import responses as mock

    app = make_app(tmp_path, FHIR_ALLOWLIST="https://inferno.healthit.gov/reference-server/r4")
    client = app.test_client()
    service = next(s for s in client.get("/cds-services").get_json()["services"] if s["hook"] == "order-select")
    with mock.RequestsMock() as server:
        server.get("https://inferno.healthit.gov/reference-server/r4/Patient/pat015",
                   json={"resourceType": "Patient", "id": "pat015"})
        for body in kit_bodies("order-select"):
            response = call(client, service, body)
            check_response(response, "order-select")
            assert "systemActions" not in response


def _ext(*parts):
    return {"url": URL, "extension": [
        {"url": "coverage", "valueReference": {"reference": "Coverage/c"}},
        *parts,
        {"url": "date", "valueDate": "2026-03-01"},
        {"url": "coverage-assertion-id", "valueString": "a-1"}]}


@pytest.mark.parametrize("parts, problem", [
    ([], "covered: 0 repetitions"),
    ([{"url": "covered", "valueCode": "covered"}], "crd-ci-q2"),
    ([{"url": "covered", "valueCode": "covered"}, {"url": "pa-needed", "valueCode": "no-auth"},
      {"url": "info-needed", "valueCode": "OTH"}], "crd-ci-q3"),
    ([{"url": "covered", "valueCode": "indeterminate"}], "not in required value set"),     # a 2.2-only code
    ([{"url": "covered", "valueCode": "not-covered"},
      {"url": "doc-needed", "valueCode": "patient"}], "not in required"),
    ([{"url": "covered", "valueString": "not-covered"}], "value type"),
    ([{"url": "covered", "valueCode": "not-covered"},
      {"url": "expiry-date", "valueDate": "2026-04-01"}], "not defined"),
    ([{"url": "covered", "valueCode": "not-covered"},
      {"url": "questionnaire", "valueCanonical": "https://q"}], "crd-ci-q1"),
    ([{"url": "covered", "valueCode": "not-covered"},
      {"url": "detail", "extension": [{"url": "code", "valueCodeableConcept": {"text": "x"}}]}],
     "value: 0 repetitions"),
    ([{"url": "covered", "valueCode": "covered"}, {"url": "pa-needed", "valueCode": "satisfied"}], "crd-ci-q5"),
])
def test_the_profile_validator_catches_what_the_package_forbids(profile, parts, problem):
    assert any(problem in p for p in profile.problems(_ext(*parts))), profile.problems(_ext(*parts))


def test_the_profile_validator_accepts_the_kits_own_examples_shape(profile):
    assert profile.problems(_ext({"url": "covered", "valueCode": "conditional"},
                                 {"url": "pa-needed", "valueCode": "no-auth"},
                                 {"url": "doc-needed", "valueCode": "clinical"},
                                 {"url": "doc-purpose", "valueCode": "withorder"},
                                 {"url": "info-needed", "valueCode": "performer"})) == []


def test_every_code_we_can_send_is_in_the_crd_2_0_1_packages_value_sets(profile):
    from typing import get_args

    from cdshooks.policy.model import Coverage
    from cdshooks.respond import crd

    base = "http://hl7.org/fhir/us/davinci-crd/ValueSet/"
    codes = lambda name: {c for _, c in profile.valuesets.codes(base + name)}  # noqa: E731
    bound = {"covered": "coverageInfo", "pa-needed": "coveragePaDetail", "doc-needed": "AdditionalDocumentation",
             "doc-purpose": "DocReason", "info-needed": "informationNeeded"}
    for name, field in Coverage.model_fields.items():
        allowed = {a for arg in get_args(field.annotation) for a in get_args(arg)} | set(get_args(field.annotation))
        element = field.alias or name
        assert {a for a in allowed if isinstance(a, str)} <= codes(bound[element]), element
    assert assertions.REASON_CODES["2.0"] == codes("coverageAssertionReasons")
    card_types = {(crd.CARD_TOPIC_SYSTEMS["2.0"], t) for t in crd.CARD_TYPE_NAMES}
    assert card_types <= profile.valuesets.codes(base + "cardType")
