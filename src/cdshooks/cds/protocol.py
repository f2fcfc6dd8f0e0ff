"""CDS Hooks 2.0 request and response models (order-select, order-sign).

Requests are parsed leniently where the CDS Hooks sandbox is sloppy (unknown members, missing
``Bundle.type``, non-R4 draft orders) and strictly where a request cannot be evaluated (missing
``hookInstance``, ``patientId``, ``draftOrders``; selections naming no draft order).  Responses
are built from models whose fields cannot hold ``null`` or empty values, so the 2.0 rule
"SHALL NOT be null or empty" holds by construction.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated
from typing import Any
from typing import Literal

from pydantic import AfterValidator
from pydantic import BaseModel
from pydantic import ConfigDict
from pydantic import Field
from pydantic import PlainValidator
from pydantic import SecretStr
from pydantic import StringConstraints
from pydantic import ValidationError
from pydantic import model_validator

from cdshooks.errors import InvalidRequest
from cdshooks.fhir.orders import DraftOrder

Text = Annotated[str, StringConstraints(min_length=1)]


def _printable(value: str) -> str:
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in value):
        raise ValueError("must not contain control characters")
    return value


# ids we store and log: bounded like their database columns, no control characters (NUL, newline)
Identifier = Annotated[str, StringConstraints(min_length=1, max_length=200), AfterValidator(_printable)]
ORDER_TYPES = frozenset({"MedicationRequest", "ServiceRequest", "DeviceRequest"})


def _json_object(value):
    """A JSON object as it arrived, its members not copied: a dict, or a body's members still to be
    parsed (``jsonio.Deferred``), which validating member by member would parse."""
    if value is None or isinstance(value, Mapping):
        return value
    raise ValueError("Input should be a valid dictionary")


JsonObject = Annotated[Any, PlainValidator(_json_object)]


# ----------------------------------------------------------------------------- requests
class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class FhirAuthorization(_Lenient):
    access_token: SecretStr  # SecretStr keeps the token out of reprs and logs
    token_type: str | None = None
    expires_in: int | None = None
    scope: str | None = None
    subject: str | None = None
    patient: str | None = None


class OrderContext(_Lenient):
    userId: Text | None = None
    patientId: Identifier
    encounterId: Text | None = None
    draftOrders: dict[str, Any]


class OrderSelectContext(OrderContext):
    selections: list[Text] = Field(min_length=1)


class CrdConfiguration(_Lenient):
    """Da Vinci CRD options a client may send (unknown codes are ignored, CRD dev-17).

    One boolean per CRD card type we can send (the policy model's topics; CRD 2.0.1 deviations:
    "offer configuration options for each type of card"); ``coverage-info`` also switches the
    coverage-information system actions.
    """

    coverage_info: bool = Field(True, alias="coverage-info")
    guideline: bool = True
    off_guideline: bool = Field(True, alias="off-guideline")
    appropriate_use: bool = Field(True, alias="appropriate-use")
    max_cards: int = Field(10, alias="max-cards", ge=0)   # CRD's example default; discovery reads it here

    def allows(self, card_type: str) -> bool:
        """Whether cards of this CRD card type (``source.topic.code``) may be sent."""
        return getattr(self, card_type.replace("-", "_"))


def requested_crd_version(body) -> str:
    """The CRD version a request asks for: "2.2" when it says so, else "2.0" (2.0.1 output)."""
    extension = body.get("extension") if isinstance(body, dict) else None
    asked = extension.get("davinci-crd.requestedVersion") if isinstance(extension, dict) else None
    return "2.2" if asked == "2.2" else "2.0"


class HookRequest(_Lenient):
    hook: Text
    hookInstance: Identifier
    fhirServer: Text | None = None
    fhirAuthorization: FhirAuthorization | None = None
    context: OrderContext
    prefetch: JsonObject = None   # its slots may still be unparsed (jsonio.loads_deferring)
    extension: dict[str, Any] | None = None

    @property
    def crd_version(self) -> str:
        return requested_crd_version({"extension": self.extension})

    @property
    def crd_configuration(self) -> CrdConfiguration:
        raw = (self.extension or {}).get("davinci-crd.configuration")
        try:
            return CrdConfiguration.model_validate(raw if isinstance(raw, dict) else {})
        except ValidationError:
            raise InvalidRequest("extension.davinci-crd.configuration has a value of the wrong type",
                                 "extension.davinci-crd.configuration") from None

    @model_validator(mode="after")
    def _server_with_authorization(self):
        if self.fhirAuthorization is not None and self.fhirServer is None:
            raise ValueError("fhirServer is required when fhirAuthorization is present")
        return self


class OrderSelectRequest(HookRequest):
    context: OrderSelectContext


@dataclass(frozen=True)
class ParsedRequest:
    """A conformant hook request with its draft orders and the orders in scope."""

    hook: str
    request: HookRequest
    draft_orders: tuple[DraftOrder, ...]     # all supported drafts (D8)
    in_scope: tuple[DraftOrder, ...]         # order-sign: all; order-select: the selections

    @property
    def patient_id(self) -> str:
        return self.request.context.patientId


def parse_request(body: dict, hook: str, max_draft_orders: int, max_depth: int) -> ParsedRequest:
    """Validate ``body`` as a request for ``hook``; raise :class:`InvalidRequest` naming the field."""
    if isinstance(body.get("hook"), str) and body["hook"] != hook:
        raise InvalidRequest(f"hook '{body['hook']}' does not match this service's hook '{hook}'", "hook")
    model = OrderSelectRequest if hook == "order-select" else HookRequest
    try:
        request = model.model_validate(body)
    except ValidationError as exc:
        raise invalid_request(exc) from None
    if depth_exceeds(body["context"], max_depth):
        raise InvalidRequest(f"context is nested deeper than {max_depth}", "context")
    entries = _bundle_entries(request.context.draftOrders)
    if len(entries) > max_draft_orders:
        raise InvalidRequest(
            f"context.draftOrders has {len(entries)} entries; the limit is {max_draft_orders}",
            "context.draftOrders.entry",
        )
    drafts, all_refs = _draft_orders(entries)
    in_scope = drafts
    if hook == "order-select":
        in_scope = _selected(request.context.selections, drafts, all_refs)
    return ParsedRequest(hook, request, drafts, in_scope)


def depth_exceeds(value, limit: int) -> bool:
    """Whether JSON ``value`` nests deeper than ``limit`` (iterative: no recursion on hostile input)."""
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            return True
        children = node.values() if isinstance(node, dict) else node
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return False


def invalid_request(exc: ValidationError) -> InvalidRequest:
    """Turn a pydantic error into a 422 naming the first offending field."""
    first = exc.errors()[0]
    path = _path(first["loc"])
    message = "; ".join(f"{_path(e['loc']) or 'body'}: {e['msg']}" for e in exc.errors()[:5])
    return InvalidRequest(message, path or None)


def _path(loc) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _bundle_entries(bundle: dict) -> list:
    if bundle.get("resourceType") != "Bundle":
        raise InvalidRequest("context.draftOrders must be a FHIR Bundle", "context.draftOrders.resourceType")
    entries = bundle.get("entry", [])
    if not isinstance(entries, list):
        raise InvalidRequest("context.draftOrders.entry must be an array", "context.draftOrders.entry")
    return entries


def _draft_orders(entries: list) -> tuple[tuple[DraftOrder, ...], frozenset[str]]:
    drafts, refs = [], set()
    for index, entry in enumerate(entries):
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if not isinstance(resource, dict) or not isinstance(resource.get("resourceType"), str):
            raise InvalidRequest(
                "each draftOrders entry needs a resource with a resourceType",
                f"context.draftOrders.entry[{index}].resource",
            )
        rid = resource.get("id")
        reference = f"{resource['resourceType']}/{rid}" if isinstance(rid, str) and rid else None
        if reference:
            refs.add(reference)
        if resource["resourceType"] in ORDER_TYPES:  # DSTU2/STU3 and other types are ignored
            label = reference or entry.get("fullUrl") or f"{resource['resourceType']}/#{index}"
            drafts.append(DraftOrder(str(label), resource, index))
    return tuple(drafts), frozenset(refs)


def _selected(selections: list[str], drafts, all_refs) -> tuple[DraftOrder, ...]:
    by_ref = {order.reference: order for order in drafts}
    for i, selection in enumerate(selections):
        if selection not in all_refs:
            raise InvalidRequest(
                f"selection '{selection}' names no order in context.draftOrders",
                f"context.selections[{i}]",
            )
    wanted = dict.fromkeys(selections)
    return tuple(by_ref[ref] for ref in wanted if ref in by_ref)


# ---------------------------------------------------------------------------- responses
class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Coding(_Strict):
    system: Text
    code: Text
    display: Text | None = None


class Source(_Strict):
    label: Text
    url: Text | None = None
    icon: Text | None = None
    topic: Coding | None = None


class Link(_Strict):
    label: Text
    url: Text
    type: Literal["absolute", "smart"]
    appContext: Text | None = None


class Action(_Strict):
    type: Literal["create", "update", "delete"]
    description: Text
    resource: dict[str, Any] | None = None
    resourceId: Text | None = None


class Suggestion(_Strict):
    label: Text
    uuid: Text
    isRecommended: bool | None = None
    actions: list[Action] | None = Field(None, min_length=1)


class Card(_Strict):
    uuid: Text
    summary: Annotated[str, StringConstraints(min_length=1, max_length=139)]
    detail: Text | None = None
    indicator: Literal["info", "warning", "critical"]
    source: Source
    suggestions: list[Suggestion] | None = Field(None, min_length=1)
    selectionBehavior: Literal["at-most-one", "any"] | None = None
    overrideReasons: list[Coding] | None = Field(None, min_length=1)
    links: list[Link] | None = Field(None, min_length=1)
    extension: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _conformance(self):
        if self.suggestions and not self.selectionBehavior:
            raise ValueError("suggestions require selectionBehavior (cds-resp-6)")
        if self.overrideReasons and any(not reason.display for reason in self.overrideReasons):
            raise ValueError("every override reason needs a display (cds-resp-4)")
        return self


class CdsResponse(_Strict):
    cards: list[Card]
    systemActions: list[Action] | None = None
    extension: dict[str, Any] | None = None


class ServiceDefinition(_Strict):
    hook: Literal["order-select", "order-sign"]
    id: Text
    title: Text
    description: Text
    prefetch: dict[str, Text]
    extension: dict[str, Any] | None = None


_FREE_FORM = ("resource", "extension")   # the dict[str, Any] fields: JSON values as built


def dump(model: BaseModel) -> dict:
    """Serialize one model: absent optionals omitted (the models admit no empty values).

    The free-form parts — FHIR resources in actions, extensions — are pruned where they are built and
    passed on as built, in their field's place: pydantic would copy them value by value to the same JSON
    (a card's evaluation is most of its size and was most of its dump).
    """
    free = {name: value for name in _FREE_FORM if (value := getattr(model, name, None)) is not None}
    if not free:
        return model.model_dump(exclude_none=True)
    typed = model.model_dump(exclude_none=True, exclude=set(free))
    return {name: free[name] if name in free else typed[name] for name in type(model).model_fields
            if name in free or name in typed}


def response_body(hook: str, cards: list[Card], system_actions: list[Action], mirror: bool = False) -> dict:
    """Return the hook response: ``cards`` always, ``systemActions`` always on order-sign.

    ``mirror`` also puts the actions under ``extension.systemActions``, the only place the CDS
    Hooks sandbox reads them (a development aid; conformant clients read the top level).
    """
    body: dict[str, Any] = {"cards": [dump(card) for card in cards]}
    if hook == "order-sign":
        body["systemActions"] = [dump(action) for action in system_actions]
        if mirror and body["systemActions"]:
            body["extension"] = {"systemActions": body["systemActions"]}
    return body
