"""``bench/RESULTS.md`` from one run of ``bench/run.py``: ratios to the floor against issue 16's goals."""

from __future__ import annotations

import datetime as dt

import sweep

# shape → p50 ratio goal (issue 16)
GOALS = {"order-sign, no policy applies": 1.15, "order-sign, one order": 2.0, "order-sign, every policy": 4.0}
US_PER_RESOURCE_GOAL = 10.0


def _met(ok: bool) -> str:
    return "met" if ok else "**not met**"


def render(r: dict, machine: str, commit: str) -> str:
    shapes = r["shapes"]
    before, after = r["load_before"], r["load_after"]
    lines = [
        "# Benchmark results",
        "",
        f"- **Machine:** {machine}",
        f"- **Date:** {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC · **commit** `{commit}` · "
        + (f"**{r['baseline']}** served beside it in the same rounds · " if r["baseline"] else "") +
        f"{'`make bench QUICK=1`' if r['quick'] else '`make bench`'}, whole run {r['seconds']:.0f} s",
        f"- **Load average** (1, 5, 15 min) before: {before[0]:.2f} {before[1]:.2f} {before[2]:.2f}; "
        f"after: {after[0]:.2f} {after[1]:.2f} {after[2]:.2f} (2 cores shared with other work)",
        "- **Setup:** the service as `cdshooks serve --workers 2` runs it (gunicorn, gevent workers, SQLite; audit "
        "rows and form launches committed in batches by a background writer) and the floor (`bench/floor.py`: read "
        "and parse the body with orjson, answer "
        "`{\"cards\": []}`) under the same gunicorn gevent settings and, like the service, with its start-up heap "
        "frozen out of the garbage collector's sight, both up at once on sockets the benchmark bound "
        "(`bench/serve.py`); closed-loop load generator over loopback (`bench/load.py`), a new connection per call. "
        "**Rounds alternate** floor, service, floor, service…; the figures pool every round.",
        "",
        "## HTTP over loopback, service against the floor",
        "",
        "| shape | resources | request | server | c=1 p50 (ms) | c=1 p99 (ms) | c=1 worker CPU per call (ms) | "
        "c=8 req/s | errors |",
        "|---|---:|---:|---|---:|---:|---:|---:|---:|",
    ]
    for name, shape in shapes.items():
        for server in shape["latency"]:
            lat, thr = shape["latency"][server], shape["throughput"][server]
            lines.append(f"| {name} | {shape['size']:,} | {shape['bytes'] / 1024:.0f} KiB | {server} | "
                         f"{lat.p50_ms:.2f} | {lat.p99_ms:.2f} | {lat.cpu_ms_per_call:.2f} | {thr.rps:.0f} | "
                         f"{lat.errors + thr.errors} |")
    lines += ["", "## Against the goals (p50 and p99 ÷ the floor's, same run)", "",
              "| shape | server | p50 ratio | goal | p99 ratio (goal ≤ 2.0) |", "|---|---|---:|---|---:|"]
    for name, shape in shapes.items():
        lat = shape["latency"]
        for server in _servers(lat):
            p50, p99 = lat[server].p50_ms / lat["floor"].p50_ms, lat[server].p99_ms / lat["floor"].p99_ms
            goal = GOALS.get(name)
            lines.append(f"| {name} | {server} | ×{p50:.2f} | " + (f"≤ {goal} ({_met(p50 <= goal)})" if goal else "—") +
                         f" | ×{p99:.2f} ({_met(p99 <= 2.0)}) |")
    lines += ["", *_sweep(r["sweep"], _servers(next(iter(shapes.values()))["latency"])), "", *_engine(r["engine"]),
              "", *_memory(r), "",
              "Reproduce with `make bench` (full) or `make bench QUICK=1` (under two minutes, fewer calls; ratios "
              "are noisier). Compare figures within one run: this shared VM's neighbours change the absolute numbers "
              "from run to run, and alternating rounds is what keeps the ratios comparable.", ""]
    return "\n".join(lines)


def _servers(latency: dict) -> list[str]:
    return [name for name in latency if name != "floor"]


def _sweep(rows: list[dict], servers: list[str]) -> list[str]:
    if not rows:
        return ["## Real records", "", "Skipped: `../shared/real-records` is absent."]
    lines = ["## Real records (one SI-joint-fusion order-sign per record, its resources as prefetch)", ""]
    for server in servers:
        slope = sweep.slope_us(rows, server)
        per = [(row[f"{server}_p50"] - row["floor_p50"]) * 1000 / row["resources"] for row in rows]
        p99_ok = sum(row[f"{server}_p99"] <= 2 * row["floor_p99"] for row in rows)
        lines += [f"- **{server}, µs per resource beyond parsing:** slope {slope:.1f} µs (least squares of "
                  f"{server} − floor p50 over resources, {len(rows)} records ≥ {sweep.MIN_RESOURCES} resources); per "
                  f"record median {sorted(per)[len(per) // 2]:.1f} µs (fixed cost included), range {min(per):.1f}–"
                  f"{max(per):.1f} µs. Goal ≤ {US_PER_RESOURCE_GOAL:g} µs: {_met(slope <= US_PER_RESOURCE_GOAL)}. "
                  f"p99 ≤ 2× the floor's p99: {p99_ok} of {len(rows)} records."]
    head = " | ".join(f"{s} p50 (ms) | ratio" for s in servers)
    lines += ["", f"| record | resources | floor p50 (ms) | {head} | floor p99 | " +
              " | ".join(f"{s} p99" for s in servers) + " |",
              "|---|---:|---:|" + "---:|---:|" * len(servers) + "---:|" + "---:|" * len(servers)]
    for row in rows:
        cells = " | ".join(f"{row[f'{s}_p50']:.2f} | ×{row[f'{s}_p50'] / row['floor_p50']:.2f}" for s in servers)
        lines.append(f"| {row['file']} | {row['resources']:,} | {row['floor_p50']:.2f} | {cells} | "
                     f"{row['floor_p99']:.2f} | "
                     + " | ".join(f"{row[f'{s}_p99']:.2f}" for s in servers) + " |")
    return lines


def _engine(engine: dict) -> list[str]:
    return ["## Engine time (in-process: record index, facts, evaluation, response JSON; no HTTP)", "",
            "| resources | every policy: median (ms) | p99 (ms) | one order: median (ms) | p99 (ms) |",
            "|---:|---:|---:|---:|---:|",
            *(f"| {size:,} | " + " | ".join(f"{v:.2f}" for v in cells) + " |" for size, cells in engine.items())]


def _memory(r: dict) -> list[str]:
    rows = list(zip(r["rss_start"], r["rss_end"]))
    requests = r["requests_for_rss"]
    title = f"after the shapes and {requests:,} more calls" if requests else "after the shapes"
    return ["## Worker memory (RSS)", "", f"| worker | after start-up (MB) | {title} (MB) | growth |",
            "|---|---:|---:|---:|",
            *(f"| {i + 1} | {a:.1f} | {b:.1f} | {(b - a) / a * 100:+.1f} % |" for i, (a, b) in enumerate(rows))]
