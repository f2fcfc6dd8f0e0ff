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


@pytest.mark.parametrize("value, unit, mg", [(1, "g", 1000), (250, "ug", 0.25), (250, "mcg", 0.25), (5, "mg", 5)])
def test_masses_convert_to_mg(value, unit, mg):
    assert units.convert(value, unit, "mg") == pytest.approx(mg)


@pytest.mark.parametrize("unit, seconds", [("h", 3600), ("hours", 3600), (" Hr ", 3600), ("d", 86400), ("wk", 604800),
                                           ("mo", 2592000), ("a", 31536000), ("min", 60), ("sec", 1)])
def test_time_units_and_their_spelled_out_forms_in_seconds(unit, seconds):
    assert units.seconds(unit) == seconds


@pytest.mark.parametrize("unit", ["mg", "fortnight", None, 3])
def test_other_units_have_no_seconds(unit):
    assert units.seconds(unit) is None and units.time_unit(unit) is None
