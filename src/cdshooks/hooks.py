"""One hook call, end to end: parse → applicable policies → prefetch → record → evaluate → respond."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from flask import g
from sqlalchemy.exc import SQLAlchemyError

from cdshooks import http
from cdshooks import prefetch
from cdshooks import protocol
from cdshooks import record as record_module
from cdshooks import registry
from cdshooks import respond
from cdshooks import settings
from cdshooks import store
from cdshooks.mapping.facts import FactContext
from cdshooks.policy import engine

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
    """Run the whole pipeline for one request."""
    config, loaded = settings.get(), registry.get()
    parsed = protocol.parse_request(body, service.hook, config.MAX_DRAFT_ORDERS, config.MAX_JSON_DEPTH)
    call.update(hookInstance=parsed.request.hookInstance, patient_id=parsed.patient_id,
                order_refs=[o.reference for o in parsed.in_scope])
    today = config.today()
    matches = engine.match_orders(loaded.policies, parsed.in_scope, parsed.draft_orders, today)
    required = _required_keys(loaded, matches, parsed.hook)
    slots = prefetch.resolve(parsed.request, loaded.templates, required, config, _deadline(config))
    record = record_module.build(slots, loaded.slot_types, parsed.draft_orders, parsed.patient_id)
    base = FactContext(loaded.policies.facts.facts, record, today, loaded.policies.resources)
    evaluations = [engine.evaluate(match, base, record) for match in engine.confirmed(matches, base)]
    cards, actions = _respond(evaluations, record, parsed.hook, parsed.request)
    call.update(decisions=[_decision(e) for e in evaluations], card_ids=[c.uuid for c in cards])
    body = protocol.response_body(parsed.hook, cards, actions, mirror=config.SANDBOX_SYSTEM_ACTIONS)
    return Answer(evaluations, base, body)


def _deadline(config) -> float:
    """The call's deadline on the monotonic clock: its start plus the time budget."""
    elapsed = time.perf_counter() - g.get("started", time.perf_counter())
    return time.monotonic() - elapsed + config.TIME_BUDGET_MS / 1000


def audit(response):
    """Write the audit row of a hook call (ids, decisions, timing; never tokens or contents)."""
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
    try:
        store.get().add_audit(row)
    except SQLAlchemyError as exc:  # advice must still reach the clinician; the failure is logged loudly
        log.error("audit row not written for hookInstance=%s: %s", row["hook_instance"], type(exc).__name__)
    return response


def _required_keys(loaded, matches, hook: str) -> frozenset[str]:
    types = {"Patient"}
    for match in matches:
        types |= loaded.policies.resource_types_for(match.policy)
        types.add("QuestionnaireResponse")
        if hook == "order-sign" and match.policy.model.jurisdiction == "US":
            types.add("Coverage")
    return loaded.keys_for(types)


_URGENCY = {"critical": 0, "warning": 1, "info": 2}


def _respond(evaluations, record, hook: str, request):
    base_url, configuration = http.public_base_url(), request.crd_configuration
    cards = [respond.card(e, base_url, request.crd_version) for e in evaluations]
    problem = respond.unavailable_card(record) if evaluations else None
    if problem is not None:
        cards.append(problem)
    if len(cards) > configuration.max_cards:  # keep the most pressing: critical, warning, info
        cards = sorted(cards, key=lambda c: _URGENCY[c.indicator])[: configuration.max_cards]
    actions = []
    if hook == "order-sign" and configuration.coverage_info:
        actions = [a for e in evaluations if (a := respond.coverage_action(e, record, base_url)) is not None]
    return cards, actions


def _decision(evaluation) -> dict:
    return {"order": evaluation.match.order.reference, "policy": evaluation.match.policy.id,
            "decision": evaluation.decision, "outcome": evaluation.outcome}
