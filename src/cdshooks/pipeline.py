"""One hook call, end to end: parse → applicable policies → prefetch → record → evaluate → respond.

Pure: :func:`answer` reads only what it is given (the registry, the configuration and the
:class:`Call` the view built) and imports nothing of Flask, so the CLI's ``eval`` and the server's
warm-up call it as the view does. Keeping form launches is the one side effect, through the
``launches`` port of the call (the web layer's form store; None: cards link the blank forms).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from dataclasses import field
from typing import Protocol

from cdshooks.cds import protocol
from cdshooks.errors import CrdBadRequest
from cdshooks.errors import InvalidRequest
from cdshooks.facts.facts import FactContext
from cdshooks.fetch import prefetch
from cdshooks.fhir import record as record_module
from cdshooks.policy import applicability
from cdshooks.policy.logic import UNKNOWN
from cdshooks.respond import cards as respond
from cdshooks.respond import coverage
from cdshooks.respond import crd

log = logging.getLogger(__name__)


class Launches(Protocol):
    """Where a call keeps its documentation-form launches (``web.forms.Launches``)."""

    def open(self, evaluations, request, order_labels: dict) -> dict[int, str]:
        """Keep a launch per evaluation with open documentation; ``id(evaluation)`` → ref ({} on failure)."""


@dataclass(frozen=True)
class Call:
    """One hook call as the view received it."""

    service: object                # registry.Service: its id and hook
    body: dict                     # the parsed JSON body
    base_url: str                  # the service's public base URL (links, canonicals)
    started: float = field(default_factory=time.perf_counter)   # arrival: the time budget runs from here
    launches: Launches | None = None


@dataclass(frozen=True)
class Answer:
    """Everything one call produced: the request, the evaluations behind the response, the response."""

    parsed: protocol.ParsedRequest
    evaluations: list
    facts: FactContext
    cards: list
    body: dict

    def audit_fields(self) -> dict:
        """What the audit row keeps of a call: ids and decisions, never contents or tokens."""
        return {**request_ids(self.parsed), "card_ids": [c.uuid for c in self.cards],
                "decisions": [_decision(e) for e in self.evaluations]}


def offline_call(service, body: dict, config, launches: Launches | None = None) -> Call:
    """A call made outside any HTTP request (``cdshooks eval``, the warm-up): links use the configured
    base URL, else the one a request to this machine would carry."""
    return Call(service, body, (config.PUBLIC_BASE_URL or "http://localhost").rstrip("/"), launches=launches)


def request_ids(parsed: protocol.ParsedRequest) -> dict:
    return {"hook_instance": parsed.request.hookInstance, "patient_id": parsed.patient_id,
            "order_refs": [o.reference for o in parsed.in_scope]}


def parse(config, call: Call) -> protocol.ParsedRequest:
    """The call's request, validated for its service's hook (422 naming the field)."""
    return protocol.parse_request(call.body, call.service.hook, config.MAX_DRAFT_ORDERS, config.MAX_JSON_DEPTH)


def answer(registry, config, call: Call) -> Answer:
    """Run the whole pipeline for one request (CRD 2.2 turns every 422 into a 400, hook-13)."""
    try:
        return _answer(registry, config, call)
    except InvalidRequest as exc:
        if protocol.requested_crd_version(call.body) == "2.2":
            raise CrdBadRequest.of(exc) from None
        raise


def _answer(loaded, config, call: Call) -> Answer:
    parsed = parse(config, call)
    today = config.today()
    matches = applicability.match_orders(loaded.policies, parsed.in_scope, parsed.draft_orders, today)
    coverage_keys = _coverage_keys(loaded, parsed)
    required = _required_keys(loaded, matches, parsed.hook)
    if parsed.request.crd_version == "2.2":   # 2.2: the Coverage is part of every coverage-information call
        required |= coverage_keys
    deadline = _deadline(call.started, config)
    read = _read_keys(loaded, matches, required | coverage_keys)
    slots = prefetch.resolve(parsed.request, loaded.templates, required, config, deadline, coverage_keys,
                             examine=None if matches else read)
    record = record_module.build(slots, loaded.slot_types, parsed.draft_orders, parsed.patient_id,
                                 read=read, defer_unread=not matches)
    if parsed.request.crd_version == "2.2" and coverage_keys:
        _payer_identified(slots, coverage_keys, record)
    base = FactContext(loaded.policies.facts.facts, record, today, loaded.policies.resources)
    evaluations = [applicability.evaluate(match, base, record) for match in applicability.confirmed(matches, base)]
    cards, actions = _respond(evaluations, record, parsed, loaded, config, call, today)
    body = protocol.response_body(parsed.hook, cards, actions, mirror=config.SANDBOX_SYSTEM_ACTIONS)
    return Answer(parsed, evaluations, base, cards, body)


def _coverage_keys(loaded, parsed) -> frozenset[str]:
    """The Coverage prefetch keys when this call sends coverage-information (order-sign, option on)."""
    if parsed.hook != "order-sign" or not parsed.request.crd_configuration.coverage_info:
        return frozenset()
    return loaded.keys_for({"Coverage"})


def _payer_identified(slots, keys, record) -> None:
    """CRD 2.2 hook-13: 400 unless there is an active Coverage whose payer carries an identifier."""
    key = sorted(keys)[0]
    if slots.get(key) is not None and slots[key].state == "unavailable":
        return   # the client could not read it: a technical problem, not a bad request
    active = coverage.active_coverage(record.of_type("Coverage"))
    if active is None:
        raise CrdBadRequest("no active Coverage for the patient (CRD 2.2 needs one to answer)", f"prefetch.{key}")
    if not coverage.has_payer_identifier(active, record.resolve):
        raise CrdBadRequest(f"{coverage.reference(active)} has no payor identifier, so the payer is not known "
                            "(CRD 2.2 hook-13)", f"prefetch.{key}")


def _deadline(started: float, config) -> float:
    """The call's deadline on the monotonic clock: its start plus the time budget."""
    elapsed = time.perf_counter() - started
    return time.monotonic() - elapsed + config.TIME_BUDGET_MS / 1000


