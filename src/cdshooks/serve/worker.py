"""The gunicorn worker ``cdshooks serve`` runs: gevent, whole request read before the app sees it.

Each connection is a greenlet, so a client that sends its headers or body one byte a second ties
up a few kilobytes, not a worker: the request head must arrive within the keep-alive time
(gunicorn's ``timeout_ctx``), the body within ``CDSHOOKS_REQUEST_READ_TIMEOUT_MS``, and only a
complete body (at most ``CDSHOOKS_MAX_BODY_BYTES``) is handed to the app, which then never waits
on the client.  The errors gunicorn answers itself (400, 414, 431, a body too large or too slow,
a worker timeout) are FHIR OperationOutcomes like every other error of the service.
"""

from __future__ import annotations

import io
import socket

import gevent
from gunicorn import glogging
from gunicorn import util
from gunicorn.workers.ggevent import GeventWorker

from cdshooks import jsonio
from cdshooks import settings
from cdshooks.errors import operation_outcome
from cdshooks.logsafe import SafeFormatter

DRAIN_FACTOR = 4  # a body over the limit is read and discarded up to 4x the limit, then cut off

_EXPRESSIONS = {400: "request", 403: "request", 408: "body", 413: "body", 414: "url", 417: "Expect",
                431: "headers", 501: "Transfer-Encoding"}
_CODES = {400: "invalid", 403: "security", 408: "timeout", 413: "too-costly", 414: "too-costly",
          417: "not-supported", 431: "too-costly", 501: "not-supported"}


def write_error(sock, status: int, reason: str, message: str) -> None:
    """gunicorn's error page, as an OperationOutcome (replaces ``gunicorn.util.write_error``)."""
    diagnostics = message or (reason if status < 500 else "internal error; see the service log")
    body = jsonio.dumps(operation_outcome(diagnostics[:500], _CODES.get(status, "exception"),
                                          _EXPRESSIONS.get(status)))
    head = (f"HTTP/1.1 {status} {reason}\r\nConnection: close\r\nContent-Type: application/json\r\n"
            f"Access-Control-Allow-Origin: *\r\nContent-Length: {len(body)}\r\n\r\n")
    util.write_nonblock(sock, head.encode("latin-1") + body)


class GunicornLogger(glogging.Logger):
    """gunicorn's own log lines (it quotes bad request lines and headers) escaped and capped too."""

    def _set_handler(self, log, output, fmt, stream=None):
        super()._set_handler(log, output, SafeFormatter(fmt._fmt, fmt.datefmt), stream)


class Worker(GeventWorker):
    """gunicorn's gevent worker, reading each request body completely before the app runs."""

    def init_process(self):
        util.write_error = write_error  # every error page gunicorn writes in this process
        super().init_process()

    def handle_request(self, listener_name, req, sock, addr):
        config = settings.get_from(self.wsgi)
        limit, timeout_s = config.MAX_BODY_BYTES, config.REQUEST_READ_TIMEOUT_MS / 1000
        refused = _buffer_body(req, limit, timeout_s)
        if refused is not None:
            write_error(sock, *refused)
            if refused[0] == 413:
                _linger(sock, req.body, DRAIN_FACTOR * limit, timeout_s)
            raise StopIteration()  # gunicorn closes the connection
        return super().handle_request(listener_name, req, sock, addr)


def _buffer_body(req, limit: int, timeout_s: float) -> tuple[int, str, str] | None:
    """Replace ``req.body`` by its complete bytes; or return (status, reason, message) to refuse."""
    declared = _content_length(req)
    if declared is not None and declared > limit:
        return 413, "Content Too Large", f"request body of {declared} bytes exceeds {limit}"
    try:
        with gevent.Timeout(timeout_s):
            data = req.body.read(limit + 1)
    except gevent.Timeout:
        return 408, "Request Timeout", f"request body not received within {timeout_s:g} s"
    if len(data) > limit:  # chunked: no length to check beforehand
        return 413, "Content Too Large", f"request body exceeds {limit} bytes"
    req.body = io.BytesIO(data)
    return None


def _linger(sock, body, budget: int, timeout_s: float) -> None:
    """After answering, read and discard what the client still sends (up to ``budget`` bytes).

    A client that sends its whole body before reading would otherwise get a connection reset
    (we close with its data unread) instead of the 413.
    """
    try:
        sock.shutdown(socket.SHUT_WR)
        with gevent.Timeout(timeout_s, False):
            while budget > 0:
                chunk = body.read(min(65536, budget))
                if not chunk:
                    return
                budget -= len(chunk)
    except OSError:
        pass


def _content_length(req) -> int | None:
    for name, value in req.headers:
        if name == "CONTENT-LENGTH":
            try:
                return int(value)
            except ValueError:
                return None
    return None
