"""The whole benchmark (``make bench``): engine time, HTTP latency and throughput against the floor,
worker memory; writes ``bench/RESULTS.md``.

Everything runs on this machine over loopback with the service's real server:
``cdshooks serve --workers 2`` (gunicorn, gevent workers, SQLite audit store) and, in the same run,
the floor app under the same gunicorn settings.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import signal
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
from loopback import free_port  # noqa: E402
from loopback import wait_http  # noqa: E402
import records  # noqa: E402

from cdshooks.server import freeze_heap  # noqa: E402

BIN = Path(sys.executable).parent
SIZE = 200
LATENCY_REQUESTS = 2000
THROUGHPUT_REQUESTS = 3000
MEMORY_REQUESTS = 10_000
PATHS = {"order-sign": "/cds-services/medical-policy-order-sign",
         "order-sign, one order": "/cds-services/medical-policy-order-sign",
         "order-select": "/cds-services/medical-policy-order-select"}


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


def start(command: list[str], env: dict) -> subprocess.Popen:
    return subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)


def stop(process: subprocess.Popen) -> None:
    os.killpg(process.pid, signal.SIGTERM)
    process.wait(timeout=20)


def http_runs(port: int, bodies: dict[str, bytes], hooks: list[str]) -> dict:
    out = {}
    for hook in hooks:
        load.drive("127.0.0.1", port, PATHS[hook], bodies[hook], 100, 1)   # warm-up
        latency = load.drive("127.0.0.1", port, PATHS[hook], bodies[hook], LATENCY_REQUESTS, 1)
        throughput = load.drive("127.0.0.1", port, PATHS[hook], bodies[hook], THROUGHPUT_REQUESTS, 8)
        out[hook] = (latency, throughput)
    return out


def main() -> int:
    started = time.monotonic()
    results: dict = {"engine": {}}
    app = engine.make_app()
    freeze_heap()   # as a gunicorn worker does after start-up
    for size in engine.SIZES:
        repeats = 300 if size <= 200 else (60 if size <= 2000 else 12)
        cells = []
        for single in (False, True):
            engine.engine_times(app, size, 3, single)
            cells += load.median_and_p99_ms(engine.engine_times(app, size, repeats, single))
        results["engine"][size] = cells
        print(f"engine {size}: every policy median {cells[0]:.2f} ms; one order median {cells[2]:.2f} ms")

    bodies = {hook: json.dumps(records.request(SIZE, hook=hook.split(",")[0], single="one" in hook)).encode()
              for hook in PATHS}
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "CDSHOOKS_TODAY": "2025-06-15", "CDSHOOKS_DATABASE_URL": f"sqlite:///{tmp}/bench.sqlite3",
               "CDSHOOKS_PUBLIC_BASE_URL": "https://cds.example.org"}
        port = free_port()
        floor = start([str(BIN / "gunicorn"), "--workers", "2", "--worker-class", "gevent", "--no-control-socket", "--bind",
                       f"127.0.0.1:{port}", "--timeout", "30", "--keep-alive", "5", "--chdir", str(ROOT / "bench"),
                       "floor:app"], env)
        try:
            wait_http(port)
            results["floor"] = http_runs(port, bodies, ["order-sign", "order-sign, one order"])
        finally:
            stop(floor)
        port = free_port()
        service = start([str(BIN / "cdshooks"), "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", "2"], env)
        try:
            wait_http(port)
            time.sleep(2.0)   # workers warm up (server.warm_up) before serving
            workers = worker_pids(service.pid)
            results["rss_start"] = [rss_mb(pid) for pid in workers]
            results["service"] = http_runs(port, bodies, list(PATHS))
            done = len(PATHS) * (100 + LATENCY_REQUESTS + THROUGHPUT_REQUESTS)
            if MEMORY_REQUESTS > done:
                load.drive("127.0.0.1", port, PATHS["order-sign"], bodies["order-sign"], MEMORY_REQUESTS - done, 4)
            results["rss_end"] = [rss_mb(pid) for pid in workers]
            results["requests_for_rss"] = max(MEMORY_REQUESTS, done)
        finally:
            stop(service)
    results["seconds"] = time.monotonic() - started
    write_results(results, len(bodies["order-sign"]))
    print((ROOT / "bench" / "RESULTS.md").read_text())
    return 0


def _commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor() or "unknown CPU")
    memory = int(Path("/proc/meminfo").read_text().split()[1]) / 1024 / 1024
    return f"{os.cpu_count()} cores ({cpu}), {memory:.0f} GiB, Python {platform.python_version()}, {platform.system()}"


def write_results(r: dict, body_bytes: int) -> None:
    rows = {hook: r["service"][hook] for hook in PATHS}
    ratios = {hook: rows[hook][0].p50_ms / r["floor"][hook][0].p50_ms for hook in r["floor"]}
    engine_200, engine_2000, engine_20000 = (r["engine"][s][0] for s in (200, 2000, 20000))
    growth = max((end - start) / start * 100 for start, end in zip(r["rss_start"], r["rss_end"]))
    errors = sum(x.errors for pair in r["service"].values() for x in pair)
    lines = [
        "# Benchmark results",
        "",
        f"- **Machine:** {_machine()}",
        f"- **Date:** {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC · **commit** `{_commit()}` · "
        f"whole run {r['seconds']:.0f} s",
        f"- **Setup:** `cdshooks serve --workers 2` (gunicorn gevent workers, SQLite audit row per call, written off the response path) and the floor "
        f"app (`bench/floor.py`: parse the body, answer `{{\"cards\": []}}`) under the same gunicorn settings; "
        f"loopback, closed-loop load generator (`bench/load.py`); record of {SIZE} resources "
        f"({body_bytes / 1024:.0f} KiB request) with all five policies loaded.",
        "- **Two request shapes.** *Every policy*: six draft orders that trigger all five policies in one call "
        "(five evaluations, five cards, four coverage actions). *One order*: a pump trial with its intrathecal opioid, "
        "the usual shape of a real order-sign call (one evaluation).",
        "",
        "## Engine time (in-process: record index, facts, evaluation, response; no HTTP)",
        "",
        "| resources | every policy: median (ms) | p99 (ms) | one order: median (ms) | p99 (ms) |",
        "|---:|---:|---:|---:|---:|",
        *(f"| {size:,} | " + " | ".join(f"{v:.2f}" for v in cells) + " |" for size, cells in r["engine"].items()),
        "",
        f"Growth 200 → 2,000 → 20,000 resources (every policy): ×{engine_2000 / engine_200:.1f}, "
        f"×{engine_20000 / engine_2000:.1f} (linear would be ×10, ×10).",
        "",
        "## HTTP over loopback",
        "",
        "| server | request | c=1 p50 (ms) | c=1 p99 (ms) | c=8 req/s | c=8 p50 (ms) | c=8 p99 (ms) | errors |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
        *(_row("floor", hook, *r["floor"][hook]) for hook in r["floor"]),
        *(_row("cdshooks", hook, *rows[hook]) for hook in PATHS),
        "",
        "**p50 ÷ floor p50 (c=1):** " + "; ".join(f"{hook} {ratio:.2f}" for hook, ratio in ratios.items()),
        "",
        "## Worker memory (RSS)",
        "",
        "| worker | after start-up (MB) | after " + f"{r['requests_for_rss']:,}" + " requests (MB) | growth |",
        "|---|---:|---:|---:|",
        *(f"| {i + 1} | {start:.1f} | {end:.1f} | {(end - start) / start * 100:+.1f} % |"
          for i, (start, end) in enumerate(zip(r["rss_start"], r["rss_end"]))),
        "",
        "## Against the targets (200 resources, all policies loaded)",
        "",
        "| target | every policy | one order |",
        "|---|---|---|",
        _pair("order-sign p50 ≤ 5 ms (c=1)", [(f"{rows[h][0].p50_ms:.2f} ms", rows[h][0].p50_ms <= 5) for h in
                                             ("order-sign", "order-sign, one order")]),
        _pair("order-sign p99 ≤ 20 ms (c=1)", [(f"{rows[h][0].p99_ms:.2f} ms", rows[h][0].p99_ms <= 20) for h in
                                              ("order-sign", "order-sign, one order")]),
        _pair("≥ 400 req/s, 2 workers, c=8", [(f"{rows[h][1].rps:.0f} req/s", rows[h][1].rps >= 400) for h in
                                             ("order-sign", "order-sign, one order")]),
        _pair("p50 ÷ floor p50 ≤ 2.0", [(f"{ratios[h]:.2f}", ratios[h] <= 2.0) for h in
                                        ("order-sign", "order-sign, one order")]),
        f"| zero errors | {errors} | {'met' if errors == 0 else '**not met**'} |",
        f"| engine time linear 200 → 20,000 | ×{engine_20000 / engine_200:.0f} for ×100 data | "
        f"{'met' if engine_20000 / engine_200 <= 110 else '**not met**'} |",
        f"| RSS per worker ≤ 150 MB | {max(r['rss_end']):.0f} MB | {'met' if max(r['rss_end']) <= 150 else '**not met**'} |",
        f"| RSS growth < 5 % over 10,000 requests | {growth:+.1f} % | {'met' if growth < 5 else '**not met**'} |",
        "",
        "Reproduce with `make bench` (about two minutes). Numbers on this shared 2-core VM drift by up to "
        "±40 % between runs as neighbours come and go; compare figures within one run.",
        "",
    ]
    (ROOT / "bench" / "RESULTS.md").write_text("\n".join(lines), encoding="utf-8")


def _pair(name: str, cells) -> str:
    return f"| {name} | " + " | ".join(f"{text} ({'met' if ok else '**not met**'})" for text, ok in cells) + " |"


def _row(server, hook, latency: load.Result, throughput: load.Result) -> str:
    return (f"| {server} | {hook} | {latency.p50_ms:.2f} | {latency.p99_ms:.2f} | {throughput.rps:.0f} | "
            f"{throughput.p50_ms:.2f} | {throughput.p99_ms:.2f} | {latency.errors + throughput.errors} |")


if __name__ == "__main__":
    sys.exit(main())
