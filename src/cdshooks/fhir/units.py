"""UCUM unit conversion for lab values, vitals, doses and durations (dimensional factors only, no molar masses).

The one unit table: a select fact's ``unit``, a dose in mg, a dosing period or a supply duration
are all converted through it.
"""

from __future__ import annotations

# unit -> (dimension, factor to the dimension's base unit)
_UNITS: dict[str, tuple[str, float]] = {
    # cells per volume, base /uL (= /mm3)
    "/uL": ("count/vol", 1.0), "/mm3": ("count/vol", 1.0), "cells/uL": ("count/vol", 1.0),
    "10*3/uL": ("count/vol", 1e3), "10*3/mm3": ("count/vol", 1e3), "K/uL": ("count/vol", 1e3),
    "10*9/L": ("count/vol", 1e3), "10^9/L": ("count/vol", 1e3), "/L": ("count/vol", 1e-6),
    # mass concentration, base mg/dL
    "mg/dL": ("mass/vol", 1.0), "mg/L": ("mass/vol", 0.1), "g/dL": ("mass/vol", 1e3),
    "g/L": ("mass/vol", 100.0), "ug/dL": ("mass/vol", 1e-3),
    # flow, base mL/min
    "mL/min": ("flow", 1.0), "mL/s": ("flow", 60.0),
    # catalytic activity concentration, base U/L
    "U/L": ("activity/vol", 1.0), "[IU]/L": ("activity/vol", 1.0), "IU/L": ("activity/vol", 1.0),
    # body mass index, base kg/m2
    "kg/m2": ("bmi", 1.0), "kg/m^2": ("bmi", 1.0),
    # mass, base mg ("mcg" and "µg" are not UCUM but common in orders)
    "mg": ("mass", 1.0), "ug": ("mass", 0.001), "mcg": ("mass", 0.001), "µg": ("mass", 0.001), "g": ("mass", 1000.0),
    # time, base day; a month is 30 days and a year 365 (supply and dosing periods count whole days)
    "s": ("time", 1 / 86400), "min": ("time", 1 / 1440), "h": ("time", 1 / 24), "d": ("time", 1.0),
    "wk": ("time", 7.0), "mo": ("time", 30.0), "a": ("time", 365.0),
    # percent and plain numbers
    "%": ("percent", 1.0), "1": ("number", 1.0), "{score}": ("number", 1.0),
}


# Spelled-out and abbreviated time units orders carry instead of UCUM's.
_TIME_ALIASES = {
    "sec": "s", "second": "s", "seconds": "s", "minute": "min", "minutes": "min",
    "hr": "h", "hour": "h", "hours": "h", "day": "d", "days": "d", "week": "wk", "weeks": "wk",
    "month": "mo", "months": "mo", "year": "a", "years": "a",
}


def known(unit: str) -> bool:
    return unit in _UNITS


def convert(value: float, from_unit: str | None, to_unit: str) -> float | None:
    """``value`` in ``to_unit``; None when the unit is missing, unknown or of another dimension.

    A plain number (``1``) also takes a Quantity without a unit and any UCUM annotation alone
    (``{score}``, ``{points}``: annotations are dimensionless in UCUM) — a 0–10 score is often
    sent as ``valueQuantity`` with no unit at all.
    """
    if to_unit == "1" and (not from_unit or (from_unit.startswith("{") and from_unit.endswith("}"))):
        return value
    source, target = _UNITS.get(from_unit or ""), _UNITS.get(to_unit)
    if source is None or target is None or source[0] != target[0]:
        return None
    return value * source[1] / target[1]


def quantity_unit(quantity: dict) -> str | None:
    """The UCUM ``code`` of a Quantity, else its display ``unit`` (D4)."""
    for key in ("code", "unit"):
        if isinstance(quantity.get(key), str) and quantity[key].strip():
            return quantity[key].strip()
    return None


def time_unit(value) -> str | None:
    """A UCUM time unit (s, min, h, d, wk, mo, a) for a UCUM or spelled-out one; None for anything else."""
    if not isinstance(value, str):
        return None
    unit = value.strip()
    if _UNITS.get(unit, ("",))[0] == "time":
        return unit
    return _TIME_ALIASES.get(unit.lower())


def seconds(value) -> float | None:
    """Seconds in one ``value`` time unit (UCUM or spelled out); None when it is no time unit."""
    unit = time_unit(value)
    return _UNITS[unit][1] * 86400 if unit is not None else None
