"""UCUM unit conversion for lab and vital values (dimensional factors only, no molar masses)."""

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
    # time, base day
    "d": ("time", 1.0), "wk": ("time", 7.0), "h": ("time", 1 / 24), "min": ("time", 1 / 1440),
    # percent and plain numbers
    "%": ("percent", 1.0), "1": ("number", 1.0), "{score}": ("number", 1.0),
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
