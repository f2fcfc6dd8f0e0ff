"""Where a live worker's CPU goes, by stage of the call (``make profile``: bench/STAGES.md).

Serves the service (and, with ``--floor``, the floor) with one gunicorn worker on a socket this
process bound, drives the benchmark's shapes at c=1 and samples the worker with py-spy
(``--nonblocking``: the worker is never paused, so the samples are what it would do anyway).
Prints CPU milliseconds per call for each stage below. A sample counts for the first stage whose
marker its stack holds, so the stages add up to the whole.

Without pausing the worker, py-spy sometimes reads a stack while it changes and gets only its top
frames; such samples are counted as unattributed. py-spy sees Python frames: C work (orjson, the
allocator, the garbage collector) counts for the Python line that caused it, e.g. freeing a
call's objects is the line that drops the last reference to them (Flask popping the request
context).
"""

from __future__ import annotations

import argparse
import collections
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "deploy"))

import load  # noqa: E402
import records  # noqa: E402
import run  # noqa: E402
from loopback import wait_http  # noqa: E402

SHAPES = {"none": (1000, {"uncovered": True}), "one": (200, {"single": True}), "every": (200, {})}
# (stage, markers of a sampled stack): the first stage with a marker in the stack takes the sample
STAGES = [
    ("store writer (background threads)", "Writer._run", "Store._write_rows"),
    ("read and parse the body", "read_json_object"),
    ("parse and validate the request", "pipeline.py:79"),
    ("which policies apply", "match_orders"),
    ("prefetch slots", "resolve (cdshooks/fetch"),
    ("record index", "build (cdshooks/fhir/record.py"),
    ("facts and criteria", "evaluate (cdshooks/policy/applicability.py"),
    ("confirm applicability (facts)", "confirmed (cdshooks/policy/applicability.py"),
    ("form launches (questions, rows)", "open (cdshooks/web/forms.py"),
    ("cards and coverage-information", "_respond (cdshooks/pipeline.py"),
    ("rest of the pipeline", "answer (cdshooks/pipeline.py"),
    ("response JSON", "response (cdshooks/jsonio.py"),
    ("log line and audit row", "_log_and_audit"),
    ("freeing the call's objects", "flask/app.py:1527"),
    ("Flask, Werkzeug, CORS", "Flask.wsgi_app"),
    ("floor app (read, parse, free)", "app (floor.py"),
    ("gunicorn, gevent, sockets", "gevent/", "gunicorn/"),
    ("unattributed (a stack py-spy read while it changed)", ""),
]


def sample(shape: str, seconds: int, floor: bool) -> tuple[collections.Counter, int]:
    """Samples per stage and the calls answered while py-spy sampled one worker for ``seconds``."""
    size, options = SHAPES[shape]
    body = json.dumps(records.request(size, **options)).encode()
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "CDSHOOKS_TODAY": "2025-06-15", "CDSHOOKS_DATABASE_URL": f"sqlite:///{tmp}/b.sqlite3",
               "CDSHOOKS_PUBLIC_BASE_URL": "https://cds.example.org",
               "CDSHOOKS_MAX_BODY_BYTES": str(200 * 1024 * 1024)}
        sock = run.listening_socket()
        process = run.start(sock, env, floor, workers=1)
        port = sock.getsockname()[1]
        sock.close()
        try:
            wait_http(port)
            load.drive("127.0.0.1", port, run.SIGN, body, 200, 1)   # warm-up
            (worker,) = run.worker_pids(process.pid)
            done, calls = threading.Event(), [0]

            def drive():
                while not done.is_set():
                    calls[0] += len(load.drive("127.0.0.1", port, run.SIGN, body, 20, 1).latencies)
            driver = threading.Thread(target=drive)
            driver.start()
            out = Path(tmp, "samples.txt")
            subprocess.run(["py-spy", "record", "-p", str(worker), "-d", str(seconds), "-r", "1000", "--threads",
                            "--nonblocking", "--format", "raw", "-o", str(out)], check=True, capture_output=True)
            done.set()
            driver.join()
            return _by_stage(out.read_text()), calls[0]
        finally:
            run.stop(process)


def _by_stage(raw: str) -> collections.Counter:
    stages = collections.Counter()
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            stages[next(name for name, *markers in STAGES if any(m in stack for m in markers))] += int(count)
    return stages


def table(shape: str, seconds: int, floor: bool) -> list[str]:
    """One shape's stages as Markdown: CPU ms per call of the service's worker (and the floor's)."""
    servers = ["service"] + (["floor"] if floor else [])
    got = {server: sample(shape, seconds, server == "floor") for server in servers}
    size, _ = SHAPES[shape]
    lines = [f"## {shape} ({size:,} resources): CPU ms per call of one worker", "",
             "| stage | " + " | ".join(servers) + " |", "|---|" + "---:|" * len(servers)]
    for name, *_ in STAGES:
        cells = [got[s][0][name] / got[s][1] for s in servers]   # samples at 1 kHz: ms
        if any(cells):
            lines.append(f"| {name} | " + " | ".join(f"{c:.3f}" for c in cells) + " |")
    totals = [sum(got[s][0].values()) / got[s][1] for s in servers]
    lines += ["| **total** | " + " | ".join(f"**{t:.3f}**" for t in totals) + " |", "",
              "Calls sampled: " + ", ".join(f"{s} {got[s][1]:,}" for s in servers) + ".", ""]
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", choices=list(SHAPES), action="append", help="repeatable; default: all")
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--floor", action="store_true", help="also profile the floor, for its total")
    parser.add_argument("--write", action="store_true", help="write bench/STAGES.md")
    args = parser.parse_args()
    lines = ["# Where a worker's CPU goes", "",
             f"- **Machine:** {run._machine()}",
             f"- **Date:** {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC · **commit** `{run._commit()}` · "
             f"`make profile`: one gunicorn worker, c=1, py-spy at 1,000 samples/s for {args.seconds} s per server",
             "- Each sample counts for the first stage its stack shows (`bench/stages.py`: `STAGES`); C work "
             "(orjson, the allocator, the collector) counts for the Python line that caused it.", ""]
    for shape in args.shape or list(SHAPES):
        lines += table(shape, args.seconds, args.floor)
        print("\n".join(lines[-(len(STAGES) + 8):]), flush=True)
    if args.write:
        (ROOT / "bench" / "STAGES.md").write_text("\n".join(lines), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
