"""HTTP plumbing shared by every route: path normalization, CORS, body limits, the call timer."""

from __future__ import annotations

import re
import time
import zlib
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
from cdshooks.errors import UnsupportedMediaType

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


def read_json_object(defer: str | None = None) -> dict:
    """Return the request body as a JSON object, enforcing the size limit before parsing; with
    ``defer``, that member's own members are parsed only when read (``jsonio.loads_deferring``)."""
    data = read_body()
    try:
        body = jsonio.loads_deferring(data, defer) if defer else jsonio.loads(data)
    except ValueError as exc:
        raise InvalidJson(f"request body is not valid JSON: {exc}", "body") from None
    if not isinstance(body, dict):
        raise InvalidJson(f"request body must be a JSON object, not {type(body).__name__}", "body")
    return body


def read_body() -> bytes:
    """The request body, decoded (``Content-Encoding`` gzip/deflate), without a UTF-8 BOM.

    The size limit holds for what arrives and again for what it decodes to, chunked or not.
    """
    limit = settings.get().MAX_BODY_BYTES
    encoding = _content_encoding()
    if request.content_length is not None and request.content_length > limit:
        raise PayloadTooLarge(f"request body of {request.content_length} bytes exceeds {limit}", "body")
    data = _read_at_most(request.stream, request.content_length, limit)
    if encoding != "identity":
        data = _inflate(data, encoding, limit)
    return data[len(_BOM):] if data.startswith(_BOM) else data


def _read_at_most(stream, length: int | None, limit: int) -> bytes:
    # read(n) on Werkzeug's stream allocates n bytes up front: ask for what is there, not the limit
    if length is not None:
        return stream.read(length)
    chunks, size = [], 0
    while chunk := stream.read(65536):  # chunked: no length to check beforehand
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"request body exceeds {limit} bytes", "body")
    return b"".join(chunks)


_BOM = b"\xef\xbb\xbf"
_ENCODINGS = {"identity": "identity", "gzip": "gzip", "x-gzip": "gzip", "deflate": "deflate"}


def _content_encoding() -> str:
    value = request.headers.get("Content-Encoding", "").strip().lower() or "identity"
    if value not in _ENCODINGS:
        raise UnsupportedMediaType(
            f"Content-Encoding '{value[:40]}' is not supported; send the body as identity, gzip or deflate",
            "Content-Encoding")
    return _ENCODINGS[value]


def _inflate(data: bytes, encoding: str, limit: int) -> bytes:
    # 16+: gzip wrapper; 32+: zlib or gzip header, detected (deflate as HTTP means zlib format)
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS if encoding == "gzip" else 32 + zlib.MAX_WBITS)
    try:
        out = inflater.decompress(data, limit + 1)
    except zlib.error:
        raise InvalidJson(f"request body is not valid {encoding} data", "body") from None
    if len(out) > limit or inflater.unconsumed_tail:
        raise PayloadTooLarge(f"request body decodes to more than {limit} bytes", "body")
    if not inflater.eof:
        raise InvalidJson(f"request body is truncated {encoding} data", "body")
    return out


def public_base_url() -> str:
    """The service's public base URL: configured, else the one this request came in on."""
    configured = settings.get().PUBLIC_BASE_URL
    return (configured or request.host_url).rstrip("/")


def _start_timer() -> None:
    g.started = time.perf_counter()


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
    app.before_request(_start_timer)   # the hook view's Call and its log line count from here
