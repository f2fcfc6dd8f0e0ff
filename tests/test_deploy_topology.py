"""The shipped topology, live: Debian's nginx (deploy/nginx) on loopback in front of two
``cdshooks serve`` instances sharing one PostgreSQL schema, JWT verification on.

Integration tests with real processes (the issue asks for them); they skip without nginx or
PostgreSQL unless CI requires both (CDSHOOKS_REQUIRE_NGINX, CDSHOOKS_REQUIRE_POSTGRES).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from contextlib import contextmanager

import loopback
import pytest
import requests

from cdshooks.settings import Settings
from cdshooks.store import db as store
from conftest import ROOT
from conftest import fresh_postgres_url
from test_auth import ISS
from test_auth import JWKS
from test_auth import TOKENS_SEEN
from test_auth import token
from test_deploy_files import healthcheck_command

SIGN = "/cds-services/medical-policy-order-sign"
FEEDBACK = SIGN + "/feedback"
HOOK_BODY = (ROOT / "examples" / "pump-trial-opioids-weaned-30pct.json").read_bytes()


def _require_nginx() -> None:
    if loopback.nginx_binary() is None:
        if os.environ.get("CDSHOOKS_REQUIRE_NGINX"):
            pytest.fail("nginx is required but not installed (apt-get install nginx-light)")
        pytest.skip("nginx not installed")


@contextmanager
def running_topology(folder):
    """Two instances behind nginx on a fresh PostgreSQL schema, trusting the test issuer; after
    it stops, no token it was sent appears in any nginx or service log."""
    _require_nginx()
    issuers = folder / "issuers.json"
    issuers.write_text(json.dumps({ISS: {"jwks": JWKS}}))
    with fresh_postgres_url() as url:
        with pytest.MonkeyPatch.context() as env:   # not the developer's CDSHOOKS_* settings
            for key in [k for k in os.environ if k.startswith("CDSHOOKS_")]:
                env.delenv(key)
            topology = loopback.Topology(folder, url, instances=2, workers=2, env={
                "CDSHOOKS_TRUSTED_ISSUERS": str(issuers), "CDSHOOKS_TODAY": "2025-06-15"})
        topology.database_url = url
        with topology:
            yield topology
        logs = topology.logs()
    signatures = {t.rsplit(".", 1)[-1] for t in TOKENS_SEEN} - {""}   # unsigned test tokens have none
    assert not [value for value in set(TOKENS_SEEN) | signatures if value in logs], \
        "a token reached the nginx or service logs"


class Client:
    """Calls as a CDS client makes them: a fresh JWT for the exact URL called."""

    def __init__(self, topology):
        self.topology = topology

    def jwt(self, path: str) -> str:
        return token(claims={"aud": self.topology.url + path})

    def post(self, path, body: bytes, port=None, jwt=None, headers=None, timeout=30):
        port = port or self.topology.port
        headers = {"Content-Type": "application/json",
                   "Authorization": f"Bearer {jwt or self.jwt(path)}", **(headers or {})}
        return requests.post(f"http://127.0.0.1:{port}{path}", data=body, headers=headers, timeout=timeout)


def feedback_body(card: str) -> bytes:
    return json.dumps({"feedback": [{"card": card, "outcome": "overridden",
                                     "outcomeTimestamp": "2026-01-01T12:00:00Z"}]}).encode()


def stored_cards(topology) -> list[str]:
    database = store.Store(topology.database_url)
    try:
        return [row["card_uuid"] for row in database.rows(store.feedback)]
    finally:
        database.dispose()


def calls_logged(topology, count: int, timeout: float = 5.0) -> list[dict]:
    """nginx logs a call just after answering it: wait until ``count`` calls are in the log."""
    deadline = time.monotonic() + timeout
    while True:
        calls = topology.calls()
        if len(calls) >= count or time.monotonic() > deadline:
            return calls
        time.sleep(0.05)


@pytest.fixture(scope="module")
def topology(tmp_path_factory):
    with running_topology(tmp_path_factory.mktemp("topology")) as running:
        yield running


@pytest.fixture
def client(topology):
    return Client(topology)


def test_the_image_healthcheck_probes_the_port_in_cdshooks_port(topology):
    """The Dockerfile's HEALTHCHECK, run as Docker would, against a live instance and a dead port."""
    path = f"{os.path.dirname(sys.executable)}{os.pathsep}{os.environ.get('PATH', '')}"

    def probe(port) -> int:
        env = {**os.environ, "PATH": path, "CDSHOOKS_PORT": str(port)}
        return subprocess.run(healthcheck_command(), env=env, capture_output=True, timeout=30).returncode

    assert probe(topology.instance_ports[0]) == 0
    assert probe(loopback.free_port()) == 1