def _required_keys(loaded, matches, hook: str) -> frozenset[str]:
    types = {"Patient"}
    for match in matches:
        types |= loaded.policies.resource_types_for(match.policy)
        types.add("QuestionnaireResponse")
        if hook == "order-sign" and match.policy.model.jurisdiction == "US":
            types.add("Coverage")
    return loaded.keys_for(types)


def _read_keys(loaded, matches, needed: frozenset[str]) -> frozenset[str]:
    """The prefetch keys whose resources this call reads: what it needs, and with any policy applying
    the types facts read only when sent (e.g. MedicationStatement beside MedicationRequest, D10)."""
    return needed | loaded.keys_for(loaded.policies.facts.optional_types) if matches else needed


_URGENCY = {"critical": 0, "warning": 1, "info": 2}


def _respond(evaluations, record, parsed, loaded, config, call: Call, today):
    request, base_url = parsed.request, call.base_url
    configuration, version = request.crd_configuration, request.crd_version
    shown = [e for e in evaluations if configuration.allows(e.match.policy.model.topic)]
    refs = {} if call.launches is None else call.launches.open(
        shown, request, {id(e): respond.order_label(e) for e in shown})
    cards = [respond.card(e, base_url, version, refs.get(id(e)) and f"{base_url}/forms/{refs[id(e)]}", parsed.hook)
             for e in shown]
    problem = respond.unavailable_card(record, cards[0].source.topic) if cards else None
    if problem is not None:
        cards.append(problem)
    actions = []
    active = coverage.active_coverage(record.of_type("Coverage"))
    if parsed.hook == "order-sign" and configuration.coverage_info and active is not None:
        statement = config.UNCOVERED_ORDERS
        actions, uncovered = _coverage(evaluations, record, parsed, loaded, active, base_url, today, statement)
        if uncovered and statement.card and version != "2.2":   # 2.2 resp-12: not again in a card
            payer = coverage.payer_name(active, record.resolve) or respond.SERVICE_LABEL
            cards.append(crd.uncovered_card(uncovered, statement, payer, version))
    if len(cards) > configuration.max_cards:  # keep the most pressing: critical, warning, info
        cards = sorted(cards, key=lambda c: _URGENCY[c.indicator])[: configuration.max_cards]
    return cards, actions


def _coverage(evaluations, record, parsed, loaded, active, base_url, today, statement):
    """Coverage-information updates for every order (CRD 2.0.1 hooks) under the ``active`` Coverage,
    and the orders that got the deployment's statement because no medical policy covers them."""
    unread = record.unavailable.keys()
    assertions = []
    for evaluation in evaluations:
        technical = evaluation.decision == UNKNOWN and bool(
            loaded.policies.resource_types_for(evaluation.match.policy) & unread)
        found = respond.coverage_assertion(evaluation, base_url, technical)
        if found is not None:
            assertions.append(found)
    covered = {a.order.reference for a in assertions}
    assertions += [crd.Assertion(o, statement.values(), "no medical policy applies")
                   for o in parsed.in_scope if o.reference not in covered]
    actions, updated = crd.actions(assertions, active, today, parsed.request.crd_version)
    return actions, [o for o in updated if o.reference not in covered]


def _decision(evaluation) -> dict:
    return {"order": evaluation.match.order.reference, "policy": evaluation.match.policy.id,
            "decision": evaluation.decision, "outcome": evaluation.outcome}
