"""In-process A/B of two source trees, and a profile of one hook call by room.

``--a DIR --b DIR``: two workers, each importing ``cdshooks`` from its own ``src`` folder (say a
``git archive`` of main and this checkout), answer the bench's one-order and every-policy
200-resource requests with ``pipeline.answer`` (plus the response JSON); rounds alternate A, B,
B, A… so that load from other work on the machine falls on both alike. Prints µs per call
(median of every call of every round), wall and the worker thread's CPU time (steadier on a
shared machine), and the median of the rounds' B/A ratios.

``--profile SHAPE``: cProfile that many calls in this process and print the share of the call's
time spent under each room (cumulative time of the room's functions entered from outside it).
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import json
import os
import pstats
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHAPES = {"one": True, "every": False}   # shape -> records.request(single=…)


def _caller(size: int = 200):
    """A function answering one shape's request in a fresh app; the bodies are built once."""
    sys.path.insert(0, str(ROOT / "bench"))
    import engine
    import records

    from cdshooks import jsonio
    from cdshooks import pipeline
    from cdshooks import registry
    from cdshooks import settings

    app = engine.make_app()
    with app.app_context():
        loaded, config = registry.get(), settings.get()
    service = next(s for s in loaded.services.values() if s.hook == "order-sign")
    bodies = {shape: records.request(size, single=single) for shape, single in SHAPES.items()}

    def call(shape: str) -> None:
        hook_call = pipeline.offline_call(service, bodies[shape], config)
        jsonio.dumps(pipeline.answer(loaded, config, hook_call).body)
    return call


def child() -> int:
    """Worker: one line ``SHAPE N`` in, the N calls' (wall, CPU) times in seconds as JSON out."""
    call = _caller()
    for shape in SHAPES:
        for _ in range(20):   # warm-up
            call(shape)
    gc.freeze()   # as a gunicorn worker does after start-up (serve/server.freeze_heap)
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        shape, n = line.split()
        times = []
        for _ in range(int(n)):
            started, cpu = time.perf_counter(), time.thread_time()
            call(shape)
            times.append((time.perf_counter() - started, time.thread_time() - cpu))
        print(json.dumps(times), flush=True)
    return 0


def compare(trees: dict[str, str], rounds: int, calls: int) -> dict:
    workers = {}
    for name, src in trees.items():
        env = dict(os.environ, PYTHONPATH=str(Path(src).resolve()))
        workers[name] = subprocess.Popen([sys.executable, __file__, "--child"], stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE, text=True, env=env)
        assert json.loads(workers[name].stdout.readline())["ready"]
    times = {(name, shape): [] for name in trees for shape in SHAPES}
    ratios = {shape: [] for shape in SHAPES}   # B's round median over A's, round by round (CPU time)
    for i in range(rounds):
        for shape in SHAPES:
            medians = {}
            for name in sorted(workers, reverse=bool(i % 2)):   # A B, then B A: no seat is favoured
                workers[name].stdin.write(f"{shape} {calls}\n")
                workers[name].stdin.flush()
                got = json.loads(workers[name].stdout.readline())
                times[name, shape] += got
                medians[name] = statistics.median(cpu for _, cpu in got)
            ratios[shape].append(medians["B"] / medians["A"])
    for worker in workers.values():
        worker.stdin.close()
        worker.wait()
    out = {f"{name} {shape} µs (wall, CPU)": [round(statistics.median(t[k] for t in got) * 1e6) for k in (0, 1)]
           for (name, shape), got in times.items()}
    return out | {f"B/A {shape} CPU (median of round ratios)": round(statistics.median(r), 3)
                  for shape, r in ratios.items()}

ROOMS = ("cdshooks.policy.evaluate", "cdshooks.policy.compile", "cdshooks.policy.logic",
         "cdshooks.policy.applicability", "cdshooks.respond.explain",
         "cdshooks.respond", "cdshooks.facts", "cdshooks.fhir", "cdshooks.cds", "cdshooks.jsonio")


def profile(shape: str, calls: int) -> dict:
    """Share (%) of the profiled calls' time under each room, entered from outside the room."""
    call = _caller()
    for _ in range(20):
        call(shape)
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(calls):
        call(shape)
    profiler.disable()
    stats = pstats.Stats(profiler).stats
    total = max(ct for (_, _, name), (_, _, _, ct, _) in stats.items() if name == "call")
    shares = {}
    for room in ROOMS:
        inside = {f for f in stats if _module(f[0]).startswith(room)}
        # cumulative time of the room's functions, counted only for calls coming from outside it
        entered = sum(t for f in inside for caller, (_, _, _, t) in stats[f][4].items() if caller not in inside)
        own = sum(stats[f][2] for f in inside)   # time in the room's own code, not what it calls
        shares[room] = f"{100 * entered / total:.1f} (own code {100 * own / total:.1f})"
    return {"µs per call (profiled)": round(total / calls * 1e6), "share %": shares}


def _module(filename: str) -> str:
    parts = Path(filename).with_suffix("").parts
    return ".".join(parts[parts.index("cdshooks"):]) if "cdshooks" in parts else ""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--a", help="src folder of tree A")
    parser.add_argument("--b", help="src folder of tree B")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--calls", type=int, default=30, help="calls per round (A/B) or profiled calls")
    parser.add_argument("--profile", choices=list(SHAPES))
    args = parser.parse_args()
    if args.child:
        return child()
    if args.profile:
        print(json.dumps(profile(args.profile, args.calls), indent=1, ensure_ascii=False))
        return 0
    trees = {"A": args.a or str(ROOT / "src"), "B": args.b or str(ROOT / "src")}
    print(json.dumps(compare(trees, args.rounds, args.calls), indent=1, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
