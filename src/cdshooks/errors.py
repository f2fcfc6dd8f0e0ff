"""Request errors and the one handler that turns them into status + OperationOutcome.

::

    CdsHooksError                      500  exception  (never raised on purpose)
    ├── InvalidJson                    400  invalid    body is not JSON / not a JSON object
    ├── CrdBadRequest                  400  invalid    CRD 2.2 (requestedVersion "2.2") hook-13: a
    │                                                  non-conformant request, or no Coverage with
    │                                                  a payer identifier
    ├── Unauthorized                   401  security   JWT missing or invalid (bare body)
    ├── UnknownService                 404  not-found  no service, policy or route by that name
    ├── MethodNotAllowed               405  not-supported
    ├── PrefetchUnavailable            412  not-found  required data absent and not fetchable
    ├── PayloadTooLarge                413  too-costly body over CDSHOOKS_MAX_BODY_BYTES
    ├── UnsupportedMediaType           415  not-supported  a Content-Encoding we cannot decode
    ├── InvalidRequest                 422  invalid    valid JSON, not a conformant request
    └── StoreUnavailable               503  transient  the database cannot durably write now

Every error names the offending field in ``diagnostics`` (and in ``expression`` when there is a
path).  Data-file problems (policies, mappings) are not here: they are ``datafile.Problem``
records reported by ``cdshooks check`` and at start-up.
"""

from __future__ import annotations

import logging

from flask import Flask
from flask import Response
from werkzeug.exceptions import HTTPException

from cdshooks import jsonio

log = logging.getLogger(__name__)


class CdsHooksError(Exception):
    """Base of every request error; carries the HTTP status and OperationOutcome issue code."""

    status = 500
    code = "exception"

    def __init__(self, diagnostics: str, expression: str | None = None):
        super().__init__(diagnostics)
        self.diagnostics = diagnostics
        self.expression = expression


class InvalidJson(CdsHooksError):
    status = 400
    code = "invalid"


class CrdBadRequest(CdsHooksError):
    """400 where CRD 2.2 asks for it (hook-13); CRD 2.0.1 keeps 422 for non-conformant requests."""

    status = 400
    code = "invalid"

    @classmethod
    def of(cls, error: CdsHooksError) -> "CrdBadRequest":
        return cls(error.diagnostics, error.expression)


class Unauthorized(CdsHooksError):
    """401; ``diagnostics`` is for the log only, the response carries no detail."""

    status = 401
    code = "security"


class UnknownService(CdsHooksError):
    status = 404
    code = "not-found"


class MethodNotAllowed(CdsHooksError):
    status = 405
    code = "not-supported"


class PrefetchUnavailable(CdsHooksError):
    status = 412
    code = "not-found"


class PayloadTooLarge(CdsHooksError):
    status = 413
    code = "too-costly"


class UnsupportedMediaType(CdsHooksError):
    status = 415
    code = "not-supported"


class InvalidRequest(CdsHooksError):
    status = 422
    code = "invalid"


class StoreUnavailable(CdsHooksError):
    """503: nothing was stored; the client may retry (feedback and replay checks are idempotent)."""

    status = 503
    code = "transient"
    transient = True  # False when retrying the same write cannot help (the row itself is refused)


_HTTP_EQUIVALENTS = {
    400: InvalidJson,
    404: UnknownService,
    405: MethodNotAllowed,
    413: PayloadTooLarge,
    415: UnsupportedMediaType,
}


def operation_outcome(diagnostics: str, code: str, expression: str | None = None) -> dict:
    """Return a FHIR OperationOutcome with one error issue."""
    issue = {"severity": "error", "code": code, "diagnostics": diagnostics}
    if expression:
        issue["expression"] = [expression]
    return {"resourceType": "OperationOutcome", "issue": [issue]}


def to_response(error: CdsHooksError) -> Response:
    """Map a request error to its status and OperationOutcome body."""
    if isinstance(error, Unauthorized):  # bare: the reason is logged, never told to the caller
        response = jsonio.response(operation_outcome("Unauthorized", error.code), error.status)
        response.headers["WWW-Authenticate"] = "Bearer"
        return response
    body = operation_outcome(error.diagnostics, error.code, error.expression)
    response = jsonio.response(body, error.status)
    if error.status == 503:
        response.headers["Retry-After"] = "5"
    if error.status == 415:  # RFC 7694: name the encodings we accept
        response.headers["Accept-Encoding"] = "gzip, deflate"
    return response


def _from_http_exception(exc: HTTPException) -> Response:
    cls = _HTTP_EQUIVALENTS.get(exc.code or 500, CdsHooksError)
    if cls is UnknownService:
        return to_response(UnknownService("no such resource", None))
    if cls is PayloadTooLarge:
        return to_response(PayloadTooLarge("request body exceeds the configured size limit", "body"))
    response = to_response(cls(exc.description or exc.name))
    response.status_code = exc.code or 500
    return response


def _from_unexpected(exc: Exception) -> Response:
    log.error("unhandled error: %s", type(exc).__name__, exc_info=exc)
    return to_response(CdsHooksError("internal error; see the service log"))


def init_app(app: Flask) -> None:
    """Register the handlers: request errors, HTTP errors, and a last-resort 500."""
    app.register_error_handler(CdsHooksError, to_response)
    app.register_error_handler(HTTPException, _from_http_exception)
    app.register_error_handler(Exception, _from_unexpected)