def test_calls_spread_over_both_instances(topology, client):
    before = len(topology.calls())
    for _ in range(20):
        assert client.post(SIGN, HOOK_BODY).status_code == 200
    answered = [c["upstreams"][-1] for c in calls_logged(topology, before + 20)[before:]]
    assert len(answered) == 20
    for port in topology.instance_ports:
        assert answered.count(f"127.0.0.1:{port}") >= 5, answered


def test_a_jti_replayed_to_the_other_instance_is_refused(topology, client):
    jwt = client.jwt(SIGN)
    before = len(topology.calls())
    assert client.post(SIGN, HOOK_BODY, jwt=jwt).status_code == 200
    first = calls_logged(topology, before + 1)[before]["upstreams"][-1]
    other = next(p for p in topology.instance_ports if f"127.0.0.1:{p}" != first)
    replayed = client.post(SIGN, HOOK_BODY, port=other, jwt=jwt)
    assert replayed.status_code == 401
    assert replayed.json()["issue"][0]["diagnostics"] == "Unauthorized"
    assert client.post(SIGN, HOOK_BODY, jwt=jwt).status_code == 401   # and through nginx


def test_feedback_through_either_instance_is_stored_once(topology, client):
    card = f"card-{uuid.uuid4()}"
    first, second = topology.instance_ports
    answers = [client.post(FEEDBACK, feedback_body(card), port=port).json()["stored"]
               for port in (first, second, None, None)]
    assert answers == [1, 0, 0, 0]
    assert stored_cards(topology).count(card) == 1


def test_a_form_link_made_by_one_instance_opens_on_every_instance(topology, client):
    cards = client.post(SIGN, HOOK_BODY).json()["cards"]
    links = [link["url"] for card in cards for link in card.get("links", []) if "/forms/" in link["url"]]
    assert links and links[0].startswith(topology.url + "/forms/")   # the public URL: nginx's
    path = links[0][len(topology.url):]
    for port in topology.instance_ports:
        page = requests.get(f"http://127.0.0.1:{port}{path}", timeout=10)
        assert page.status_code == 200 and "text/html" in page.headers["Content-Type"]


def test_forged_host_and_forwarded_headers_do_not_change_the_public_url(topology, client):
    forged = {"Host": "evil.example", "X-Forwarded-Host": "evil.example", "X-Forwarded-Proto": "https"}
    answer = requests.get(f"{topology.url}/fhir/Questionnaire/intrathecal-pain-pump", headers=forged, timeout=10)
    assert answer.status_code == 200
    assert answer.json()["url"].startswith(topology.url + "/")
    evil_audience = token(claims={"aud": "https://evil.example" + SIGN})
    assert client.post(SIGN, HOOK_BODY, jwt=evil_audience, headers=forged).status_code == 401


def test_nginx_takes_exactly_the_service_body_limit_and_refuses_more_as_operation_outcome(topology, client):
    limit = Settings.model_fields["MAX_BODY_BYTES"].default
    at_limit = b"{}" + b" " * (limit - 2)
    reached = client.post(SIGN, at_limit)
    assert reached.status_code == 422   # passed nginx; the service refused the empty object itself
    over = client.post(SIGN, at_limit + b" ")
    assert over.status_code == 413
    assert over.headers["Content-Type"] == "application/json"
    assert over.headers["Access-Control-Allow-Origin"] == "*"
    assert over.json()["issue"][0]["code"] == "too-costly"


