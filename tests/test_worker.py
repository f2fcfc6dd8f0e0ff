"""The gevent worker's own answers: gunicorn's error pages as OperationOutcomes."""

from __future__ import annotations

import json
import socket

import pytest

from cdshooks.serve import worker


@pytest.mark.parametrize("status, reason, message, code", [
    (500, "Internal Server Error", "", "exception"),        # also what a timed-out (aborted) call gets
    (400, "Bad Request", "Invalid HTTP Version 'HTTP/9'", "invalid"),
    (431, "Request Header Fields Too Large", "Error parsing headers: 'limit'", "too-costly"),
])
def test_gunicorn_error_pages_are_operation_outcomes_with_cors(status, reason, message, code):
    ours, theirs = socket.socketpair()
    with ours, theirs:
        worker.write_error(ours, status, reason, message)
        ours.shutdown(socket.SHUT_WR)
        data = b""
        while chunk := theirs.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(f"HTTP/1.1 {status} {reason}".encode())
    assert b"Content-Type: application/json" in head and b"Access-Control-Allow-Origin: *" in head
    issue = json.loads(body)["issue"][0]
    assert issue["code"] == code and issue["diagnostics"]
    assert "<html" not in body.decode()
