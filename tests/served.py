"""`cdshooks serve` as a real process on an ephemeral loopback port, for the integration tests.

Every process started here runs in its own session and is killed (the whole group) by ``stop``.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from loopback import free_port  # deploy/ is on the test path (conftest)

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
EXAMPLE = ROOT / "examples" / "cfdna-at-8w2d.json"
SIGN = "/cds-services/medical-policy-order-sign"


class Served:
    """One ``cdshooks serve --workers 2`` process group; its combined output goes to ``log``."""

    def __init__(self, folder: Path, args: tuple = (), **env: str):
        self.port = free_port()
        self.log = folder / "serve.log"
        environment = {key: value for key, value in os.environ.items() if not key.startswith("CDSHOOKS_")}
        environment.update({"CDSHOOKS_DATABASE_URL": f"sqlite:///{folder / 'db.sqlite3'}",
                            "CDSHOOKS_TODAY": "2025-06-15"}, **env)
        with open(self.log, "wb") as out:
            self.process = subprocess.Popen(
                [str(BIN / "cdshooks"), "serve", "--host", "127.0.0.1", "--port", str(self.port), "--workers", "2",
                 *args],
                cwd=ROOT, env=environment, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        self.wait_ready()

    def wait_ready(self, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"cdshooks serve exited: {self.log.read_text()}")
            try:
                if self.request("GET", "/healthz", timeout=2)[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"cdshooks serve did not become ready: {self.log.read_text()}")

    def request(self, method: str, path: str, body: bytes = b"", headers: dict | None = None,
                timeout: float = 10.0) -> tuple[int, dict, bytes]:
        """One request on a fresh connection; (status, headers, body)."""
        head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\nConnection: close\r\n"
        for name, value in {"Content-Length": str(len(body)), **(headers or {})}.items():
            head += f"{name}: {value}\r\n"
        with socket.create_connection(("127.0.0.1", self.port), timeout=timeout) as sock:
            sock.sendall(head.encode() + b"\r\n" + body)
            return read_response(sock)

    def hook_call(self, timeout: float) -> int:
        return self.request("POST", SIGN, EXAMPLE.read_bytes(), {"Content-Type": "application/json"},
                            timeout=timeout)[0]

    def worker_pids(self) -> list[int]:
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        return sorted(int(pid) for pid in children.read_text().split())

    def stop(self) -> None:
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
        except ProcessLookupError:
            pass


def read_response(sock: socket.socket) -> tuple[int, dict, bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"connection closed after {data!r}")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return int(lines[0].split()[1]), headers, body


def outcome(body: bytes) -> dict:
    """The single issue of an OperationOutcome body."""
    value = json.loads(body)
    assert value["resourceType"] == "OperationOutcome", value
    return value["issue"][0]
