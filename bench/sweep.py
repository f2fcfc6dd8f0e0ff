"""The real-record size sweep: each third-party record of ``../shared/real-records`` (when present)
sent as the prefetch of a one-order order-sign call, floor and service alternating.

Cost beyond parsing is the service's p50 minus the floor's p50 on the same body; per resource it
is that difference divided by the resources in the prefetch, and the slope of a least-squares line
through all records (what one more resource costs, whatever the fixed cost of a call).
"""

from __future__ import annotations

import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RECORDS = ROOT.parent / "shared" / "real-records"
MIN_RESOURCES = 100   # the demo bundles of a handful of resources measure only the fixed cost
SNOMED = "http://snomed.info/sct"


def prefetch_keys() -> dict[str, str]:
    """Resource type per prefetch key, as the service advertises them in discovery."""
    import engine

    from cdshooks import registry

    with engine.make_app().app_context():
        return {t.key: t.resource_type for t in registry.get().templates}


def body(record: dict, keys: dict[str, str]) -> tuple[bytes, int]:
    """An order-sign call for one SI-joint fusion with the record as prefetch; and its resource count."""
    resources = [e["resource"] for e in record.get("entry", [])]
    patient = next(r for r in resources if r["resourceType"] == "Patient")
    prefetch = {key: patient if rtype == "Patient" else
                {"resourceType": "Bundle", "type": "searchset",
                 "entry": [{"resource": r} for r in resources if r["resourceType"] == rtype]}
                for key, rtype in keys.items()}
    count = sum(1 for r in resources if r["resourceType"] in set(keys.values()))
    order = {"resourceType": "ServiceRequest", "id": "bench-si", "status": "draft", "intent": "order",
             "subject": {"reference": f"Patient/{patient['id']}"},
             "code": {"coding": [{"system": "http://www.ama-assn.org/go/cpt", "code": "27280"}]}}
    request = {"hook": "order-sign", "hookInstance": "7c2b9a70-0d8e-4f5e-9d2c-1f3b5a6e8d90",
               "context": {"userId": "Practitioner/bench", "patientId": patient["id"],
                           "draftOrders": {"resourceType": "Bundle", "type": "collection",
                                           "entry": [{"resource": order}]}},
               "prefetch": prefetch}
    return json.dumps(request).encode(), count


def run(ports: dict[str, int], path: str, calls: int, alternate) -> list[dict]:
    """One row per record: resources, floor and service p50/p99 (ms); empty without the records."""
    if not RECORDS.is_dir():
        print(f"real-record sweep skipped: {RECORDS} is absent", flush=True)
        return []
    keys = prefetch_keys()
    rows = []
    for file in sorted(RECORDS.glob("*.json")):
        data, count = body(json.loads(file.read_text(encoding="utf-8")), keys)
        if count < MIN_RESOURCES:
            continue
        got = alternate(ports, path, data, 2, max(1, calls // 2), 1)
        rows.append({"file": file.name, "resources": count, "bytes": len(data),
                     "errors": sum(r.errors for r in got.values()),
                     **{f"{name}_{q}": getattr(got[name], f"{q}_ms") for name in got for q in ("p50", "p99")}})
    rows.sort(key=lambda row: row["resources"])
    return rows


def slope_us(rows: list[dict], server: str = "service") -> float:
    """µs per resource beyond parsing: least-squares slope of (server − floor) p50 over resources."""
    xs = [row["resources"] for row in rows]
    ys = [(row[f"{server}_p50"] - row["floor_p50"]) * 1000 for row in rows]
    mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
    spread = sum((x - mean_x) ** 2 for x in xs)
    return sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys)) / spread if spread else float("nan")
