"""Pregnancy facts beyond gestational age (policy spec prenatal-cfdna-screening §f.2–f.3)."""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

from cdshooks.fhir.dates import latest_key
from cdshooks.fhir.read import number

PRIOR_WINDOW_WITHOUT_START = 280


@dataclass(frozen=True)
class Counted:
    """A fetus-count reading: an exact number, or a lower bound (``high`` = inf)."""

    low: float
    high: float
    reference: str | None
    reading: str


def fetus_count(observations, conditions) -> Counted:
    """Latest count Observation, else the largest count a multiple-gestation Condition implies, else 1.

    ``observations``: (reference, date, issued, value) with an integer value;
    ``conditions``: (reference, code, (low, high)).
    """
    usable = [o for o in observations if _count(o[3]) is not None]
    if usable:
        reference, date, _issued, value = max(usable, key=lambda o: latest_key(o[1], o[2], o[0]))
        n = _count(value)
        return Counted(n, n, reference, f"{n} fetuses (observed {date})")
    if conditions:
        reference, code, (low, high) = max(conditions, key=lambda c: (c[2][0], c[0]))
        shown = f"{low:g}" if high == low else f"≥ {low:g}"
        return Counted(low, high, reference, f"{shown} fetuses ({code})")
    return Counted(1, 1, None, "no multiple gestation recorded: singleton assumed")


def _count(value) -> int | None:
    if isinstance(value, dict):
        value = value.get("value")
    value = number(value)
    if value is None:
        return None
    return int(value) if value >= 1 and float(value).is_integer() else None


def parse_count(spec) -> tuple[float, float]:
    """Mapping notation: ``2`` → exactly 2; ``">=3"`` → at least 3."""
    if isinstance(spec, str) and spec.startswith(">="):
        return float(spec[2:]), math.inf
    return float(spec), float(spec)


def prior_screen(records, start: dt.date | None, today: dt.date, earlier_drafts) -> tuple[str, list, str]:
    """GEN-1: (result, evidence records, note) for "no other cfDNA screen in this pregnancy".

    ``records``: (reference, date) of earlier cfDNA screens; ``earlier_drafts``: references of
    MN-coded cfDNA orders that come before this one in the same draftOrders.
    """
    if earlier_drafts:
        return ("not-met", [(ref, None) for ref in earlier_drafts],
                "another cfDNA screen is ordered earlier in this request")
    if start is not None:
        hits = [r for r in records if r[1] is not None and start <= r[1] <= today]
        if hits:
            return "not-met", hits, f"cfDNA screen already done in this pregnancy (since {start})"
        return "met", [], f"no cfDNA screen recorded since the pregnancy began ({start})"
    window_start = today - dt.timedelta(days=PRIOR_WINDOW_WITHOUT_START)
    hits = [r for r in records if r[1] is not None and window_start <= r[1] <= today]
    if hits:
        return "unknown", hits, "cfDNA screen in the last 280 days, pregnancy start unknown"
    return "met", [], "no cfDNA screen in the last 280 days"
