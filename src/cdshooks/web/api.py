"""The HTTP surface (CONTRACT §1): discovery, services, feedback, Questionnaires, health. Thin."""

from __future__ import annotations

from flask import Blueprint
from flask import g

from cdshooks import jsonio
from cdshooks import pipeline
from cdshooks import registry
from cdshooks.errors import UnknownService
from cdshooks.policy import document
from cdshooks.store import db as store
from cdshooks.web import feedback as feedback_module
from cdshooks.web import http
from cdshooks.web import pages

bp = Blueprint("cds", __name__)
bp.after_request(pipeline.audit)


@bp.get("/cds-services")
def discovery():
    services = registry.get().services.values()
    return jsonio.response({"services": [s.discovery() for s in services]})


@bp.post("/cds-services/<service_id>")
def invoke(service_id: str):
    service = _service(service_id)
    g.call = {"service": service.id, "hook": service.hook}
    return jsonio.response(pipeline.handle(service, http.read_json_object(), g.call))


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
        "auditPending": store.get().audit.pending(),  # rows queued for the background writer
    })


def _service(service_id: str):
    service = registry.get().services.get(service_id)
    if service is None:
        raise UnknownService(f"no CDS service with id '{service_id}'", "id")
    return service
