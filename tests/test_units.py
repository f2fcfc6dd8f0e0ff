"""UCUM conversion for lab values (dimensional factors only)."""

from __future__ import annotations

import pytest

from cdshooks.fhir import units


@pytest.mark.parametrize("value, source, target, expected", [
    (1.2, "10*3/uL", "/uL", 1200),
    (1.2, "10*9/L", "/uL", 1200),
    (800, "/mm3", "/uL", 800),
    (35, "g/L", "g/dL", 3.5),
    (0.9, "mL/s", "mL/min", 54),
    (2, "wk", "d", 14),
])
def test_conversions(value, source, target, expected):
    assert units.convert(value, source, target) == pytest.approx(expected)


@pytest.mark.parametrize("source", [None, "", "furlongs", "mg/dL"])
def test_unknown_or_other_dimension_units_are_unusable(source):
    assert units.convert(1.0, source, "/uL") is None


def test_quantity_unit_prefers_the_ucum_code():
    assert units.quantity_unit({"unit": "K/µL", "code": "10*3/uL"}) == "10*3/uL"
    assert units.quantity_unit({"unit": "g/dL"}) == "g/dL"
    assert units.quantity_unit({}) is None


def test_a_score_without_a_unit_or_with_an_annotation_is_a_plain_number():
    assert units.convert(8.0, None, "1") == 8.0
    assert units.convert(8.0, "{points}", "1") == 8.0
    assert units.convert(8.0, None, "mg/dL") is None      # a lab value without a unit stays unusable
    assert units.convert(8.0, "mg/dL", "1") is None
