"""Reading Observations and Conditions for the oncology facts: usable values, the latest, evidence.

Nothing here raises on malformed FHIR: a value that cannot be read is skipped.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from dataclasses import field

from cdshooks.facts.calculators import first_unavailable
from cdshooks.facts.facts import Evidence
from cdshooks.facts.facts import Fact
from cdshooks.facts.facts import FactContext
from cdshooks.fhir.units import quantity_unit


def number(value) -> float | None:
    """A finite JSON number (booleans are not numbers here)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def quantity(resource: dict) -> tuple[float, str | None] | None:
    """(value, unit) of an Observation's valueQuantity (UCUM code, else unit) or valueInteger."""
    q = resource.get("valueQuantity")
    if isinstance(q, dict):
        value = number(q.get("value"))
        return (value, quantity_unit(q)) if value is not None else None
    value = number(resource.get("valueInteger"))
    return (value, None) if value is not None else None


def convert(reading: tuple[float, str | None] | None, factors: dict[str, float]) -> float | None:
    """A reading in the rule's unit, or None when its unit is not one the rule accepts."""
    if reading is None or reading[1] not in factors:
        return None
    return reading[0] * factors[reading[1]]


@dataclass(frozen=True)
class Dated:
    """A dated record (Condition or procedure/request), possibly refuted."""

    reference: str
    date: dt.date | None
    refuted: bool = False
    text: str = ""


def in_window(when: dt.date | None, start: dt.date, end: dt.date) -> bool:
    return when is not None and start <= when <= end


def inputs_of(ctx: FactContext, inputs, at: dt.date, *roles: str) -> tuple[list[Fact], Fact | None]:
    """The input facts and, if any of them could not be read, the first unavailable one."""
    facts = [ctx.fact(inputs[role], at) for role in roles]
    return facts, first_unavailable(facts)


def items_of(fact: Fact) -> list:
    return list(fact.value or ()) if fact.known else []


@dataclass(frozen=True)
class Reading:
    reference: str
    date: dt.date
    issued: str
    value: float             # in the rule's unit (for the risk category: its index)
    shown: str               # the value as recorded, for evidence
    resource: dict = field(compare=False, repr=False)   # the Observation itself (ids may be missing)


def usable_readings(fact: Fact, read, start: dt.date | None, end: dt.date) -> list[Reading]:
    """Usable readings of a select fact's Observations dated in [start, end] (``read`` converts)."""
    out = []
    for item in items_of(fact):
        if item.refuted or item.date is None or item.date > end or (start and item.date < start):
            continue
        resource = item.resource
        try:
            value = read(resource)
        except (TypeError, ValueError, ZeroDivisionError, AttributeError):
            value = None  # junk in a resource is an unusable reading, never an error
        if value is None:
            continue
        raw = quantity(resource)
        shown = f"{raw[0]:g} {raw[1] or ''}".strip() if raw else ""
        out.append(Reading(item.reference, item.date, str(resource.get("issued", "")), value, shown, resource))
    return out


def latest(readings: list[Reading]) -> Reading | None:
    """D4: greatest date, then later issued, then greater id."""
    return max(readings, key=lambda r: (r.date, r.issued, r.reference)) if readings else None


def latest_in(fact: Fact, factors: dict[str, float], start: dt.date | None, end: dt.date) -> Reading | None:
    """The latest usable quantity reading in [start, end], converted to the rule's unit."""
    return latest(usable_readings(fact, lambda r: convert(quantity(r), factors), start, end))


def reading_evidence(reading: Reading, label: str, value: str) -> Evidence:
    shown = f" ({reading.shown})" if reading.shown and reading.shown != value else ""
    return Evidence(reading.reference, f"{label} {value}{shown}", reading.date.isoformat())


def fmt(value: float) -> str:
    return f"{round(value, 1):g}"


def fmt2(value: float) -> str:
    return f"{round(value, 2):g}"


def window_start(at: dt.date, days) -> dt.date | None:
    return at - dt.timedelta(days=int(days)) if days is not None else None


def dated(fact: Fact) -> list[Dated]:
    """The select fact's records as :class:`Dated` (code and display as their text)."""
    return [Dated(i.reference, i.date, i.refuted, " ".join(p for p in (i.code, i.display) if p))
            for i in items_of(fact)]


def dated_evidence(records: list[Dated]) -> tuple[Evidence, ...]:
    return tuple(Evidence(r.reference, r.text + (" (refuted)" if r.refuted else ""),
                          r.date.isoformat() if r.date else None) for r in records)
