"""One hook call, end to end: parse → applicable policies → prefetch → record → evaluate → respond."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from flask import g

from cdshooks import registry
from cdshooks import settings
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
from cdshooks.store import db as store
from cdshooks.web import forms
from cdshooks.web import http

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Answer:
    """Everything one call produced: the evaluations behind the response, and the response."""

    evaluations: list
    facts: FactContext
    body: dict


def handle(service, body: dict, call: dict) -> dict:
    """Answer ``body`` for ``service``; fill ``call`` with what the audit row and log line need."""
    return answer(service, body, call).body


def answer(service, body: dict, call: dict) -> Answer:
    """Run the whole pipeline for one request (CRD 2.2 turns every 422 into a 400, hook-13)."""
    try:
        return _answer(service, body, call)
    except InvalidRequest as exc:
        if protocol.requested_crd_version(body) == "2.2":
            raise CrdBadRequest.of(exc) from None
        raise


def _answer(service, body: dict, call: dict) -> Answer:
    config, loaded = settings.get(), registry.get()
    parsed = protocol.parse_request(body, service.hook, config.MAX_DRAFT_ORDERS, config.MAX_JSON_DEPTH)
    call.update(hookInstance=parsed.request.hookInstance, patient_id=parsed.patient_id,
                order_refs=[o.reference for o in parsed.in_scope])
    today = config.today()
    matches = applicability.match_orders(loaded.policies, parsed.in_scope, parsed.draft_orders, today)
    coverage_keys = _coverage_keys(loaded, parsed)
    required = _required_keys(loaded, matches, parsed.hook)
    if parsed.request.crd_version == "2.2":   # 2.2: the Coverage is part of every coverage-information call
        required |= coverage_keys
    slots = prefetch.resolve(parsed.request, loaded.templates, required, config, _deadline(config), coverage_keys)
    record = record_module.build(slots, loaded.slot_types, parsed.draft_orders, parsed.patient_id,
                                 read=_read_keys(loaded, matches, required | coverage_keys))
    if parsed.request.crd_version == "2.2" and coverage_keys:
        _payer_identified(slots, coverage_keys, record)
    base = FactContext(loaded.policies.facts.facts, record, today, loaded.policies.resources)
    evaluations = [applicability.evaluate(match, base, record) for match in applicability.confirmed(matches, base)]
    cards, actions = _respond(evaluations, record, parsed, loaded, today)
    call.update(decisions=[_decision(e) for e in evaluations], card_ids=[c.uuid for c in cards])
    body = protocol.response_body(parsed.hook, cards, actions, mirror=config.SANDBOX_SYSTEM_ACTIONS)
    return Answer(evaluations, base, body)


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


def _deadline(config) -> float:
    """The call's deadline on the monotonic clock: its start plus the time budget."""
    elapsed = time.perf_counter() - g.get("started", time.perf_counter())
    return time.monotonic() - elapsed + config.TIME_BUDGET_MS / 1000


def audit(response):
    """Queue the audit row of a hook call (ids, decisions, timing; never tokens or contents)."""
    call = g.get("call")
    if call is None or "hook" not in call:
        return response
    row = {
        "service_id": call["service"], "hook": call["hook"], "hook_instance": call.get("hookInstance"),
        "patient_id": call.get("patient_id"), "order_refs": call.get("order_refs", []),
        "decisions": call.get("decisions", []), "card_ids": call.get("card_ids", []),
        "latency_ms": round((time.perf_counter() - g.get("started", time.perf_counter())) * 1000, 3),
        "status": response.status_code,
    }
    store.get().add_audit(row)  # queued: the answer never waits on the database (see audit.py)
    return response


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


def _respond(evaluations, record, parsed, loaded, today):
    request, base_url = parsed.request, http.public_base_url()
    configuration, version = request.crd_configuration, request.crd_version
    shown = [e for e in evaluations if configuration.allows(e.match.policy.model.topic)]
    refs = forms.open_launches(shown, request, {id(e): respond.order_label(e) for e in shown})
    cards = [respond.card(e, base_url, version, refs.get(id(e)) and f"{base_url}/forms/{refs[id(e)]}", parsed.hook)
             for e in shown]
    problem = respond.unavailable_card(record, cards[0].source.topic) if cards else None
    if problem is not None:
        cards.append(problem)
    actions = []
    active = coverage.active_coverage(record.of_type("Coverage"))
    if parsed.hook == "order-sign" and configuration.coverage_info and active is not None:
        actions, uncovered = _coverage(evaluations, record, parsed, loaded, active, base_url, today)
        statement = settings.get().UNCOVERED_ORDERS
        if uncovered and statement.card and version != "2.2":   # 2.2 resp-12: not again in a card
            payer = coverage.payer_name(active, record.resolve) or respond.SERVICE_LABEL
            cards.append(crd.uncovered_card(uncovered, statement, payer, version))
    if len(cards) > configuration.max_cards:  # keep the most pressing: critical, warning, info
        cards = sorted(cards, key=lambda c: _URGENCY[c.indicator])[: configuration.max_cards]
    return cards, actions


def _coverage(evaluations, record, parsed, loaded, active, base_url, today):
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
    statement = settings.get().UNCOVERED_ORDERS.values()
    assertions += [crd.Assertion(o, statement, "no medical policy applies")
                   for o in parsed.in_scope if o.reference not in covered]
    actions, updated = crd.actions(assertions, active, today, parsed.request.crd_version)
    return actions, [o for o in updated if o.reference not in covered]


def _decision(evaluation) -> dict:
    return {"order": evaluation.match.order.reference, "policy": evaluation.match.policy.id,
            "decision": evaluation.decision, "outcome": evaluation.outcome}
