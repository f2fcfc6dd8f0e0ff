"""The deployment topology measured (``make bench-topology``): throughput through nginx with one vs
two instances, failover when an instance is killed under load, slow clients, memory; writes
``bench/TOPOLOGY.md``.

Everything runs on this machine over loopback (``deploy/loopback.py``: Debian's nginx rendered
from ``deploy/nginx``, ``cdshooks serve`` instances, one fresh schema on the local PostgreSQL per
topology). JWT verification is off so the load generator can send prebuilt requests; the audit
row of every call is written to PostgreSQL.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "deploy"))

import load  # noqa: E402
import loopback  # noqa: E402
import records  # noqa: E402
from run import _commit  # noqa: E402
from run import _machine  # noqa: E402
from run import rss_mb  # noqa: E402
from run import worker_pids  # noqa: E402

SIGN = "/cds-services/medical-policy-order-sign"
ENV = {"CDSHOOKS_TODAY": "2025-06-15"}
REQUESTS, CONCURRENCY = 1500, 8


def message(port: int, body: bytes) -> bytes:
    return (f"POST {SIGN} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode() + body


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time the processes have used so far."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def throughput(postgres_url: str, instances: int, workers: int, bodies: dict[str, bytes]) -> dict:
    """req/s, latency and CPU per call through nginx, and straight to the first instance for the
    proxy's cost. CPU per call holds when neighbours take the cores; req/s does not."""
    out = {}
    with loopback.fresh_schema(postgres_url) as url, tempfile.TemporaryDirectory() as folder, \
            loopback.Topology(Path(folder), url, instances, workers, ENV) as topology:
        time.sleep(2.0)   # workers warm up before serving
        masters = [p.pid for p in topology.instances]
        service = masters + [w for m in masters for w in worker_pids(m)]
        proxy = [topology.nginx.pid] + worker_pids(topology.nginx.pid)
        runs = [(name, topology.port, body) for name, body in bodies.items()]
        if instances == 1:
            runs += [(name + " (no nginx)", topology.instance_ports[0], body) for name, body in bodies.items()]
        for name, port, body in runs:
            load.drive("127.0.0.1", port, SIGN, body, 200, CONCURRENCY)   # warm-up
            before = cpu_seconds(service), cpu_seconds(proxy)
            result = load.drive("127.0.0.1", port, SIGN, body, REQUESTS, CONCURRENCY)
            calls = max(1, len(result.latencies))
            out[name] = (result, (cpu_seconds(service) - before[0]) * 1000 / calls,
                         (cpu_seconds(proxy) - before[1]) * 1000 / calls)
        out["rss"] = {"nginx": sum(rss_mb(p) for p in proxy),
                      "instance": sum(rss_mb(p) for p in service) / len(masters)}
    return out


def failover(postgres_url: str, body: bytes, seconds: float = 8.0, kill_after: float = 3.0) -> dict:
    """Closed-loop load through nginx; instance 0 gets SIGKILL ``kill_after`` seconds in."""
    with loopback.fresh_schema(postgres_url) as url, tempfile.TemporaryDirectory() as folder, \
            loopback.Topology(Path(folder), url, 2, 2, ENV) as topology:
        time.sleep(2.0)
        request = message(topology.port, body)
        events, lock, stop = [], threading.Lock(), threading.Event()

        def client():
            while not stop.is_set():
                started = time.monotonic()
                ok = load._one("127.0.0.1", topology.port, request)
                with lock:
                    events.append((started, time.monotonic(), ok))

        threads = [threading.Thread(target=client) for _ in range(CONCURRENCY)]
        begin = time.monotonic()
        for thread in threads:
            thread.start()
        time.sleep(kill_after)
        killed = time.monotonic()
        topology.kill(0, signal.SIGKILL)
        time.sleep(seconds - kill_after)
        stop.set()
        for thread in threads:
            thread.join()
        survivor = f"127.0.0.1:{topology.instance_ports[1]}"
        after = [c for c in topology.calls()[-50:] if c["path"] == SIGN]
    failed = [done - killed for _, done, ok in events if not ok]
    before = [(s, d) for s, d, ok in events if ok and d < killed]
    around = [d - s for s, d, ok in events if ok and killed - 0.5 <= d <= killed + 1.0]
    later = [(s, d) for s, d, ok in events if ok and s > killed + 1.0]
    return {
        "calls": len(events), "failed": len(failed),
        "last_failure_after_kill_ms": max(failed) * 1000 if failed else 0.0,
        "first_success_after_kill_ms": min((d - killed for s, d, ok in events if ok and s >= killed), default=0) * 1000,
        "rps_before": len(before) / (killed - begin),
        "rps_after": len(later) / (begin + seconds - killed - 1.0),
        "max_latency_around_kill_ms": max(around, default=0) * 1000,
        "survivor_answers_last_50": all(c["upstreams"][-1] == survivor for c in after) and bool(after),
    }