def _drip(port: int, jwt: str, stop: threading.Event, in_body: bool) -> None:
    """A slow client with a valid token: headers (or, after complete headers, the body) one byte
    every 0.5 s. Without the token the service would refuse it before reading the body."""
    head = f"POST {SIGN} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n" \
           f"Authorization: Bearer {jwt}\r\nContent-Length: {len(HOOK_BODY)}\r\n\r\n".encode()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            if in_body:
                sock.sendall(head)
            for byte in (HOOK_BODY if in_body else head):
                if stop.wait(0.5):
                    return
                sock.send(bytes([byte]))
    except OSError:   # dropped by a timeout: what should happen to a client this slow
        return


def test_slow_clients_against_nginx_do_not_delay_normal_calls(topology, client):
    stop = threading.Event()
    slow = [threading.Thread(target=_drip, args=(topology.port, client.jwt(SIGN), stop, i % 2 == 1))
            for i in range(8)]
    for thread in slow:   # 8 slow clients: twice as many as the two instances' four workers
        thread.start()
    try:
        time.sleep(1.5)
        timings = []
        for _ in range(10):
            started = time.monotonic()
            status = client.post(SIGN, HOOK_BODY, timeout=10).status_code
            timings.append((status, round(time.monotonic() - started, 3)))
            time.sleep(0.2)
    finally:
        stop.set()
        for thread in slow:
            thread.join()
    assert all(status == 200 and seconds < 2.0 for status, seconds in timings), timings


def test_an_instance_killed_mid_load_loses_no_acknowledged_feedback_and_the_survivor_answers(tmp_path):
    """And with both killed, nginx answers a 502 OperationOutcome a browser may read."""
    with running_topology(tmp_path) as topology:
        client = Client(topology)
        results, lock, stop = [], threading.Lock(), threading.Event()

        def post_feedback(worker: int) -> None:
            for n in range(10_000):
                if stop.is_set():
                    return
                card, sent = f"kill-{worker}-{n}", time.monotonic()
                try:
                    status = client.post(FEEDBACK, feedback_body(card), timeout=10).status_code
                except requests.RequestException:
                    status = None
                with lock:
                    results.append((card, status, sent, time.monotonic()))

        threads = [threading.Thread(target=post_feedback, args=(i,)) for i in range(6)]
        for thread in threads:
            thread.start()
        time.sleep(2.0)
        topology.kill(0, signal.SIGKILL)
        dead = time.monotonic()
        time.sleep(3.0)
        stop.set()
        for thread in threads:
            thread.join()
        calls = calls_logged(topology, len(results) + 1)
        survivor = f"127.0.0.1:{topology.instance_ports[1]}"
        feedback_calls = [c["upstreams"][-1] for c in calls if c["path"] == FEEDBACK]
        ports_before, ports_after = set(feedback_calls[:20]), set(feedback_calls[-10:])
        topology.kill(1, signal.SIGKILL)
        none_left = client.post(SIGN, HOOK_BODY, timeout=10)
        stored = stored_cards(topology)

    acknowledged = {card for card, status, _, _ in results if status == 200}
    failed = [(status, round(sent - dead, 3)) for _, status, sent, _ in results if status != 200]
    after_kill = [status for _, status, sent, _ in results if sent > dead]
    assert acknowledged and acknowledged <= set(stored)
    assert len(stored) == len(set(stored))
    # Only calls already in flight on the killed instance fail: nginx's 502, or a connection that
    # broke mid-answer (None); neither is an acknowledgement, so the client retries.
    assert all(status in (502, None) and sent_after_death < 0 for status, sent_after_death in failed), failed
    assert len(failed) <= len(threads), failed
    assert len(after_kill) >= 10 and set(after_kill) == {200}
    assert ports_before == {f"127.0.0.1:{port}" for port in topology.instance_ports}   # both served
    assert ports_after == {survivor}
    assert none_left.status_code == 502 and none_left.headers["Access-Control-Allow-Origin"] == "*"
    assert none_left.json()["issue"][0]["code"] == "transient"
    print(f"\nfailover: {len(results)} feedback posts, {len(acknowledged)} acknowledged, "
          f"{len(failed)} failed {failed}, {len(after_kill)} after the kill all 200")

