"""Pages for people: the policy behind every card link and the documentation form.

Server-rendered with the Jinja2 that Flask brings; no script is needed to read or submit them.
"""

from __future__ import annotations

import json
import re

from flask import Blueprint
from flask import render_template
from flask import request

from cdshooks import registry
from cdshooks import settings
from cdshooks.errors import InvalidRequest
from cdshooks.errors import UnknownService
from cdshooks.fhir.codes import SYSTEMS
from cdshooks.fhir.record import display_code
from cdshooks.web import forms
from cdshooks.web import http

bp = Blueprint("pages", __name__)

_KIND_WORDS = {"structured": "from the record", "structured+doc": "record or documentation",
               "documentation": "documentation", "rule": "rule"}
_SYSTEM_WORDS = {SYSTEMS["cpt"]: "CPT", SYSTEMS["hcpcs"]: "HCPCS", SYSTEMS["rxnorm"]: "RxNorm",
                 SYSTEMS["icd10cm"]: "ICD-10-CM", SYSTEMS["snomed"]: "SNOMED CT"}
_PATIENT_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")  # FHIR id


def wants_html() -> bool:
    """Whether the caller is a browser asking for a page (JSON stays the default for API clients)."""
    if request.args.get("format") == "json":
        return False
    best = request.accept_mimetypes.best_match(["application/json", "application/fhir+json", "text/html"])
    return best == "text/html" and request.accept_mimetypes["text/html"] > request.accept_mimetypes["application/json"]


def policy_page(policy):
    """The policy as a readable page: header, When/Then, applicability, criteria tree, settings."""
    model = policy.model
    when, then = _when_then(model.description)
    rows = [(key, {"used": _show(value), "default": _show(model.settings.get(key, value))})
            for key, value in sorted(policy.settings.items())]
    return render_template("policy.html", model=model, when=when, then=then, settings=rows,
                           kind_words=_KIND_WORDS, op_words=_op_words, code_words=_code_words,
                           questions=len(policy.doc_leaves))


def _when_then(description: str) -> tuple[str | None, str | None]:
    """Split the policy's "When …, then …" prose; (None, None) when it is not written that way."""
    text = " ".join(description.split())
    match = re.match(r"^When (.+?), then (.+)$", text)
    return (match.group(1), match.group(2)[0].upper() + match.group(2)[1:]) if match else (None, None)


def _code_words(names: list[str], shown: int = 8) -> str:
    """Value-set names as a reader names their codes, by system: ``HCPCS J1442, Q5101; RxNorm 68442``."""
    by_system: dict[str, list[str]] = {}
    for name in names:
        for entry in registry.get().policies.valuesets.get(name).codes.include:
            codes = by_system.setdefault(_SYSTEM_WORDS.get(entry.system, entry.system), [])
            if _entry_code(entry) not in codes:
                codes.append(_entry_code(entry))
    return "; ".join(f"{system} {', '.join(codes[:shown])}"
                     + (f" and {len(codes) - shown} more" if len(codes) > shown else "")
                     for system, codes in by_system.items())


def _entry_code(entry) -> str:
    if entry.kind == "range":
        return f"{entry.code}–{entry.upper}"
    if entry.kind == "prefix":
        return f"{entry.code}*"
    return display_code(entry.system, entry.code) if entry.kind == "exact" else entry.token or entry.code


def _op_words(node) -> str:
    if node.at_least is not None:
        return f"at least {node.at_least.n}"
    return node.op


def _show(value) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ", ".join(map(str, value)) or "(none)"
    return str(value)


@bp.route("/forms/<ref>", methods=["GET", "POST"])
def form(ref: str):
    launch = forms.launch(ref)
    if launch is None:
        if not wants_html():  # an API client gets the usual OperationOutcome
            raise UnknownService("no documentation form with this reference (unknown or expired)", "ref")
        return render_template("form_gone.html"), 404
    return _form(launch)


@bp.route("/policies/<policy_id>/form", methods=["GET", "POST"])
def blank_form(policy_id: str):
    policy = _policy(policy_id)
    patient = (request.values.get("patient") or "").strip()
    if patient and not _PATIENT_ID.match(patient):
        return _render_form(forms.blank_launch(policy, None), policy, "The patient id is not a FHIR id.", 422)
    return _form(forms.blank_launch(policy, patient))


def _form(launch: forms.Launch):
    policy = _policy(launch.policy_id)
    if request.method == "GET":
        return _render_form(launch, policy)
    answers = {q["id"]: request.form.get(f"q:{q['id']}") == "yes" for q in launch.questions
               if request.form.get(f"q:{q['id']}") in ("yes", "no")}
    try:
        qr = forms.response_for(launch, policy, answers, http.public_base_url())
    except forms.FormError as exc:
        return _render_form(launch, policy, str(exc), 422)
    written, write_error = None, None
    if launch.can_write:
        try:
            written = forms.write(launch, qr)
        except forms.FormError as exc:
            write_error = str(exc)
    return render_template("form_done.html", model=policy.model, launch=launch, answered=len(qr["item"]),
                           qr_json=json.dumps(qr, indent=2, ensure_ascii=False), written=written or None,
                           write_error=write_error,
                           filename=f"QuestionnaireResponse-{policy.id}.json", demo=settings.get().DEMO)


def _render_form(launch, policy, error: str | None = None, status: int = 200):
    if error and not wants_html():
        raise InvalidRequest(error, "patient" if "patient" in error else "answers")
    page = render_template("form.html", model=policy.model, model_nodes=policy.nodes, launch=launch,
                           error=error, ask=_ask)
    return page, status


def _ask(node) -> str:
    """The question a form shows: the criterion's own question when it has one, else its statement."""
    return node.question or node.text


def _policy(policy_id: str):
    policy = registry.get().policies.by_id.get(policy_id)
    if policy is None:
        raise UnknownService(f"no policy with id '{policy_id}'", "policy-id")
    return policy


def init_app(app) -> None:
    app.register_blueprint(bp)
