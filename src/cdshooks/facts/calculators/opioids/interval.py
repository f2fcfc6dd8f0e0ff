"""The days an opioid order is active: ``[start, end)`` from its dates, supply and validity (spec f.1)."""

from __future__ import annotations

import math
from datetime import date

from cdshooks.fhir import units
from cdshooks.fhir.dates import ORDER_START_PATHS
from cdshooks.fhir.dates import exact_date
from cdshooks.fhir.dates import first_exact_date
from cdshooks.fhir.dates import plus_days
from cdshooks.fhir.read import as_dict
from cdshooks.fhir.read import get_path
from cdshooks.fhir.read import positive

_BOUNDS_END = ORDER_START_PATHS[0][:-1] + ("end",)
_REPEAT = ORDER_START_PATHS[0][:-2]
# A supply is counted in whole days: hours and years are not supply durations.
_SUPPLY_UNITS = frozenset({"d", "wk", "mo"})


def active_interval(
    med_request: dict, open_ended: bool, default_supply_days: int
) -> tuple[date | None, date | None] | None:
    """Return [start, end) of the order; (None, None) = every day; None = ignored."""
    start = first_exact_date(med_request, ORDER_START_PATHS)
    if start is None:
        return (None, None) if open_ended else None
    end = _explicit_end(start, med_request)
    if end is None and not open_ended:
        end = plus_days(start, default_supply_days)
    return start, end


def _explicit_end(start: date, med_request: dict) -> date | None:
    """Return the first stated end: bounds end, supply x fills, boundsDuration, validity end."""
    end = exact_date(get_path(med_request, _BOUNDS_END))
    if end is not None:
        return plus_days(end, 1)
    supply = _duration_days(get_path(med_request, ("dispenseRequest", "expectedSupplyDuration")))
    if supply is not None:
        fills = 1 + _repeats(get_path(med_request, ("dispenseRequest", "numberOfRepeatsAllowed")))
        return plus_days(start, supply * fills)
    duration = _duration_days(get_path(med_request, _REPEAT + ("boundsDuration",)))
    if duration is not None:
        return plus_days(start, duration)
    end = exact_date(get_path(med_request, ("dispenseRequest", "validityPeriod", "end")))
    return plus_days(end, 1) if end is not None else None


def _duration_days(value) -> int | None:
    """Return a Duration in whole days (d, wk = 7, mo = 30; part days count as a day)."""
    quantity = as_dict(value)
    amount = positive(quantity.get("value"))
    unit = units.time_unit(quantity.get("code") or quantity.get("unit"))
    if amount is None or unit not in _SUPPLY_UNITS:
        return None
    return math.ceil(units.convert(amount, unit, "d"))


def _repeats(value) -> int:
    """Return numberOfRepeatsAllowed, 0 when absent or malformed."""
    number = positive(value)
    return int(number) if number is not None else 0
