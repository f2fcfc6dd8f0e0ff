"""Code tokens and D1 matching: ICD-10-CM without dots, prefixes, category ranges."""

from __future__ import annotations

import pytest

from cdshooks.fhir import codes
from cdshooks.fhir.read import ICD10CM


@pytest.mark.parametrize("token, system, code, match, miss", [
    ("icd10cm|C50.911", ICD10CM, "C50911", "C50911", "C5091"),
    ("icd10cm|M51.-", ICD10CM, "M51", "M5126", "M50"),
    ("icd10cm|G90.5-", ICD10CM, "G905", "G9050", "G904"),
    ("cpt|81420", "http://www.ama-assn.org/go/cpt", "81420", "81420", "81422"),
])
def test_tokens_parse_and_match(token, system, code, match, miss):
    parsed = codes.parse(token)
    assert (parsed.system, parsed.code) == (system, code)
    assert parsed.matches(system, match) and not parsed.matches(system, miss)


def test_category_range_compares_three_character_categories_as_strings():
    cancer = codes.parse("icd10cm|C00–C96")
    assert cancer.kind == "range"
    for inside in ("C000", "C7A00", "C7B8", "C9600", "C34"):
        assert cancer.matches(ICD10CM, inside)
    for outside in ("C97", "D000", "B999"):
        assert not cancer.matches(ICD10CM, outside)


def test_exclusions_and_patterns_remove_codes_from_a_set():
    sud = codes.CodeSet.of(["icd10cm|F11.2-"], exclude_pattern="^F1[0-9][12]1$")
    assert sud.entry_for(ICD10CM, "F1120") is not None
    assert sud.entry_for(ICD10CM, "F1121") is None


@pytest.mark.parametrize("bad", ["81420", "nosuch|x", "cpt|", "|81420"])
def test_bad_tokens_are_refused(bad):
    with pytest.raises(codes.CodeError):
        codes.parse(bad)


def test_matches_concept_reads_sandbox_objects_and_ignores_empty_codings():
    concept = {"coding": [{}, {"system": ICD10CM, "code": "m51.26"}]}
    hits = codes.CodeSet.of(["icd10cm|M51.-"]).matches_concept(concept)
    assert [(s, c) for s, c, _ in hits] == [(ICD10CM, "M5126")]


def test_the_blue_button_hcpcs_uri_is_read_as_the_cms_hcpcs_system():
    pump = codes.CodeSet.of(["hcpcs|E0783"])
    concept = {"coding": [{"system": "https://bluebutton.cms.gov/resources/codesystem/hcpcs", "code": "E0783"}]}
    assert [(system, code) for system, code, _ in pump.matches_concept(concept)] == [(codes.SYSTEMS["hcpcs"], "E0783")]


def _record_of(*resources):
    from cdshooks.fhir.record import Slot
    from cdshooks.fhir.record import build

    bundle = {"resourceType": "Bundle", "entry": [{"resource": r} for r in resources]}
    return build({"all": Slot("data", bundle)}, {"all": "Bundle"}, ())


def _condition(rid, system, code):
    return {"resourceType": "Condition", "id": rid, "code": {"coding": [{"system": system, "code": code}]}}


def test_candidates_come_in_the_order_of_the_sets_entries_each_once():
    sct = "http://snomed.info/sct"
    record = _record_of(_condition("a", sct, "1"), _condition("b", ICD10CM, "M51.16"), _condition("c", sct, "2"),
                        _condition("d", ICD10CM, "C50.9"), _condition("e", sct, "9"))
    large = codes.CodeSet.of(["snomed|2", "icd10cm|C00–C96", *(f"snomed|{n}" for n in range(100, 400)),
                              "icd10cm|M51.-", "snomed|1", "snomed|2"])
    assert [r["id"] for r in large.candidates(record)] == ["c", "d", "b", "a"]
    small = codes.CodeSet.of(["snomed|1", "icd10cm|M51.-", "snomed|404"])
    assert [r["id"] for r in small.candidates(record)] == ["a", "b"]
