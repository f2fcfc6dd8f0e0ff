"""The HTTP surface (CONTRACT §1): discovery, services, feedback, Questionnaires, health. Thin."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from flask import Blueprint
from flask import g

from cdshooks import jsonio
from cdshooks import pipeline
from cdshooks import registry
from cdshooks import settings
from cdshooks.errors import InvalidRequest
from cdshooks.errors import UnknownService
from cdshooks.policy import document
from cdshooks.store import db as store
from cdshooks.web import feedback as feedback_module
from cdshooks.web import forms
from cdshooks.web import http
from cdshooks.web import pages

bp = Blueprint("cds", __name__)
calls = logging.getLogger("cdshooks.calls")


@dataclass
class _HookCall:
    """What the after-request hook writes down about one hook call: set by the view alone."""

    service: object
    call: pipeline.Call | None = None
    answer: pipeline.Answer | None = None

    def audit_fields(self) -> dict:
        if self.answer is not None:
            return self.answer.audit_fields()
        try:  # the call failed: its ids if the request itself was valid (a 412, a 400 of CRD 2.2…)
            return pipeline.request_ids(pipeline.parse(settings.get(), self.call)) if self.call else {}
        except InvalidRequest:
            return {}


@bp.get("/cds-services")
def discovery():
    services = registry.get().services.values()
    return jsonio.response({"services": [s.discovery() for s in services]})


@bp.post("/cds-services/<service_id>")
def invoke(service_id: str):
    g.hook_call = traced = _HookCall(_service(service_id))   # from here on, the call is logged and audited
    body = http.read_json_object(defer="prefetch")   # slots no policy reads stay unparsed
    traced.call = pipeline.Call(traced.service, body, http.public_base_url(), g.started, forms.launches())
    traced.answer = pipeline.answer(registry.get(), settings.get(), traced.call)
    return jsonio.response(traced.answer.body)


@bp.after_request
def _log_and_audit(response):
    """The log line and the audit row of a hook call (ids, decisions, timing; never tokens or contents)."""
    traced = g.get("hook_call")
    if traced is None:
        return response
    elapsed_ms = (time.perf_counter() - g.started) * 1000
    fields = traced.audit_fields()
    calls.info("hook=%s service=%s hookInstance=%s status=%s ms=%.1f", traced.service.hook, traced.service.id,
               fields.get("hook_instance", "-"), response.status_code, elapsed_ms)
    store.get().add_audit({  # queued: the answer never waits on the database (store/writer.py)
        "service_id": traced.service.id, "hook": traced.service.hook, "hook_instance": None, "patient_id": None,
        "order_refs": [], "decisions": [], "card_ids": [], **fields,
        "latency_ms": round(elapsed_ms, 3), "status": response.status_code})
    return response


@bp.post("/cds-services/<service_id>/feedback")
def feedback(service_id: str):
    service = _service(service_id)
    stored = feedback_module.receive(service.id, http.read_json_object())
    return jsonio.response({"stored": stored})


@bp.get("/fhir/Questionnaire/<policy_id>")
def questionnaire(policy_id: str):
    policy = registry.get().policies.by_id.get(policy_id)
    if policy is None:
        raise UnknownService(f"no policy with id '{policy_id}'", "policy-id")
    return jsonio.response(policy.questionnaire(http.public_base_url()))


@bp.get("/policies/<policy_id>")
def policy_document(policy_id: str):
    policy = registry.get().policies.by_id.get(policy_id)
    if policy is None:
        raise UnknownService(f"no policy with id '{policy_id}'", "policy-id")
    if pages.wants_html():
        return pages.policy_page(policy)
    return jsonio.response(document.build(policy))


@bp.get("/healthz")
def healthz():
    loaded = registry.get()
    store.get().check_writable()  # a write, committed: SELECT 1 passes on a store that loses writes
    return jsonio.response({
        "status": "ok",
        "policies": len(loaded.policies.by_id),
        "facts": len(loaded.policies.facts.facts),
        "services": len(loaded.services),
        "auditPending": store.get().writer.pending(),  # rows queued for the background writer
    })


def _service(service_id: str):
    service = registry.get().services.get(service_id)
    if service is None:
        raise UnknownService(f"no CDS service with id '{service_id}'", "id")
    return service
