"""Age in completed years (D5), partial birth dates included."""

from __future__ import annotations

import datetime as dt

import pytest

from cdshooks.facts.calculators import age


@pytest.mark.parametrize("birth, on, expected", [
    ("1975-03-10", dt.date(2025, 6, 15), (50, 50)),
    ("2004-06-15", dt.date(2025, 6, 15), (21, 21)),   # birthday counts on its day
    ("2004-06-16", dt.date(2025, 6, 15), (20, 20)),
    ("2004-06", dt.date(2025, 6, 15), (20, 21)),      # partial: bounds disagree
    ("2004", dt.date(2025, 12, 31), (21, 21)),
    ("2000-02-29", dt.date(2025, 2, 28), (24, 24)),
])
def test_age_bounds(birth, on, expected):
    assert age.age_bounds(birth, on) == expected


@pytest.mark.parametrize("junk", [None, "", "sometime", 1975, "1975-13-40"])
def test_unreadable_birth_dates_give_no_age(junk):
    assert age.age_bounds(junk, dt.date(2025, 1, 1)) is None
