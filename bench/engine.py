"""Engine time in-process: parse → policies → record index → facts → evaluation → response JSON.

No HTTP, no database: what one hook call costs the service itself.  Prints median and p99 per
record size; ``--calls`` in-process test-client calls measure the whole Flask path too.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

import records  # noqa: E402
from load import median_and_p99_ms  # noqa: E402

from cdshooks import create_app  # noqa: E402
from cdshooks import jsonio  # noqa: E402
from cdshooks import pipeline  # noqa: E402
from cdshooks import registry  # noqa: E402
from cdshooks import settings  # noqa: E402
from cdshooks.serve.server import freeze_heap  # noqa: E402

SIZES = (20, 200, 2000, 20000)


def make_app(database_url: str = "sqlite://"):
    return create_app({"TESTING": True, "TODAY": "2025-06-15", "DATABASE_URL": database_url,
                       "POLICIES": str(ROOT / "policies"), "MAPPINGS": str(ROOT / "mappings"),
                       "PUBLIC_BASE_URL": "https://cds.example.org", "MAX_BODY_BYTES": 200 * 1024 * 1024})


def engine_times(app, size: int, repeats: int, single: bool = False) -> list[float]:
    """Seconds per call of the engine alone (the body arrives parsed, as after json.loads)."""
    body = records.request(size, single=single)
    with app.app_context():
        loaded, config = registry.get(), settings.get()
    service = next(s for s in loaded.services.values() if s.hook == "order-sign")
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        answer = pipeline.answer(loaded, config, pipeline.offline_call(service, body, config))
        jsonio.dumps(answer.body)
        times.append(time.perf_counter() - started)
    expected = 1 if single else len(loaded.policies.by_id)
    assert len(answer.evaluations) == expected, f"policies applied: {len(answer.evaluations)}, expected {expected}"
    return times


def client_times(app, size: int, calls: int) -> list[float]:
    """Seconds per in-process test-client call (Flask routing, JSON, audit row in SQLite)."""
    data = json.dumps(records.request(size)).encode()
    client = app.test_client()
    times = []
    for _ in range(calls):
        started = time.perf_counter()
        response = client.post("/cds-services/medical-policy-order-sign", data=data, content_type="application/json")
        times.append(time.perf_counter() - started)
        assert response.status_code == 200
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="*", default=list(SIZES))
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--calls", type=int, default=0, help="also time N in-process client calls at 200 resources")
    args = parser.parse_args()
    app = make_app()
    freeze_heap()   # as a gunicorn worker does after start-up
    print("| resources | every policy: median (ms) | p99 (ms) | one order: median (ms) | p99 (ms) |")
    print("|---:|---:|---:|---:|---:|")
    for size in args.sizes:
        repeats = max(10, args.repeats // max(1, size // 200)) if size > 200 else args.repeats
        cells = []
        for single in (False, True):
            engine_times(app, size, 3, single)  # warm-up
            cells += median_and_p99_ms(engine_times(app, size, repeats, single))
        print(f"| {size} | " + " | ".join(f"{v:.2f}" for v in cells) + " |")
    if args.calls:
        with tempfile.TemporaryDirectory() as tmp:
            file_app = make_app(f"sqlite:///{tmp}/bench.sqlite3")
            median, p99 = median_and_p99_ms(client_times(file_app, 200, args.calls))
        print(f"\nin-process test client, order-sign, 200 resources, audit row in a SQLite file, "
              f"{args.calls} calls: median {median:.2f} ms, p99 {p99:.2f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