def slow_clients(postgres_url: str, body: bytes, drippers: int = 4, probes: int = 5) -> dict:
    """Latency of normal calls while ``drippers`` clients send their headers a byte at a time:
    through nginx, and straight to one instance (what a service without the front meets)."""
    with loopback.fresh_schema(postgres_url) as url, tempfile.TemporaryDirectory() as folder, \
            loopback.Topology(Path(folder), url, 2, 2, ENV) as topology:
        time.sleep(2.0)
        return {target: _probe(port, body, drippers, probes)
                for target, port in (("nginx", topology.port), ("one instance, no nginx", topology.instance_ports[0]))}


def _probe(port: int, body: bytes, drippers: int, probes: int, timeout: float = 5.0) -> dict:
    stop = threading.Event()

    def drip():
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
                for byte in f"POST {SIGN} HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n".encode():
                    if stop.wait(1.0):
                        return
                    sock.send(bytes([byte]))
        except OSError:
            return

    threads = [threading.Thread(target=drip) for _ in range(drippers)]
    for thread in threads:
        thread.start()
    time.sleep(1.5)
    timings = []
    for _ in range(probes):
        started = time.monotonic()
        try:
            ok = requests.post(f"http://127.0.0.1:{port}{SIGN}", data=body, timeout=timeout,
                               headers={"Content-Type": "application/json"}).status_code == 200
        except requests.RequestException:
            ok = False
        timings.append(time.monotonic() - started if ok else None)
    stop.set()
    for thread in threads:
        thread.join()
    answered = [t for t in timings if t is not None]
    return {"answered": len(answered), "probes": probes, "timeout": timeout,
            "median_ms": sorted(answered)[len(answered) // 2] * 1000 if answered else None,
            "max_ms": max(answered) * 1000 if answered else None}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--postgres", default=os.environ.get("CDSHOOKS_TEST_POSTGRES_URL",
                                                             "postgresql://postgres@127.0.0.1:5432/test"))
    args = parser.parse_args(argv)
    if loopback.nginx_binary() is None:
        print("nginx is not installed (apt-get install nginx-light)", file=sys.stderr)
        return 1
    started, load_at_start = time.monotonic(), os.getloadavg()[0]
    bodies = {"one order": json.dumps(records.request(200, single=True)).encode(),
              "every policy": json.dumps(records.request(200)).encode()}
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))   # stop every process started, drop the schemas
    results = {"throughput": {}}
    for instances, workers in ((1, 2), (2, 2), (1, 1), (2, 1)):
        measured = bodies if workers == 2 else {"one order": bodies["one order"]}
        results["throughput"][(instances, workers)] = cells = throughput(args.postgres, instances, workers, measured)
        runs = [(name, *cell) for name, cell in cells.items() if name != "rss"]
        print(f"{instances} x {workers}: " + ", ".join(f"{name} {r.rps:.0f} req/s {cpu:.1f}+{proxy:.2f} ms CPU"
                                                       for name, r, cpu, proxy in runs), file=sys.stderr)
    results["failover"] = failover(args.postgres, bodies["one order"])
    print(f"failover: {results['failover']}", file=sys.stderr)
    results["slow"] = slow_clients(args.postgres, bodies["one order"])
    print(f"slow clients: {results['slow']}", file=sys.stderr)
    results["seconds"] = time.monotonic() - started
    results["load"] = (load_at_start, os.getloadavg()[0])
    write(results, len(bodies["one order"]), len(bodies["every policy"]))
    print((ROOT / "bench" / "TOPOLOGY.md").read_text())
    return 0


