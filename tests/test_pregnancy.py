"""Fetus count and once-per-pregnancy (cfDNA spec §f.2–f.3)."""

from __future__ import annotations

import datetime as dt
import math

from cdshooks.facts.calculators import pregnancy

D = dt.date


def test_latest_count_observation_wins():
    counted = pregnancy.fetus_count([("Observation/a", D(2025, 1, 1), "", 2), ("Observation/b", D(2025, 3, 1), "", 3)],
                                    [("Condition/c", "O30.001", (2, 2))])
    assert (counted.low, counted.high, counted.reference) == (3, 3, "Observation/b")


def test_conditions_give_the_largest_implied_count():
    counted = pregnancy.fetus_count([], [("Condition/m", "O30.90", (2, math.inf)), ("Condition/t", "O30.001", (2, 2))])
    assert (counted.low, counted.high) == (2, 2)  # "twins" is more specific than "2 or more"
    counted = pregnancy.fetus_count([], [("Condition/x", "O30.103", (3, 3))])
    assert (counted.low, counted.high) == (3, 3)


def test_no_data_is_a_singleton():
    counted = pregnancy.fetus_count([], [])
    assert (counted.low, counted.high, counted.reference) == (1, 1, None)


def test_unusable_count_values_are_skipped():
    counted = pregnancy.fetus_count([("Observation/a", D(2025, 3, 1), "", {"value": 0}),
                                     ("Observation/b", D(2025, 3, 2), "", "three")], [])
    assert counted.low == 1


def test_count_notation():
    assert pregnancy.parse_count(2) == (2, 2)
    assert pregnancy.parse_count(">=3") == (3, math.inf)


def test_spec_example_prior_screen_in_this_pregnancy_fails_gen_1():
    result, hits, _ = pregnancy.prior_screen([("ServiceRequest/p", D(2025, 2, 20))], D(2024, 12, 31), D(2025, 3, 5), [])
    assert result == "not-met" and hits == [("ServiceRequest/p", D(2025, 2, 20))]


def test_screen_before_this_pregnancy_does_not_count():
    result, _, _ = pregnancy.prior_screen([("ServiceRequest/p", D(2024, 6, 1))], D(2024, 12, 31), D(2025, 3, 5), [])
    assert result == "met"


def test_unknown_start_with_a_recent_screen_is_unknown_and_an_old_one_is_met():
    recent = pregnancy.prior_screen([("ServiceRequest/p", D(2025, 1, 1))], None, D(2025, 3, 5), [])
    old = pregnancy.prior_screen([("ServiceRequest/p", D(2024, 1, 1))], None, D(2025, 3, 5), [])
    assert recent[0] == "unknown" and old[0] == "met"


def test_an_earlier_draft_in_the_same_request_fails_gen_1():
    assert pregnancy.prior_screen([], D(2024, 12, 31), D(2025, 3, 5), ["ServiceRequest/first"])[0] == "not-met"
