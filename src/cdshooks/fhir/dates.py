"""FHIR dates as the specs read them: D3 Condition date, D4 Observation date and latest, D2 active state.

Every date a resource carries is read here, by path: the clinically relevant date of each type
(``DATE_PATHS``), the start of a medication order (``ORDER_START_PATHS``), and which of several
readings is the latest (D4: :func:`latest_key`).
"""

from __future__ import annotations

import datetime as dt
import re

from cdshooks.fhir.read import get_path
from cdshooks.fhir.read import status_code

_DATE = re.compile(r"^(\d{4})(?:-(\d{2}))?(?:-(\d{2}))?")

# First present element wins (D3, D4 and their equivalents for other types).
DATE_PATHS: dict[str, tuple[tuple[str, ...], ...]] = {
    "Condition": (("onsetDateTime",), ("onsetPeriod", "start"), ("recordedDate",)),
    "Observation": (("effectiveDateTime",), ("effectivePeriod", "end"), ("effectiveInstant",), ("issued",)),
    "Procedure": (("performedDateTime",), ("performedPeriod", "end"), ("performedPeriod", "start")),
    "ServiceRequest": (("authoredOn",), ("occurrenceDateTime",), ("occurrencePeriod", "start")),
    "DeviceRequest": (("authoredOn",), ("occurrenceDateTime",), ("occurrencePeriod", "start")),
    "DiagnosticReport": (("effectiveDateTime",), ("effectivePeriod", "end"), ("issued",)),
    "MedicationRequest": (("authoredOn",),),
    "MedicationStatement": (("effectiveDateTime",), ("effectivePeriod", "start"), ("dateAsserted",)),
    "QuestionnaireResponse": (("authored",),),
}
# Where a medication order starts, first readable date wins: the first dosage's bounds, when it was
# written, when it may first be dispensed (the MME spec f.1; a statement's ``effective[x]`` arrives
# as the bounds, D10).
ORDER_START_PATHS: tuple[tuple, ...] = (
    ("dosageInstruction", 0, "timing", "repeat", "boundsPeriod", "start"),
    ("authoredOn",),
    ("dispenseRequest", "validityPeriod", "start"),
)
# When an order is to be carried out (the service date E), first present element wins.
OCCURRENCE_PATHS: dict[str, tuple[tuple, ...]] = {
    "ServiceRequest": (("occurrenceDateTime",), ("occurrencePeriod", "start")),
    "DeviceRequest": (("occurrenceDateTime",), ("occurrencePeriod", "start")),
    "MedicationRequest": (ORDER_START_PATHS[0],),
}
_ACTIVE = frozenset({"active", "recurrence", "relapse"})


def parse_date(value) -> dt.date | None:
    """The calendar date of a FHIR date/dateTime/instant; a partial date gives its first day."""
    bounds = date_bounds(value)
    return bounds[0] if bounds else None


def date_bounds(value) -> tuple[dt.date, dt.date] | None:
    """Earliest and latest day a (possibly partial) FHIR date can mean; None if unreadable."""
    if not isinstance(value, str):
        return None
    if len(value) >= 10 and value[4] == "-" and value[7] == "-":   # the common full date, in C
        try:
            day = dt.date.fromisoformat(value[:10])
            return day, day
        except ValueError:
            pass   # read by the pattern below, which names the same day or none
    match = _DATE.match(value)
    if not match:
        return None
    year, month, day = (int(g) if g else None for g in match.groups())
    try:
        if day is not None:
            d = dt.date(year, month, day)
            return d, d
        if month is not None:
            last = (dt.date(year + month // 12, month % 12 + 1, 1) - dt.timedelta(days=1))
            return dt.date(year, month, 1), last
        return dt.date(year, 1, 1), dt.date(year, 12, 31)
    except ValueError:
        return None



def exact_date(value) -> dt.date | None:
    """The calendar date of a FHIR date/dateTime given to the day; None for a partial or unreadable one."""
    if not isinstance(value, str) or len(value) < 10:
        return None
    try:
        return dt.date.fromisoformat(value[:10])
    except ValueError:
        return None


def plus_days(day: dt.date, days: float) -> dt.date:
    """``day`` + ``days``, saturating at ``date.max`` instead of overflowing."""
    try:
        return day + dt.timedelta(days=days)
    except OverflowError:
        return dt.date.max


def first_exact_date(resource: dict, paths) -> dt.date | None:
    """The first date given to the day at one of ``paths`` (an unreadable one is passed over)."""
    return next((d for d in (exact_date(get_path(resource, p)) for p in paths) if d is not None), None)


def latest_key(when: dt.date | None, issued: str, reference: str) -> tuple:
    """D4: of several readings the latest has the greatest date, then the later ``issued``, then the
    greater reference (a reading without a date is the earliest)."""
    return (when or dt.date.min, issued, reference)


def first_date(resource: dict, paths) -> dt.date | None:
    """The date at the first of ``paths`` that is present (a partial date gives its first day)."""
    for path in paths:
        value = get_path(resource, path)
        if value is not None:
            return parse_date(value)
    return None


def resource_date(resource: dict) -> dt.date | None:
    """The clinically relevant date of a resource (D3 / D4 and equivalents), first present wins."""
    return first_date(resource, DATE_PATHS.get(resource.get("resourceType"), ()))


def occurrence_date(order: dict) -> dt.date | None:
    """When an order is to be carried out: its occurrence, or a medication's first dose."""
    return first_date(order, OCCURRENCE_PATHS.get(order.get("resourceType"), ()))


def condition_state(condition: dict, at: dt.date) -> str:
    """D2 on date ``at``: ``active``, ``refuted``, ``inactive`` or ``ignored`` (entered-in-error)."""
    verification = status_code(condition.get("verificationStatus"))
    if verification == "entered-in-error":
        return "ignored"
    if verification == "refuted":
        return "refuted"
    clinical = status_code(condition.get("clinicalStatus"))
    if clinical is not None and clinical not in _ACTIVE:
        return "inactive"
    if clinical is None and _abated(condition, at):
        return "inactive"
    onset = resource_date(condition)
    if onset is not None and onset > at:
        return "inactive"
    return "active"


def _abated(condition: dict, at: dt.date) -> bool:
    for key in ("abatementDateTime", "abatementString", "abatementAge", "abatementRange"):
        if key in condition:
            when = parse_date(condition[key]) if key == "abatementDateTime" else None
            return when is None or when <= at  # an abatement we cannot date still says it ended
    period = condition.get("abatementPeriod")
    if isinstance(period, dict):
        when = parse_date(period.get("start") or period.get("end"))
        return when is None or when <= at
    return False
