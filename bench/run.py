"""The whole benchmark (``make bench``, ``make bench QUICK=1``): engine time, then HTTP latency of
the service against the floor in alternating rounds, a real-record size sweep, worker memory;
writes ``bench/RESULTS.md``.

Everything runs on this machine over loopback.  The floor (``bench/floor.py``: read and parse the
body) and the service (as ``cdshooks serve --workers 2`` runs it) are up at the same time, each on
a socket this process bound (``bench/serve.py``), under the same gunicorn gevent settings.  Each
shape is measured in rounds that alternate floor, service, floor, service…, so a neighbour's load
on this shared machine falls on both sides of every ratio instead of on one of them.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "deploy"))

import engine  # noqa: E402
import load  # noqa: E402
import records  # noqa: E402
import report  # noqa: E402
import sweep  # noqa: E402
from loopback import wait_http  # noqa: E402

from cdshooks.serve.server import freeze_heap  # noqa: E402

SIGN = "/cds-services/medical-policy-order-sign"
SELECT = "/cds-services/medical-policy-order-select"
# name, path, record size, request options; the first three are the goals of issue 16
SHAPES = [("order-sign, no policy applies", SIGN, 1000, {"uncovered": True}),
          ("order-sign, one order", SIGN, 200, {"single": True}),
          ("order-sign, every policy", SIGN, 200, {}),
          ("order-select, every policy", SELECT, 200, {"hook": "order-select"})]
FULL = {"rounds": 6, "per_round": 250, "throughput": 1500, "memory": 10_000, "sweep_calls": 40,
        "engine": engine.SIZES}
QUICK = {"rounds": 4, "per_round": 50, "throughput": 200, "memory": 0, "sweep_calls": 6, "engine": (200,)}


def worker_pids(master: int) -> list[int]:
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == master:
            pids.append(int(stat.parent.name))
    return sorted(pids)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def listening_socket() -> socket.socket:
    """A socket bound to an ephemeral loopback port, already listening: no race for the port."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def start(sock: socket.socket, env: dict, floor: bool, tree: Path = ROOT, workers: int = 2) -> subprocess.Popen:
    """``bench/serve.py`` on ``sock``; ``tree`` is the source tree to serve (a baseline commit's)."""
    command = [sys.executable, str(ROOT / "bench" / "serve.py"), "--fd", str(sock.fileno()), "--workers", str(workers)]
    if tree != ROOT:
        env = {**env, "PYTHONPATH": str(tree / "src")}   # ahead of this checkout's editable install
    return subprocess.Popen(command + (["--floor"] if floor else []), env=env, cwd=tree, pass_fds=(sock.fileno(),),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)


def checkout(revision: str, folder: Path) -> Path:
    """The files of ``revision`` (src, policies, mappings, valuesets…) unpacked into ``folder``."""
    archive = subprocess.run(["git", "archive", revision], cwd=ROOT, capture_output=True, check=True).stdout
    folder.mkdir()
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True)
    return folder


