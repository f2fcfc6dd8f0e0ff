"""HTTP plumbing shared by every route: path normalization, CORS, body limits, the call log line."""

from __future__ import annotations

import logging
import re
import time
from urllib.parse import urlsplit
from urllib.parse import urlunsplit

from flask import Flask
from flask import g
from flask import request
from flask_cors import CORS

from cdshooks import jsonio
from cdshooks import settings
from cdshooks.errors import InvalidJson
from cdshooks.errors import PayloadTooLarge

log = logging.getLogger("cdshooks.calls")

_SLASHES = re.compile(r"/{2,}")


class NormalizePath:
    """WSGI middleware: collapse doubled slashes and drop a trailing slash, without redirects.

    The CDS Hooks sandbox builds ``{discoveryUrl}/{id}``, so ``…/cds-services/`` becomes
    ``…/cds-services//id``; Werkzeug would answer with a 308, which kills CORS preflights.
    """

    def __init__(self, wsgi_app):
        self.wsgi_app = wsgi_app

    def __call__(self, environ, start_response):
        environ["PATH_INFO"] = normalize_path(environ.get("PATH_INFO", "/"))
        return self.wsgi_app(environ, start_response)


def normalize_path(path: str) -> str:
    """Return ``path`` with runs of slashes collapsed and no trailing slash (except ``/``)."""
    path = _SLASHES.sub("/", path)
    if len(path) > 1 and path.endswith("/"):
        path = path.rstrip("/") or "/"
    return path


def normalize_url(url: str) -> str:
    """Scheme and host lower-cased, default port dropped, path as :func:`normalize_path`."""
    parts = urlsplit(url.strip())
    netloc = parts.netloc.lower()
    for scheme, port in (("https", ":443"), ("http", ":80")):
        if parts.scheme.lower() == scheme and netloc.endswith(port):
            netloc = netloc[: -len(port)]
    path = normalize_path(parts.path or "/")
    return urlunsplit((parts.scheme.lower(), netloc, "" if path == "/" else path, parts.query, ""))


def read_json_object() -> dict:
    """Return the request body as a JSON object, enforcing the size limit before parsing."""
    limit = settings.get().MAX_BODY_BYTES
    if request.content_length is not None and request.content_length > limit:
        raise PayloadTooLarge(f"request body of {request.content_length} bytes exceeds {limit}", "body")
    data = request.get_data(cache=False)  # MAX_CONTENT_LENGTH bounds bodies without Content-Length
    try:
        body = jsonio.loads(data)
    except ValueError as exc:
        raise InvalidJson(f"request body is not valid JSON: {exc}", "body") from None
    if not isinstance(body, dict):
        raise InvalidJson(f"request body must be a JSON object, not {type(body).__name__}", "body")
    return body


def public_base_url() -> str:
    """The service's public base URL: configured, else the one this request came in on."""
    configured = settings.get().PUBLIC_BASE_URL
    return (configured or request.host_url).rstrip("/")


def _start_timer() -> None:
    g.started = time.perf_counter()


def _log_call(response):
    call = g.get("call")
    if call is not None:
        elapsed_ms = (time.perf_counter() - g.started) * 1000
        call["ms"] = round(elapsed_ms, 2)
        call["status"] = response.status_code
        log.info(
            "hook=%s service=%s hookInstance=%s status=%s ms=%.1f",
            call.get("hook", "-"), call.get("service", "-"), call.get("hookInstance", "-"),
            response.status_code, elapsed_ms,
        )
    return response


def init_app(app: Flask) -> None:
    """Install path normalization, CORS (incl. preflight and errors) and the per-call log line."""
    app.wsgi_app = NormalizePath(app.wsgi_app)
    app.url_map.strict_slashes = False
    app.config["MAX_CONTENT_LENGTH"] = settings.get_from(app).MAX_BODY_BYTES
    CORS(
        app,
        resources={r"/*": {"origins": "*"}},
        allow_headers=["Authorization", "Content-Type"],
        methods=["GET", "POST", "OPTIONS"],
        max_age=600,
        allow_private_network=True,
        supports_credentials=False,
        send_wildcard=True,
    )
    app.before_request(_start_timer)
    app.after_request(_log_call)
