"""`cdshooks serve` as operators run it: slow clients, what gunicorn answers itself, bodies, reload.

Integration tests: each starts a real ``cdshooks serve --workers 2`` on an ephemeral loopback port
(tests/served.py) and kills its whole process group afterwards.
"""

from __future__ import annotations

import gzip
import json
import os
import signal
import socket
import threading
import time

import pytest
import sqlalchemy

from cdshooks.store import connect
from conftest import POSTGRES_URL
from netfaults import FreezableProxy
from served import EXAMPLE
from served import SIGN
from served import Served
from served import outcome
from served import read_response

LIMIT = 2_000_000  # oversized bodies (3x) must outgrow the kernel socket buffers


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    server = Served(tmp_path_factory.mktemp("served"), CDSHOOKS_MAX_BODY_BYTES=str(LIMIT),
                    CDSHOOKS_REQUEST_READ_TIMEOUT_MS="3000")
    yield server
    server.stop()


class Drippers:
    """Connections that send a request one byte per ``interval`` seconds, until stopped."""

    def __init__(self, port: int, count: int, message: bytes, interval: float = 1.0):
        self.stop = threading.Event()
        self.sockets = [socket.create_connection(("127.0.0.1", port)) for _ in range(count)]
        self.threads = [threading.Thread(target=self._drip, args=(s, message, interval), daemon=True)
                        for s in self.sockets]
        for thread in self.threads:
            thread.start()

    def _drip(self, sock, message, interval):
        for byte in message:
            if self.stop.wait(interval):
                return
            try:
                sock.sendall(bytes([byte]))
            except OSError:
                return

    def close(self):
        self.stop.set()
        for thread in self.threads:
            thread.join(5)
        for sock in self.sockets:
            sock.close()


def _timed_calls(served, count: int) -> list[float]:
    seconds = []
    for _ in range(count):
        started = time.monotonic()
        assert served.hook_call(timeout=2.0) == 200   # socket timeout: a late answer fails the test
        seconds.append(time.monotonic() - started)
    return seconds


@pytest.mark.parametrize("part", ["headers", "body"])
def test_four_connections_dripping_a_byte_a_second_do_not_hold_up_hook_calls(served, part):
    body = EXAMPLE.read_bytes()
    head = (f"POST {SIGN} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode()
    if part == "headers":
        drippers = Drippers(served.port, 4, head + body)
    else:
        drippers = Drippers(served.port, 4, body)
        for sock in drippers.sockets:
            sock.sendall(head)
    try:
        time.sleep(1.5)   # every dripping connection is accepted and mid-request
        seconds = _timed_calls(served, 8)
    finally:
        drippers.close()
    assert max(seconds) < 2.0, seconds


def test_a_body_slower_than_the_read_timeout_gets_408_as_operation_outcome(served):
    with socket.create_connection(("127.0.0.1", served.port), timeout=10) as sock:
        sock.sendall(f"POST {SIGN} HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{{".encode())
        status, headers, body = read_response(sock)
    assert status == 408 and headers["content-type"] == "application/json"
    assert outcome(body)["code"] == "timeout"


@pytest.mark.parametrize("raw, status, expression", [
    (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414, "url"),
    (b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(120)) + b"\r\n", 431,
     "headers"),
    (b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 9000 + b"\r\n\r\n", 431, "headers"),
    (b"BAD\x01LINE\r\n\r\n", 400, "request"),
])
def test_requests_gunicorn_refuses_get_an_operation_outcome(served, raw, status, expression):
    with socket.create_connection(("127.0.0.1", served.port), timeout=10) as sock:
        sock.sendall(raw)
        got, headers, body = read_response(sock)
    assert got == status and headers["content-type"] == "application/json"
    assert headers["access-control-allow-origin"] == "*"
    assert outcome(body)["expression"] == [expression]


def test_gzip_bodies_are_decoded_and_a_byte_order_mark_is_accepted(served):
    body = EXAMPLE.read_bytes()
    assert served.request("POST", SIGN, gzip.compress(body), {"Content-Type": "application/json",
                                                              "Content-Encoding": "gzip"})[0] == 200
    assert served.request("POST", SIGN, b"\xef\xbb\xbf" + body, {"Content-Type": "application/json"})[0] == 200


def test_a_gzip_body_that_decodes_past_the_limit_is_413(served):
    bomb = gzip.compress(b'{"a": "' + b"x" * (LIMIT * 5) + b'"}')
    status, _, body = served.request("POST", SIGN, bomb, {"Content-Encoding": "gzip"})
    assert status == 413 and outcome(body)["code"] == "too-costly"


def test_an_unknown_content_encoding_is_415(served):
    status, headers, body = served.request("POST", SIGN, b"{}", {"Content-Encoding": "br"})
    assert status == 415 and "gzip" in headers["accept-encoding"]
    assert outcome(body)["expression"] == ["Content-Encoding"]


