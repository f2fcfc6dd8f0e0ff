"""Age in completed years (D5), with partial birth dates bounded both ways."""

from __future__ import annotations

import datetime as dt

from cdshooks.fhir.dates import date_bounds


def completed_years(birth: dt.date, on: dt.date) -> int:
    """Whole years from ``birth`` to ``on`` (a birthday counts on its day)."""
    return on.year - birth.year - ((on.month, on.day) < (birth.month, birth.day))


def age_bounds(birth_date, on: dt.date) -> tuple[int, int] | None:
    """(youngest, oldest) possible age on ``on`` for a possibly partial ``birthDate``; None if unreadable."""
    bounds = date_bounds(birth_date)
    if bounds is None:
        return None
    earliest, latest = bounds
    return completed_years(latest, on), completed_years(earliest, on)
