"""FHIR dates: partial dates, day-precision dates, date paths and the D4 latest rule."""

from __future__ import annotations

import datetime as dt

import pytest

from cdshooks.fhir import dates


@pytest.mark.parametrize("value, expected", [
    ("2025-03-05", (dt.date(2025, 3, 5), dt.date(2025, 3, 5))),
    ("2025-02", (dt.date(2025, 2, 1), dt.date(2025, 2, 28))),
    ("2024", (dt.date(2024, 1, 1), dt.date(2024, 12, 31))),
    ("2025-13-01", None), ("soon", None), (20250305, None),
])
def test_date_bounds_of_partial_dates(value, expected):
    assert dates.date_bounds(value) == expected


def test_exact_date_needs_a_day():
    assert dates.exact_date("2025-03-05T08:00:00Z") == dt.date(2025, 3, 5)
    assert dates.exact_date("2025-03") is None and dates.exact_date(None) is None


def test_order_start_is_the_first_readable_day_precision_date():
    order = {"authoredOn": "2025-02", "dispenseRequest": {"validityPeriod": {"start": "2025-02-10"}}}
    assert dates.first_exact_date(order, dates.ORDER_START_PATHS) == dt.date(2025, 2, 10)
    order["dosageInstruction"] = [{"timing": {"repeat": {"boundsPeriod": {"start": "2025-03-01"}}}}]
    assert dates.first_exact_date(order, dates.ORDER_START_PATHS) == dt.date(2025, 3, 1)


def test_resource_date_takes_the_first_present_path_even_when_unreadable():
    condition = {"resourceType": "Condition", "onsetDateTime": "unknown", "recordedDate": "2025-01-01"}
    assert dates.resource_date(condition) is None
    assert dates.resource_date({"resourceType": "Condition", "recordedDate": "2025-01"}) == dt.date(2025, 1, 1)


def test_occurrence_date_of_a_service_request_and_of_a_medication_request():
    assert dates.occurrence_date({"resourceType": "ServiceRequest",
                                  "occurrencePeriod": {"start": "2025-07-01"}}) == dt.date(2025, 7, 1)
    first_dose = {"resourceType": "MedicationRequest", "authoredOn": "2025-06-01",
                  "dosageInstruction": [{"timing": {"repeat": {"boundsPeriod": {"start": "2025-07-02"}}}}]}
    assert dates.occurrence_date(first_dose) == dt.date(2025, 7, 2)
    assert dates.occurrence_date({"resourceType": "MedicationRequest", "authoredOn": "2025-06-01"}) is None


def test_d4_latest_is_the_greatest_date_then_issued_then_reference():
    day = dt.date(2025, 1, 2)
    readings = [(day, "", "Observation/a"), (day, "2025-01-03T10:00:00Z", "Observation/0"),
                (None, "2026-01-01", "Observation/z"), (dt.date(2025, 1, 1), "", "Observation/y")]
    assert max(readings, key=lambda r: dates.latest_key(*r))[2] == "Observation/0"


def test_plus_days_saturates():
    assert dates.plus_days(dt.date(9999, 12, 1), 60) == dt.date.max
