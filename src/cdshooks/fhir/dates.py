"""FHIR dates as the specs read them: D3 Condition date, D4 Observation date, D2 active state."""

from __future__ import annotations

import datetime as dt
import re

from cdshooks.fhir.record import as_list

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
_ACTIVE = frozenset({"active", "recurrence", "relapse"})


def parse_date(value) -> dt.date | None:
    """The calendar date of a FHIR date/dateTime/instant; a partial date gives its first day."""
    bounds = date_bounds(value)
    return bounds[0] if bounds else None


def date_bounds(value) -> tuple[dt.date, dt.date] | None:
    """Earliest and latest day a (possibly partial) FHIR date can mean; None if unreadable."""
    if not isinstance(value, str):
        return None
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


def get_path(resource: dict, path: tuple[str, ...]):
    value = resource
    for key in path:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def resource_date(resource: dict) -> dt.date | None:
    """The clinically relevant date of a resource (D3 / D4 and equivalents), first present wins."""
    for path in DATE_PATHS.get(resource.get("resourceType"), ()):
        value = get_path(resource, path)
        if value is not None:
            return parse_date(value)
    return None


def status_code(concept) -> str | None:
    """The code of a status CodeableConcept (clinicalStatus / verificationStatus)."""
    for cc in as_list(concept):
        for coding in as_list(cc.get("coding") if isinstance(cc, dict) else None):
            if isinstance(coding, dict) and isinstance(coding.get("code"), str):
                return coding["code"]
    return None


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
