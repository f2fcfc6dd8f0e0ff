"""The tolerant FHIR readers: odd shapes read as empty, never raise."""

from __future__ import annotations

import pytest

from cdshooks.fhir import read


@pytest.mark.parametrize("value, expected", [(None, []), ([1, 2], [1, 2]), ({"a": 1}, [{"a": 1}]), ("x", ["x"])])
def test_as_list_takes_a_lone_value_for_an_array(value, expected):
    assert read.as_list(value) == expected


def test_objects_and_first_skip_what_is_not_an_object():
    assert read.objects([{"a": 1}, "junk", 3, {"b": 2}]) == [{"a": 1}, {"b": 2}]
    assert read.objects({"a": 1}) == [{"a": 1}]
    assert read.first(["junk", {"a": 1}]) == {} and read.first({"a": 1}) == {"a": 1} and read.first(None) == {}


@pytest.mark.parametrize("value, expected", [(2, 2.0), (0.5, 0.5), (0, None), (-1, None), ("2", None),
                                             (True, None), (float("inf"), None), (10 ** 400, None)])
def test_positive_reads_positive_finite_json_numbers_only(value, expected):
    assert read.positive(value) == expected


def test_get_path_reads_keys_and_array_elements():
    order = {"dosageInstruction": [{"timing": {"repeat": {"boundsPeriod": {"start": "2025-01-01"}}}}]}
    path = ("dosageInstruction", 0, "timing", "repeat", "boundsPeriod", "start")
    assert read.get_path(order, path) == "2025-01-01"
    assert read.get_path({"dosageInstruction": order["dosageInstruction"][0]}, path) == "2025-01-01"  # lone object
    assert read.get_path({"dosageInstruction": []}, path) is None
    assert read.get_path({"dosageInstruction": "text"}, path) is None


def test_codings_normalise_icd10_and_read_system_aliases():
    concept = {"coding": [{"system": read.ICD10CM, "code": "m96.1"},
                          {"system": "https://bluebutton.cms.gov/resources/codesystem/hcpcs", "code": "J2274"},
                          {"system": read.ICD10CM, "code": "  "}, "junk"]}
    assert read.codings(concept) == [(read.ICD10CM, "M961"), (read.HCPCS, "J2274")]


def test_codes_in_one_system_keeps_the_code_as_written_and_reads_codings_without_a_system():
    concept = {"coding": [{"system": "s", "code": " a "}, {"code": "BID"}, {"system": "t", "code": "b"}]}
    assert read.codes_in(concept, "s") == ["a"]
    assert read.codes_in(concept, None) == ["BID"]
    assert read.codes_in("junk", "s") == []


def test_status_code_is_the_first_code():
    assert read.status_code({"coding": [{"display": "x"}, {"code": "active"}]}) == "active"
    assert read.status_code(None) is None


def test_the_main_code_element_of_each_type():
    assert read.main_code_element("MedicationRequest") == "medicationCodeableConcept"
    assert read.main_code_element("DeviceRequest") == "codeCodeableConcept"
    assert read.main_code_element("Encounter") == "code"
    assert "Encounter" not in read.MAIN_CODE   # the record indexes only the types listed


@pytest.mark.parametrize("value, expected", [(3, 3), (2.5, 2.5), (-1, -1), ("3", None), (False, None),
                                             (float("nan"), None), (10 ** 400, None)])
def test_number_reads_finite_json_numbers_as_written(value, expected):
    assert read.number(value) == expected