def stop(process: subprocess.Popen) -> None:
    os.killpg(process.pid, signal.SIGTERM)
    process.wait(timeout=20)


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time the processes ``pids`` have used so far."""
    ticks = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def alternate(ports: dict[str, int], path: str, body: bytes, rounds: int, requests: int, concurrency: int,
              pids: dict[str, list[int]] | None = None) -> dict:
    """Rounds of ``requests`` calls, floor then service, repeated; results pooled per server (with
    the CPU time its workers used, when ``pids`` names them)."""
    pooled = {name: load.Result([], 0, 0.0) for name in ports}
    for name, port in ports.items():
        load.drive("127.0.0.1", port, path, body, 30, 1)   # warm-up
    for _ in range(rounds):
        for name, port in ports.items():
            workers = (pids or {}).get(name, [])
            before = cpu_seconds(workers)
            got = load.drive("127.0.0.1", port, path, body, requests, concurrency)
            was = pooled[name]
            pooled[name] = load.Result(was.latencies + got.latencies, was.errors + got.errors,
                                       was.elapsed + got.elapsed, was.cpu_s + cpu_seconds(workers) - before)
    return pooled


def measure_engine(sizes) -> dict:
    results = {}
    app = engine.make_app()
    freeze_heap()   # as a gunicorn worker does after start-up
    for size in sizes:
        repeats = 200 if size <= 200 else (40 if size <= 2000 else 8)
        cells = []
        for single in (False, True):
            engine.engine_times(app, size, 3, single)
            cells += load.median_and_p99_ms(engine.engine_times(app, size, repeats, single))
        results[size] = cells
        print(f"engine {size}: every policy median {cells[0]:.2f} ms; one order median {cells[2]:.2f} ms", flush=True)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds and calls: under two minutes")
    parser.add_argument("--baseline", metavar="REV", help="also serve this git revision, in the same alternating "
                        "rounds (before/after a change in one run)")
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL
    started = time.monotonic()
    results: dict = {"quick": args.quick, "baseline": None, "load_before": os.getloadavg(),
                     "engine": measure_engine(plan["engine"])}
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "CDSHOOKS_TODAY": "2025-06-15", "CDSHOOKS_DATABASE_URL": f"sqlite:///{tmp}/bench.sqlite3",
               "CDSHOOKS_PUBLIC_BASE_URL": "https://cds.example.org", "CDSHOOKS_MAX_BODY_BYTES": str(200 * 1024 * 1024)}
        trees = {"floor": ROOT, "service": ROOT}
        if args.baseline:
            baseline = f"baseline {args.baseline}"
            trees = {"floor": ROOT, baseline: checkout(args.baseline, Path(tmp, "baseline")), "service": ROOT}
            results["baseline"] = baseline
        sockets = {name: listening_socket() for name in trees}
        processes = {name: start(sock, env, name == "floor", trees[name]) for name, sock in sockets.items()}
        try:
            ports = {name: sock.getsockname()[1] for name, sock in sockets.items()}
            for sock in sockets.values():
                sock.close()   # the servers hold their own copies
            for port in ports.values():
                wait_http(port)
            time.sleep(1.0)
            pids = {name: worker_pids(process.pid) for name, process in processes.items()}
            workers = pids["service"]
            results["rss_start"] = [rss_mb(pid) for pid in workers]
            measure = functools.partial(alternate, pids=pids)
            results["shapes"] = {}
            for name, path, size, options in SHAPES:
                body = json.dumps(records.request(size, **options)).encode()
                latency = measure(ports, path, body, plan["rounds"], plan["per_round"], 1)
                throughput = measure(ports, path, body, 2, plan["throughput"] // 2, 8)
                results["shapes"][name] = {"size": size, "bytes": len(body), "latency": latency,
                                           "throughput": throughput}
                print(f"{name}: p50 floor {latency['floor'].p50_ms:.2f} ms, service {latency['service'].p50_ms:.2f} ms "
                      f"(×{latency['service'].p50_ms / latency['floor'].p50_ms:.2f})", flush=True)
            results["sweep"] = sweep.run(ports, SIGN, plan["sweep_calls"], measure)
            if plan["memory"]:
                body = json.dumps(records.request(200)).encode()
                load.drive("127.0.0.1", ports["service"], SIGN, body, plan["memory"], 4)
            results["requests_for_rss"] = plan["memory"]
            results["rss_end"] = [rss_mb(pid) for pid in workers]
        finally:
            for process in processes.values():
                stop(process)
    results["load_after"] = os.getloadavg()
    results["seconds"] = time.monotonic() - started
    text = report.render(results, _machine(), _commit())
    (ROOT / "bench" / "RESULTS.md").write_text(text, encoding="utf-8")
    print(text)
    return 0


def _commit() -> str:
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "src", "policies", "mappings"],
                               cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
        return head + (" + uncommitted changes" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor() or "unknown CPU")
    memory = int(Path("/proc/meminfo").read_text().split()[1]) / 1024 / 1024
    return f"{os.cpu_count()} cores ({cpu}), {memory:.0f} GiB, Python {platform.python_version()}, {platform.system()}"


if __name__ == "__main__":
    sys.exit(main())