def test_an_oversized_chunked_body_is_413(served):
    chunk = b"x" * 10_000
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(LIMIT // len(chunk) + 2)) + b"0\r\n\r\n"
    with socket.create_connection(("127.0.0.1", served.port), timeout=10) as sock:
        sock.sendall(f"POST {SIGN} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n".encode() + chunks)
        status, _, body = read_response(sock)
    assert status == 413 and outcome(body)["expression"] == ["body"]


def test_a_client_that_sends_its_whole_oversized_body_before_reading_gets_the_413(served):
    body = b"x" * (LIMIT * 3)
    with socket.create_connection(("127.0.0.1", served.port), timeout=10) as sock:
        sock.sendall(f"POST {SIGN} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)
        status, _, answer = read_response(sock)
    assert status == 413 and outcome(answer)["code"] == "too-costly"


def test_every_hook_call_is_audited_by_the_background_writer(served):
    assert served.hook_call(timeout=5) == 200
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if json.loads(served.request("GET", "/healthz")[2])["auditPending"] == 0:
            break
        time.sleep(0.1)
    import sqlite3
    with sqlite3.connect(served.log.parent / "db.sqlite3") as db:
        assert db.execute("SELECT count(*) FROM cdshooks_audit WHERE status = 200").fetchone()[0] >= 1


# ----------------------------------------------------------------------------- reload
def test_a_reload_with_a_broken_file_keeps_serving_the_last_good_configuration(tmp_path):
    import shutil

    from served import ROOT
    for name in ("policies", "mappings", "valuesets"):
        shutil.copytree(ROOT / name, tmp_path / name)
    server = Served(tmp_path, CDSHOOKS_POLICIES=str(tmp_path / "policies"),
                    CDSHOOKS_MAPPINGS=str(tmp_path / "mappings"))
    try:
        policy = tmp_path / "policies" / "prenatal-cfdna-screening.yaml"
        good = policy.read_text()
        policy.write_text(good.replace("default: met\n", "default: maybe\n", 1))
        before = server.worker_pids()
        os.kill(server.process.pid, signal.SIGHUP)
        _wait_for(lambda: "reload refused" in server.log.read_text(), 30)
        _wait_for(lambda: len(server.worker_pids()) == 2, 30)
        assert server.process.poll() is None
        assert server.hook_call(timeout=5) == 200
        assert json.loads(server.request("GET", "/healthz")[2])["policies"] == 5
        assert "prenatal-cfdna-screening.yaml:" in server.log.read_text()   # file:line of the problem
        # a worker that dies now restarts with the last good configuration, not the broken files
        os.kill(server.worker_pids()[0], signal.SIGKILL)
        _wait_for(lambda: len(server.worker_pids()) == 2 and server.worker_pids() != before, 30)
        for _ in range(4):
            assert server.hook_call(timeout=5) == 200
        policy.unlink()   # a good reload: one policy fewer
        os.kill(server.process.pid, signal.SIGHUP)
        _wait_for(lambda: "reloaded: 4 policies" in server.log.read_text(), 30)
        _wait_for(lambda: json.loads(server.request("GET", "/healthz")[2])["policies"] == 4, 30)
    finally:
        server.stop()


def _wait_for(condition, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if condition():
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise AssertionError("condition not reached in time")


def test_the_served_process_is_patched_for_gevent_before_ssl_is_imported(served):
    assert "MonkeyPatchWarning" not in served.log.read_text()


# ----------------------------------------------------------------------------- frozen database
def test_with_the_database_frozen_hook_calls_answer_and_feedback_is_503(tmp_path, postgres_schema):
    parts = sqlalchemy.engine.make_url(connect.engine_url(POSTGRES_URL))
    proxy = FreezableProxy((parts.host or "127.0.0.1", parts.port or 5432))
    url = f"postgresql://{parts.username}@127.0.0.1:{proxy.port}/{parts.database}" \
          f"?options=-csearch_path%3D{postgres_schema}"
    server = Served(tmp_path, CDSHOOKS_DATABASE_URL=url, CDSHOOKS_STORE_TIMEOUT_MS="1000")
    feedback = json.dumps({"feedback": [{"card": "c-1", "outcome": "overridden",
                                         "outcomeTimestamp": "2026-01-01T12:00:00Z"}]}).encode()
    try:
        assert server.hook_call(timeout=5) == 200
        proxy.freeze()
        seconds = _timed_calls(server, 6)   # each within 2 s or the socket times out
        status, _, body = server.request("POST", SIGN + "/feedback", feedback,
                                         {"Content-Type": "application/json"}, timeout=5)
        assert status == 503 and outcome(body)["code"] == "transient"
        assert server.request("GET", "/healthz", timeout=5)[0] == 503
        assert max(seconds) < 2.0, seconds
        proxy.thaw()
        _wait_for(lambda: server.request("POST", SIGN + "/feedback", feedback,
                                         {"Content-Type": "application/json"})[0] == 200, 30)
        _wait_for(lambda: _audit_rows(postgres_schema) >= 7, 60)   # the queued rows reach the database
    finally:
        server.stop()
        proxy.close()


def _audit_rows(schema: str) -> int:
    engine = sqlalchemy.create_engine(connect.engine_url(POSTGRES_URL))
    try:
        with engine.connect() as conn:
            return conn.execute(sqlalchemy.text(f"SELECT count(*) FROM {schema}.cdshooks_audit")).scalar()
    finally:
        engine.dispose()