def write(r: dict, one_bytes: int, every_bytes: int) -> None:
    lines = [
        "# Topology benchmark", "",
        f"- **Machine:** {_machine()}",
        f"- **Date:** {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} · **commit** `{_commit()}` · "
        f"whole run {r['seconds']:.0f} s",
        "- **Setup:** `python bench/topology.py`: Debian's nginx (`deploy/nginx`) on loopback in front of "
        "`cdshooks serve` instances sharing one PostgreSQL schema (audit row per call), closed loop, "
        f"{REQUESTS} requests at c={CONCURRENCY}; 200-resource record, one order ({one_bytes // 1024} KiB) "
        f"or every policy ({every_bytes // 1024} KiB). "
        "Load generator, nginx, instances and PostgreSQL share the same 2 cores.",
        "", "## Throughput", "",
        f"Load average (1 min) at start {r['load'][0]:.1f}, at end {r['load'][1]:.1f}: req/s depends on what the "
        "neighbours take; CPU per call (service: gunicorn master and workers; nginx: master and worker) does not.", "",
        "| instances × workers | request | req/s | p50 (ms) | p99 (ms) | errors "
        "| service CPU per call (ms) | nginx CPU per call (ms) |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for (instances, workers), cells in r["throughput"].items():
        for name, cell in cells.items():
            if name != "rss":
                result, cpu, proxy = cell
                lines.append(f"| {instances} × {workers} | {name} | {result.rps:.0f} | {result.p50_ms:.1f} | "
                             f"{result.p99_ms:.1f} | {result.errors} | {cpu:.2f} | {proxy:.2f} |")
    lines += ["", "## Memory (RSS)", "", "| topology | nginx (MB) | per instance: master + workers (MB) |",
              "|---|---:|---:|"]
    for (instances, workers), cells in r["throughput"].items():
        lines.append(f"| {instances} × {workers} | {cells['rss']['nginx']:.1f} | {cells['rss']['instance']:.1f} |")
    f = r["failover"]
    lines += ["", "## Failover: SIGKILL of one of two instances under load (one order, c=8)", "",
              f"- calls: {f['calls']}; failed: {f['failed']} "
              "(calls in flight on the killed instance: 502 from nginx, or a connection closed mid-answer)",
              f"- last failure {f['last_failure_after_kill_ms']:.0f} ms after the kill; "
              f"first success of a call sent after it {f['first_success_after_kill_ms']:.0f} ms after",
              "- slowest call answered within 0.5 s before to 1 s after the kill: "
              f"{f['max_latency_around_kill_ms']:.0f} ms",
              f"- throughput {f['rps_before']:.0f} req/s before, {f['rps_after']:.0f} req/s on the survivor after",
              f"- the last 50 calls all answered by the survivor: {'yes' if f['survivor_answers_last_50'] else 'NO'}",
              "", "## Slow clients (4 connections sending headers 1 byte/s; 5 normal calls, 5 s timeout each)",
              "",
              "| target | answered | median (ms) | max (ms) |", "|---|---:|---:|---:|"]
    for target, s in r["slow"].items():
        median = f"{s['median_ms']:.1f}" if s["median_ms"] is not None else "—"
        worst = f"{s['max_ms']:.1f}" if s["max_ms"] is not None else "—"
        lines.append(f"| {target} | {s['answered']}/{s['probes']} | {median} | {worst} |")
    lines += ["", "Numbers on this shared 2-core VM drift by up to ±40 % between runs; compare within one run."]
    (ROOT / "bench" / "TOPOLOGY.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    sys.exit(main())
