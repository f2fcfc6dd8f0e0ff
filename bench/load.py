"""A lean closed-loop load generator over loopback: N concurrent clients sending back to back.

Blocking sockets in threads, prebuilt request bytes, minimal response parsing: the generator
shares the two cores with the servers it measures, so it must take as little of them as it can.
"""

from __future__ import annotations

import itertools
import socket
import statistics
import threading
import time
from dataclasses import dataclass


def median_and_p99_ms(seconds: list[float]) -> tuple[float, float]:
    """Median and 99th percentile (nearest rank) of durations in seconds, in milliseconds."""
    ordered = sorted(seconds)
    return statistics.median(ordered) * 1000, ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000


@dataclass(frozen=True)
class Result:
    latencies: list[float]      # seconds, per successful request
    errors: int
    elapsed: float
    cpu_s: float = 0.0          # the server's workers' CPU time (user + system) over these requests

    @property
    def cpu_ms_per_call(self) -> float:
        return self.cpu_s * 1000 / max(1, len(self.latencies) + self.errors)

    @property
    def p50_ms(self) -> float:
        return median_and_p99_ms(self.latencies)[0]

    @property
    def p99_ms(self) -> float:
        return median_and_p99_ms(self.latencies)[1]

    @property
    def rps(self) -> float:
        return len(self.latencies) / self.elapsed


def drive(host: str, port: int, path: str, body: bytes, requests: int, concurrency: int) -> Result:
    """Send ``requests`` POSTs of ``body`` from ``concurrency`` clients; time each one."""
    head = (f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode()
    message = head + body
    counter, lock = itertools.count(), threading.Lock()
    latencies: list[float] = []
    errors = [0]

    def client():
        mine, failed = [], 0
        while True:
            with lock:
                if next(counter) >= requests:
                    break
            started = time.perf_counter()
            if _one(host, port, message):
                mine.append(time.perf_counter() - started)
            else:
                failed += 1
        with lock:
            latencies.extend(mine)
            errors[0] += failed

    threads = [threading.Thread(target=client) for _ in range(concurrency)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return Result(latencies, errors[0], time.perf_counter() - started)


def _one(host: str, port: int, message: bytes) -> bool:
    """One request on a fresh connection (the load generator closes after each response)."""
    try:
        with socket.create_connection((host, port), timeout=30) as sock:
            sock.sendall(message)
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = sock.recv(65536)
                if not chunk:
                    return False
                data += chunk
            head, _, rest = data.partition(b"\r\n\r\n")
            length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                           if line.lower().startswith(b"content-length:")), 0)
            while len(rest) < length:
                chunk = sock.recv(65536)
                if not chunk:
                    return False
                rest += chunk
            return head.split(b" ", 2)[1] == b"200"
    except (OSError, IndexError, ValueError):
        return False
