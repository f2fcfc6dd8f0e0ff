"""Gestational age on the service date: the worked examples of the cfDNA spec §f.1."""

from __future__ import annotations

import datetime as dt

import pytest

from cdshooks.facts.calculators import gestation

D = dt.date


def ga(weeks=None, days=None, when=D(2025, 3, 1), loinc="49051-6", ref="Observation/ga", unit=True):
    value = weeks if weeks is not None else days
    code = ("wk" if weeks is not None else "d") if unit else None
    quantity = {"value": value, **({"code": code} if code else {})}
    return gestation.GaObservation(ref, when, quantity, loinc)


def edd(day, recorded=D(2025, 3, 1), ref="Observation/edd"):
    return gestation.EddObservation(ref, recorded, day)


@pytest.mark.parametrize("observations, edds, on, days", [
    ([ga(weeks=8)], [], D(2025, 3, 5), 60),                 # example 1: 8w4d
    ([ga(weeks=8)], [], D(2025, 3, 10), 65),                # example 2: 9w2d on the occurrence date
    ([], [edd(D(2025, 10, 1))], D(2025, 3, 15), 80),        # example 3: 11w3d from the EDD
    ([], [edd(D(2025, 11, 1))], D(2025, 3, 15), 49),        # example 4: 7w0d
    ([ga(days=70, loinc="11884-4")], [], D(2025, 3, 1), 70),  # example 5: 10w0d
])
def test_worked_examples(observations, edds, on, days):
    assert gestation.gestational_age(observations, edds, on).days == days


def test_example_1_reaches_9w0d_on_2025_03_08():
    assert gestation.date_reaching(D(2025, 3, 5), 60, 63) == D(2025, 3, 8)


def test_example_4_reaches_9w0d_on_edd_minus_217_days():
    assert gestation.date_reaching(D(2025, 3, 15), 49, 63) == D(2025, 11, 1) - dt.timedelta(days=217)


def test_example_6_an_observation_that_lands_past_44_weeks_is_unusable():
    assert gestation.gestational_age([ga(weeks=30, when=D(2024, 1, 10))], [], D(2025, 3, 5)) is None


def test_observations_win_over_the_edd():
    found = gestation.gestational_age([ga(weeks=8)], [edd(D(2025, 10, 1))], D(2025, 3, 5))
    assert found.method == "observation" and found.days == 60


def test_latest_observation_is_used():
    older, newer = ga(weeks=6, when=D(2025, 2, 1), ref="Observation/old"), ga(weeks=8, ref="Observation/new")
    assert gestation.gestational_age([newer, older], [], D(2025, 3, 5)).reference == "Observation/new"


@pytest.mark.parametrize("quantity, loinc, days", [
    ({"value": 8.5, "code": "wk"}, "49051-6", 59),   # floor(8.5 × 7)
    ({"value": 61.9, "code": "d"}, "11884-4", 61),
    ({"value": 8}, "49051-6", 56),                   # unitless: weeks for 49051-6 only
    ({"value": 8}, "18185-9", None),
    ({"value": 8, "code": "mo"}, "49051-6", None),
    ({"value": "8", "code": "wk"}, "49051-6", None),
    ({"value": True, "code": "wk"}, "49051-6", None),
    ("8 weeks", "49051-6", None),
])
def test_quantity_units(quantity, loinc, days):
    assert gestation.quantity_days(quantity, loinc) == days


def test_display_is_weeks_and_days():
    assert gestation.weeks_days(60) == "8w4d" and gestation.weeks_days(63) == "9w0d"


def test_a_unitless_reading_of_a_local_code_counts_only_when_the_site_says_it_is_in_weeks():
    day = dt.date(2025, 3, 1)
    local = gestation.GaObservation("Observation/x", day, {"value": 10}, "GA-WK")
    assert gestation.gestational_age([local], [], day) is None          # weeks or days? read as nothing
    declared = gestation.GaObservation("Observation/x", day, {"value": 10}, "GA-WK", unitless_weeks=True)
    assert gestation.gestational_age([declared], [], day).days == 70
