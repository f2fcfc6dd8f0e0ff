"""The documentation loop: a card's form link → the order's open questions → a QuestionnaireResponse.

A hook call that leaves documentation open stores a *form launch* (a random reference, valid for
``CDSHOOKS_FORM_TTL_S``): the order, the open questions and what the record already answers. When
the call carried a ``fhirServer`` on the allow-list and a token, the launch also keeps the token,
Fernet-encrypted and for at most its ``expires_in``, so that submitting the form can write the
QuestionnaireResponse to the EHR once; then the token is erased. The token never appears in a URL,
a page or a log line; the link carries only the reference.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import logging
import re
import secrets
import time
from dataclasses import dataclass

from cryptography.fernet import Fernet
from cryptography.fernet import InvalidToken
from fhir.resources.R4B.questionnaireresponse import QuestionnaireResponse
from flask import Flask
from flask import current_app
from pydantic import ValidationError

from cdshooks import jsonio
from cdshooks import registry
from cdshooks import settings
from cdshooks.errors import StoreUnavailable
from cdshooks.fetch import outbound
from cdshooks.policy.applicability import recompute
from cdshooks.policy.logic import MET
from cdshooks.policy.logic import NOT_MET
from cdshooks.store import db as store

log = logging.getLogger(__name__)
EXTENSION_KEY = "cdshooks.web.forms"
_MAX_EVIDENCE = 3
_REF_BYTES = 24   # a launch's reference: 24 random bytes, 32 URL-safe characters
_REF = re.compile(r"[A-Za-z0-9_-]{32}")


@dataclass(frozen=True)
class Launch:
    """What a form page needs: the policy, the order, the questions; never the token itself."""

    ref: str | None
    policy_id: str
    patient_id: str | None
    order: str | None
    order_label: str | None
    author: str | None
    fhir_server: str | None
    questions: tuple[dict, ...]
    can_write: bool = False


class FormError(Exception):
    """The response could not be built or written; the message is safe to show and to log."""


def questions(evaluation) -> list[dict]:
    """The order's open documentation questions, then the ones the record already answers.

    Open: the evaluation's ``documentation`` list (what the policy still wants asked). Answered:
    documentation-answerable leaves of this evaluation decided by the record or an earlier
    response, prefilled so that the clinician confirms or corrects them.
    """
    policy, results = evaluation.match.policy, evaluation.results
    open_ids = set(evaluation.documentation)
    out = []
    for node in policy.doc_leaves:
        result = results.get(node.id)
        if result is None:
            continue
        if node.id in open_ids:
            out.append({"id": node.id})
        elif result.result in (MET, NOT_MET) and result.source in ("structured", "documentation"):
            evidence = "; ".join(str(e) for e in result.evidence[:_MAX_EVIDENCE]) or result.note
            out.append({"id": node.id, "answer": result.result == MET, "from": result.source,
                        **({"evidence": evidence} if evidence else {})})
    return sorted(out, key=lambda q: "answer" in q)  # stable: open ones first, each in tree order


def _with_decisive(policy, content: dict) -> tuple[dict, ...]:
    """Mark the open questions whose answer alone, yes or no, changes the value of the criteria
    tree, and put them first. Done when the form opens, not in the hook call (~50 ms for CSF)."""
    results = {k: _Result(v) for k, v in content.get("results", {}).items()}
    sections, root = content.get("sections"), policy.model.criteria
    now = recompute(policy, root, results, {}, sections)
    marked = [{**q, "decisive": True} if "answer" not in q and any(
        recompute(policy, root, results, {q["id"]: value}, sections) != now for value in (MET, NOT_MET)) else q
        for q in content["questions"]]
    return tuple(sorted(marked, key=lambda q: ("answer" in q, "decisive" not in q)))


@dataclass(frozen=True)
class _Result:
    result: str


class Launches:
    """Keeps the form launches of hook calls (the pipeline's ``launches`` port) in ``store_``."""

    def __init__(self, store_, fernet: Fernet, config):
        self.store, self.fernet, self.config = store_, fernet, config

    def open(self, evaluations, request, order_labels: dict) -> dict[int, str]:
        """Store one form launch per evaluation with open documentation; ``id(evaluation)`` → ref.

        A database failure costs the links, never the answer: the cards then link the policy's
        blank form instead.
        """
        wanted = [e for e in evaluations if e.documentation]
        if not wanted:
            return {}
        rows, refs = self._rows(wanted, request, order_labels)
        try:
            self.store.add_forms(rows)
        except StoreUnavailable:  # at once: the launches are queued, never waited for
            log.error("form launches not stored (cards link the blank forms)")
            return {}
        return refs

    def _rows(self, wanted, request, order_labels: dict) -> tuple[list[dict], dict[int, str]]:
        now = _utcnow()
        expires = now + dt.timedelta(seconds=self.config.FORM_TTL_S)
        token, token_expires = _token_to_keep(request, self.config, now, expires)
        refs, rows = {}, []
        for evaluation in wanted:
            ref = secrets.token_urlsafe(_REF_BYTES)
            content = {"policy": evaluation.match.policy.id, "patient": request.context.patientId,
                       "order": evaluation.match.order.reference, "orderLabel": order_labels.get(id(evaluation)),
                       "author": request.context.userId, "fhirServer": request.fhirServer if token else None,
                       "questions": questions(evaluation), "sections": evaluation.match.rule.sections,
                       "results": {node_id: r.result for node_id, r in evaluation.results.items()}}
            rows.append({"ref": ref, "expires_at": expires, "content": jsonio.dumps(content).decode(),
                         "token_cipher": self.fernet.encrypt(token.encode()).decode() if token else None,
                         "token_expires_at": token_expires if token else None})
            refs[id(evaluation)] = ref
        return rows, refs


def launches() -> Launches:
    """The launch keeper of the current app."""
    return Launches(store.get(), _fernet(), settings.get())


def _token_to_keep(request, config, now, expires):
    """The call's token, if the form may write with it: allow-listed server, unexpired."""
    auth = request.fhirAuthorization
    if auth is None or not request.fhirServer or not outbound.is_allowed(request.fhirServer, config.FHIR_ALLOWLIST):
        return None, None
    until = expires
    if auth.expires_in is not None:
        until = min(until, now + dt.timedelta(seconds=max(auth.expires_in, 0)))
    return auth.access_token.get_secret_value(), until


def launch(ref: str) -> Launch | None:
    """The unexpired launch ``ref`` (None when unknown or expired). A launch this worker has not
    seen yet may be another worker's still on its way to the database: it is waited for, briefly."""
    row = store.get().form(ref, wait=True) if _REF.fullmatch(ref) else None
    if row is None:
        return None
    content = jsonio.loads(row["content"])
    policy = registry.get().policies.by_id.get(content["policy"])
    if policy is None:  # the policy was removed since the card was made
        return None
    can_write = bool(row["token_cipher"]) and row["token_expires_at"] > _utcnow()
    return Launch(ref, content["policy"], content.get("patient"), content.get("order"), content.get("orderLabel"),
                  content.get("author"), content.get("fhirServer"), _with_decisive(policy, content), can_write)


def blank_launch(policy, patient_id: str | None) -> Launch:
    """Every documentation question of ``policy``, nothing prefilled, nothing to write to."""
    leaves = policy.doc_leaves
    return Launch(None, policy.id, patient_id or None, None, None, None, None,
                  tuple({"id": node.id} for node in leaves))


def response_for(launch_: Launch, policy, answers: dict[str, bool], base_url: str) -> dict:
    """The QuestionnaireResponse for ``answers`` (linkId → yes/no), validated as FHIR R4."""
    nodes = policy.nodes
    items = [{"linkId": q["id"], "text": nodes[q["id"]].text, "answer": [{"valueBoolean": answers[q["id"]]}]}
             for q in launch_.questions if q["id"] in answers]
    if not items:
        raise FormError("no question was answered; answer at least one yes or no")
    qr = {"resourceType": "QuestionnaireResponse", "id": f"qr-{secrets.token_hex(8)}",
          "questionnaire": f"{base_url}/fhir/Questionnaire/{policy.id}|{policy.model.version}",
          "status": "completed", "authored": _authored().isoformat(timespec="seconds"), "item": items}
    if launch_.patient_id:
        qr["subject"] = {"reference": f"Patient/{launch_.patient_id}"}
    if launch_.author:
        qr["author"] = {"reference": launch_.author}
    if launch_.order:
        qr["basedOn"] = [{"reference": launch_.order}]
    try:
        QuestionnaireResponse.model_validate(qr)
    except ValidationError as exc:
        raise FormError(f"the QuestionnaireResponse is not valid FHIR: {exc.error_count()} problem(s)") from None
    return qr


def write(launch_: Launch, qr: dict) -> str:
    """POST ``qr`` to the launch's FHIR server with its kept token; return the new reference."""
    row = store.get().form(launch_.ref) if launch_.ref else None
    if row is None or not row["token_cipher"] or row["token_expires_at"] <= _utcnow():
        raise FormError("the EHR authorization of this form has expired; download the response instead")
    try:
        token = _fernet().decrypt(row["token_cipher"].encode()).decode()
    except InvalidToken:
        raise FormError("the EHR authorization of this form cannot be read; download the response instead") from None
    config = settings.get()
    body = {k: v for k, v in qr.items() if k != "id"}  # the server assigns the id
    try:
        with outbound.FhirClient(config.FHIR_ALLOWLIST, token, time.monotonic() + config.TIME_BUDGET_MS / 1000,
                                 config.FHIR_MAX_RESPONSE_BYTES) as client:
            reference = client.post(launch_.fhir_server.rstrip("/") + "/QuestionnaireResponse", body)
    except outbound.FetchError as exc:
        raise FormError(f"the EHR did not accept the response ({exc})") from None
    store.get().forget_form_token(launch_.ref)
    return reference


def _authored() -> dt.datetime:
    """Now; on the configured evaluation date when there is one (CDSHOOKS_TODAY), so a fixed-date
    demo does not file answers dated after the day it evaluates."""
    now, fixed = _utcnow(), settings.get().TODAY
    return dt.datetime.combine(fixed, now.time(), dt.timezone.utc) if fixed else now


def _fernet() -> Fernet:
    return current_app.extensions[EXTENSION_KEY]


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def init_app(app: Flask) -> None:
    """The key that encrypts kept tokens: from CDSHOOKS_SECRET_KEY, else random for this app."""
    secret = settings.get_from(app).SECRET_KEY
    material = secret.get_secret_value().encode() if secret else secrets.token_bytes(32)
    app.extensions[EXTENSION_KEY] = Fernet(base64.urlsafe_b64encode(hashlib.sha256(material).digest()))
