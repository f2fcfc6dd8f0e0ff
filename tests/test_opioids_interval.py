"""Tests for an opioid order's active days [start, end) (pump spec §f.1)."""

from datetime import date

import pytest

from opioid_orders import assess
from opioid_orders import dose
from opioid_orders import example_1
from opioid_orders import order
from opioid_orders import supply

# --- active interval -----------------------------------------------------------------------------


def bid_oxy(**fields):
    """Oxycodone 5 mg BID = 15 MME/day, with the date fields given."""
    request = order("iv", "1049621", dose(code="BID"), status="completed")
    return {**request, **fields}


def interval(request, **options):
    orders = assess(request, **options).orders
    return (orders[0].start, orders[0].end) if orders else None


def test_bounds_period_end_is_inclusive():
    dosage = dose(code="BID", bounds=("2025-06-01", "2025-06-14"))
    result = assess(order("b", "1049621", dosage, status="completed"))
    assert result.orders[0].end == date(2025, 6, 15)
    assert (result.baseline, result.current) == (15, 0)


def test_bounds_period_start_wins_over_authored_on():
    dosage = dose(code="BID", bounds=("2025-03-01T08:00:00Z", None))
    request = order("b", "1049621", dosage, authored="2025-02-01", dispenseRequest=supply(10))
    assert interval(request) == (date(2025, 3, 1), date(2025, 3, 11))


@pytest.mark.parametrize(
    ("dispense", "end"),
    [
        (supply(30), date(2025, 3, 31)),
        (supply(30, repeats=2), date(2025, 5, 30)),
        (supply(2, unit="wk"), date(2025, 3, 15)),
        (supply(1, repeats=1, unit="mo"), date(2025, 4, 30)),
    ],
)
def test_expected_supply_duration_times_fills_sets_the_end(dispense, end):
    assert interval(bid_oxy(authoredOn="2025-03-01", dispenseRequest=dispense)) == (
        date(2025, 3, 1),
        end,
    )


def test_bounds_duration_sets_the_end():
    request = bid_oxy(authoredOn="2025-03-01")
    repeat = {"boundsDuration": {"value": 10, "code": "d"}}
    request["dosageInstruction"][0]["timing"]["repeat"] = repeat
    assert interval(request) == (date(2025, 3, 1), date(2025, 3, 11))


def test_validity_period_gives_start_and_end():
    dispense = {"validityPeriod": {"start": "2025-03-01", "end": "2025-04-15"}}
    assert interval(bid_oxy(dispenseRequest=dispense)) == (date(2025, 3, 1), date(2025, 4, 16))


def test_active_order_without_end_is_open_ended():
    assert interval(bid_oxy(status="active", authoredOn="2024-01-01")) == (date(2024, 1, 1), None)


def test_completed_order_without_end_lasts_the_default_30_days():
    assert interval(bid_oxy(authoredOn="2025-03-01")) == (date(2025, 3, 1), date(2025, 3, 31))


def test_default_supply_days_is_configurable():
    request = bid_oxy(authoredOn="2025-03-01")
    assert interval(request, default_supply_days=14) == (date(2025, 3, 1), date(2025, 3, 15))


def test_active_order_without_any_start_is_active_every_day():
    result = assess(bid_oxy(status="active"))
    assert (result.orders[0].start, result.orders[0].end) == (None, None)
    assert (result.baseline, result.baseline_day, result.current) == (15, date(2024, 12, 17), 15)


def test_completed_order_without_any_start_is_ignored():
    assert assess(bid_oxy()).orders == ()


def test_lookback_window_is_configurable():
    old = order("old", "892672", dose(code="QID"), status="completed", authored="2024-10-01")
    assert assess(old).result == "unknown"
    result = assess(old, lookback_days=365)
    assert (result.result, result.baseline, result.baseline_day) == ("met", 120, date(2024, 10, 1))


def test_order_starting_after_the_reference_date_is_not_counted():
    future = order("f", "892672", dose(code="QID"), authored="2025-07-01")
    assert assess(*example_1(), future).current == 30
