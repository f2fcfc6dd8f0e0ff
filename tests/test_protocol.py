"""Request tolerance (sandbox shapes, DSTU2) and the response models' no-empty guarantees."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from cdshooks.cds import protocol
from cdshooks.errors import InvalidRequest
from conftest import hook_request
from conftest import service_request


def parse(body, hook="order-sign"):
    return protocol.parse_request(body, hook, max_draft_orders=100, max_depth=100)


def test_unknown_members_are_ignored():
    body = hook_request()
    body["somethingNew"] = {"a": 1}
    body["context"]["futureField"] = True
    assert parse(body).patient_id == "pat-1"


def test_bundle_without_type_and_sandbox_shapes_are_accepted():
    order = service_request("sr-1", "81420", category={"coding": [{"code": "x"}]},
                            reasonCode={"coding": [{}]})
    body = hook_request(orders=[order])
    del body["context"]["draftOrders"]["type"]
    parsed = parse(body)
    assert [o.reference for o in parsed.in_scope] == ["ServiceRequest/sr-1"]


def test_orders_without_intent_or_code_are_kept():
    order = {"resourceType": "MedicationRequest", "id": "request-123", "status": "draft",
             "subject": {"reference": "Patient/pat-1"}, "authoredOn": "2026-01-01"}
    assert parse(hook_request(orders=[order])).in_scope[0].reference == "MedicationRequest/request-123"


def test_dstu2_and_other_resource_types_are_ignored_not_errors():
    orders = [{"resourceType": "MedicationOrder", "id": "order-123"},
              {"resourceType": "NutritionOrder", "id": "n-1"}, service_request("sr-1", "81420")]
    parsed = parse(hook_request(orders=orders))
    assert [o.reference for o in parsed.draft_orders] == ["ServiceRequest/sr-1"]


def test_selection_of_an_ignored_type_is_accepted_and_evaluates_nothing():
    orders = [{"resourceType": "MedicationOrder", "id": "order-123"}, service_request("sr-1", "81420")]
    body = hook_request("order-select", orders=orders)
    body["context"]["selections"] = ["MedicationOrder/order-123"]
    parsed = parse(body, "order-select")
    assert parsed.in_scope == () and len(parsed.draft_orders) == 1


def test_order_select_evaluates_only_the_selections_in_their_order():
    orders = [service_request(f"sr-{i}", "81420") for i in range(3)]
    body = hook_request("order-select", orders=orders)
    body["context"]["selections"] = ["ServiceRequest/sr-2", "ServiceRequest/sr-0", "ServiceRequest/sr-2"]
    parsed = parse(body, "order-select")
    assert [o.reference for o in parsed.in_scope] == ["ServiceRequest/sr-2", "ServiceRequest/sr-0"]
    assert len(parsed.draft_orders) == 3


def test_order_sign_evaluates_every_draft():
    orders = [service_request(f"sr-{i}", "81420") for i in range(3)]
    assert len(parse(hook_request(orders=orders)).in_scope) == 3


def test_draft_orders_nested_too_deeply_are_refused():
    nested = {}
    node = nested
    for _ in range(200):
        node["x"] = {}
        node = node["x"]
    body = hook_request(orders=[service_request("sr-1", "81420", extension=[nested])])
    with pytest.raises(InvalidRequest):
        parse(body)


def test_fhir_authorization_token_never_appears_in_the_model_repr():
    body = hook_request(fhirServer="https://ehr.example/fhir")
    body["fhirServer"] = "https://ehr.example/fhir"
    body["fhirAuthorization"] = {"access_token": "secret-token-123", "token_type": "Bearer",
                                 "expires_in": 300, "scope": "patient/*.read", "subject": "svc"}
    parsed = parse(body)
    assert "secret-token-123" not in repr(parsed) and "secret-token-123" not in str(parsed.request)


def test_card_summary_over_139_characters_is_refused():
    with pytest.raises(ValidationError):
        protocol.Card(uuid="u", summary="x" * 140, indicator="info", source=protocol.Source(label="s"))


def test_card_with_suggestions_needs_selection_behavior():
    suggestion = protocol.Suggestion(label="Do it", uuid="s-1")
    with pytest.raises(ValidationError):
        protocol.Card(uuid="u", summary="s", indicator="info", source=protocol.Source(label="s"),
                      suggestions=[suggestion])


def test_empty_strings_are_refused_in_response_models():
    with pytest.raises(ValidationError):
        protocol.Coding(system="", code="x")


def test_order_sign_body_always_has_system_actions_and_order_select_never():
    assert protocol.response_body("order-sign", [], []) == {"cards": [], "systemActions": []}
    assert protocol.response_body("order-select", [], []) == {"cards": []}


@pytest.mark.parametrize("field, value", [
    ("hookInstance", "h" * 201), ("hookInstance", "abc\x00"), ("hookInstance", "abc\nINFO forged line"),
    ("context.patientId", "p" * 201), ("context.patientId", "p-\x00"),
])
def test_ids_that_cannot_be_stored_or_logged_as_sent_are_refused_naming_the_field(field, value):
    body = hook_request()
    if field == "hookInstance":
        body["hookInstance"] = value
    else:
        body["context"]["patientId"] = value
    with pytest.raises(InvalidRequest) as error:
        parse(body)
    assert error.value.expression == field


def test_a_dump_passes_a_cards_extension_on_as_built_with_the_same_json_pydantic_gives():
    import datetime as dt

    from cdshooks import jsonio

    extension = {"cdshooks.evaluation": {"policy": {"id": "p"}, "criteria": [{"id": "A", "evidence": ()}],
                                         "date": dt.date(2025, 6, 15), "note": None}}
    card = protocol.Card(uuid="u", summary="s", indicator="info", source=protocol.Source(label="l"),
                         extension=extension)
    dumped = protocol.dump(card)
    assert dumped["extension"] is card.extension
    assert jsonio.dumps(dumped) == jsonio.dumps(card.model_dump(exclude_none=True))


def test_a_dump_passes_an_actions_resource_on_as_built_in_its_fields_place():
    from cdshooks import jsonio

    action = protocol.Action(type="delete", description="d", resource={"resourceType": "ServiceRequest", "id": "x"},
                             resourceId="ServiceRequest/x")
    dumped = protocol.dump(action)
    assert dumped["resource"] is action.resource
    assert list(dumped) == ["type", "description", "resource", "resourceId"]
    assert jsonio.dumps(dumped) == jsonio.dumps(action.model_dump(exclude_none=True))
