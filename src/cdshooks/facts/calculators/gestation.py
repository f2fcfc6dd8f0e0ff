"""Gestational age on the service date (policy spec prenatal-cfdna-screening §f.1).

GA observations (LOINC 49051-6, 11884-4, 18185-9) are advanced to the date E; without one, the
latest estimated delivery date (11778-8) gives GA_E = 280 − (EDD − E).  Only values that land in
0–308 days (44w0d) count.  GA observations take precedence over EDD.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

from cdshooks.fhir.dates import latest_key
from cdshooks.fhir.read import number

MAX_DAYS = 308
TERM_DAYS = 280
WEEKS_WHEN_UNITLESS = frozenset({"49051-6"})


@dataclass(frozen=True)
class GaObservation:
    reference: str
    date: dt.date
    value: object            # a Quantity dict (or junk)
    loinc: str
    issued: str = ""
    unitless_weeks: bool = False   # a site's local code whose readings without a unit are in weeks


@dataclass(frozen=True)
class EddObservation:
    reference: str
    date: dt.date
    edd: dt.date | None
    issued: str = ""


@dataclass(frozen=True)
class Gestation:
    days: int                # GA on the service date
    reference: str           # the observation it came from
    reading: str             # what that observation said, e.g. "8 wk on 2025-03-01"
    method: str              # "observation" | "edd"


def quantity_days(quantity, loinc: str) -> int | None:
    """Days of a GA Quantity: ``wk`` → floor(v × 7), ``d`` → floor(v); unitless = weeks for 49051-6."""
    if not isinstance(quantity, dict):
        return None
    value = number(quantity.get("value"))
    if value is None:
        return None
    unit = quantity.get("code") or quantity.get("unit")
    if unit in ("wk", "w", "week", "weeks") or (unit is None and loinc in WEEKS_WHEN_UNITLESS):
        return math.floor(value * 7)
    if unit in ("d", "day", "days"):
        return math.floor(value)
    return None


def gestational_age(ga: list[GaObservation], edd: list[EddObservation], on: dt.date) -> Gestation | None:
    """GA on ``on`` from the latest usable GA observation, else from the latest EDD; None if neither."""
    candidates = []
    for obs in ga:
        days = quantity_days(obs.value, "49051-6" if obs.unitless_weeks else obs.loinc)
        if days is not None:
            ga_on = days + (on - obs.date).days
            if 0 <= ga_on <= MAX_DAYS:
                candidates.append((latest_key(obs.date, obs.issued, obs.reference), ga_on, obs))
    if candidates:
        _, ga_on, obs = max(candidates, key=lambda c: c[0])
        return Gestation(ga_on, obs.reference, f"{_quantity_text(obs.value)} on {obs.date}", "observation")
    dated = [e for e in edd if e.edd is not None]
    if dated:
        latest = max(dated, key=lambda e: latest_key(e.date, e.issued, e.reference))
        ga_on = TERM_DAYS - (latest.edd - on).days
        if 0 <= ga_on <= MAX_DAYS:
            return Gestation(ga_on, latest.reference, f"EDD {latest.edd} (recorded {latest.date})", "edd")
    return None


def weeks_days(days: int) -> str:
    """``60`` → ``8w4d``."""
    return f"{days // 7}w{days % 7}d"


def date_reaching(on: dt.date, ga_on: int, target_days: int) -> dt.date:
    """The date GA reaches ``target_days`` (D9 for 63), given GA ``ga_on`` on ``on``."""
    return on + dt.timedelta(days=target_days - ga_on)


def _quantity_text(quantity) -> str:
    value = quantity.get("value")
    unit = quantity.get("code") or quantity.get("unit") or "wk"
    return f"{value:g} {unit}" if isinstance(value, (int, float)) else str(value)
