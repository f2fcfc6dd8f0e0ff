"""Value sets as data: FHIR ValueSet files, compose or expansion, one error record per problem."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import yaml

from cdshooks.fhir import valuesets
from cdshooks.fhir.read import ICD10CM
from cdshooks.fhir.read import normalize_code
from cdshooks.policy.loader import check

ROOT = Path(__file__).resolve().parents[1]
SNOMED = "http://snomed.info/sct"
SOURCE = {"url": valuesets.SOURCE_EXTENSION, "valueString": "a test source"}


def write(folder: Path, name: str, body: dict) -> Path:
    folder.mkdir(exist_ok=True)
    path = folder / f"{name}.json"
    path.write_text(json.dumps({"resourceType": "ValueSet", **body}, indent=2), encoding="utf-8")
    return path


def load(folder: Path):
    sets, problems = valuesets.load(folder)
    return sets, [str(p) for p in problems]


def test_a_vsac_export_with_an_expansion_loads_unchanged(tmp_path):
    # the shape of a VSAC/eCQM export: compose names other (absent) value sets, the expansion lists codes
    write(tmp_path / "vs", "prostate-cancer", {
        "id": "2.16.840.1.113883.3.526.3.319", "url": "http://cts.nlm.nih.gov/fhir/ValueSet/2.16.840.1.113883.3.526.3.319",
        "meta": {"profile": ["http://hl7.org/fhir/StructureDefinition/shareablevalueset"]}, "status": "active",
        "compose": {"include": [{"valueSet": ["http://cts.nlm.nih.gov/fhir/ValueSet/2.16.840.1.113883.3.526.2.92"]}]},
        "expansion": {"timestamp": "2025-06-20T16:58:24-04:00", "contains": [
            {"system": SNOMED, "version": "http://snomed.info/sct/731000124108/version/20230901", "code": "399068003"},
            {"system": ICD10CM, "version": "2024", "code": "C61",
             "contains": [{"system": ICD10CM, "code": "C61.9"}]}]}})
    write(tmp_path / "vs", "cancer", {"compose": {"include": [{"valueSet": [valuesets.BASE_URL + "prostate-cancer"]}]}})
    sets, problems = load(tmp_path / "vs")
    assert problems == []
    assert sets.codes("cancer").entry_for(SNOMED, "399068003")   # still found by the project's name
    found = sets.get("prostate-cancer")
    assert found.codes.entry_for(SNOMED, "399068003") and found.codes.entry_for(ICD10CM, "C61")
    assert found.codes.entry_for(ICD10CM, "C619") and not found.codes.entry_for(ICD10CM, "C62")
    assert found.sources == ("http://cts.nlm.nih.gov/fhir/ValueSet/2.16.840.1.113883.3.526.3.319",)


def test_compose_reads_concepts_hierarchies_blocks_patterns_and_exclusions(tmp_path):
    folder = tmp_path / "vs"
    write(folder, "skin", {"compose": {"include": [
        {"extension": [SOURCE], "system": ICD10CM,
         "filter": [{"property": "concept", "op": "is-a", "value": "C44"}]}]}})
    write(folder, "cancer", {"compose": {"include": [
        {"extension": [SOURCE], "system": ICD10CM,
         "filter": [{"property": "concept", "op": "is-a", "value": "C00-C96"}]},
        {"extension": [SOURCE], "system": SNOMED, "concept": [{"code": "254637007"}]}],
        "exclude": [{"valueSet": [valuesets.BASE_URL + "skin"]}]}})
    write(folder, "abuse", {"compose": {
        "include": [{"extension": [SOURCE], "system": ICD10CM,
                     "filter": [{"property": "concept", "op": "is-a", "value": "F11.2"}]}],
        "exclude": [{"system": ICD10CM, "filter": [{"property": "code", "op": "regex", "value": "^F1[0-9][12]1$"}]}]}})
    write(folder, "both", {"compose": {"include": [{"valueSet": [valuesets.BASE_URL + "cancer",
                                                                  valuesets.BASE_URL + "abuse"]}]}})
    sets, problems = load(folder)
    assert problems == []
    cancer = sets.codes("cancer")
    assert (cancer.entry_for(ICD10CM, "C7A00") and cancer.entry_for(ICD10CM, "C3490")
            and cancer.entry_for(SNOMED, "254637007"))
    assert not cancer.entry_for(ICD10CM, "C4491") and not cancer.entry_for(ICD10CM, "C97")
    both = sets.codes(["both"])   # a union keeps each set's own exclusions
    assert (both.entry_for(ICD10CM, "F1120") and not both.entry_for(ICD10CM, "F1121")
            and not both.entry_for(ICD10CM, "C440"))
    assert dict(sets.get("cancer").members) == {ICD10CM: 1, SNOMED: 1}


def test_broken_value_sets_are_reported_with_file_and_line(tmp_path):
    folder = tmp_path / "vs"
    write(folder, "no-source", {"compose": {"include": [{"system": SNOMED, "concept": [{"code": "5602001"}]}]}})
    write(folder, "snomed-hierarchy", {"compose": {"include": [
        {"extension": [SOURCE], "system": SNOMED,
         "filter": [{"property": "concept", "op": "is-a", "value": "363346000"}]}]}})
    write(folder, "dangling", {"compose": {"include": [{"valueSet": [valuesets.BASE_URL + "nowhere"]}]}})
    write(folder, "Bad_Name", {"compose": {"include": [{"extension": [SOURCE], "system": SNOMED,
                                                        "concept": [{"code": "1"}]}]}})
    (folder / "broken.json").write_text('{"resourceType": "ValueSet",\n  "compose": [\n', encoding="utf-8")
    _, problems = load(folder)
    text = "\n".join(problems)
    assert re.search(r"valuesets?/no-source\.json:5: compose\.include\[0\]: say where the members come from",
                     text.replace("vs/", "valuesets/"))
    assert re.search(r"snomed-hierarchy\.json:\d+: compose\.include\[0\]\.filter\[0\]: "
                     r"filter 'concept is-a 363346000' is not computable", text)
    assert "dangling.json" in text and "unknown value set 'http://example.org/fhir/ValueSet/nowhere'" in text
    assert "Bad_Name.json:1" in text and "broken.json:3" in text


@pytest.fixture
def tree(tmp_path):
    for name in ("policies", "mappings", "valuesets"):
        shutil.copytree(ROOT / name, tmp_path / name)
    return tmp_path


def test_a_mapping_naming_an_unknown_set_or_a_code_is_a_problem_at_its_line(tree):
    path = tree / "mappings" / "default.yaml"
    text = path.read_text(encoding="utf-8")
    text = text.replace("codes: [narcotic-allergy-status]", "codes: [narcotic-allergy]", 1)
    text = text.replace("reasons: [antenatal-genetic-screening-encounter]", "reasons: [icd10cm|Z36.0]", 1)
    path.write_text(text, encoding="utf-8")
    problems = [p for p in check(tree / "policies", tree / "mappings", {})[1] if p.kind == "code"]
    lines = text.splitlines()
    assert [(p.file, p.line, p.path) for p in problems] == [
        ("mappings/default.yaml", lines.index("    codes: [narcotic-allergy]") + 1,
         "facts[conditions.narcotic_allergy].codes"),
        ("mappings/default.yaml", lines.index("      reasons: [icd10cm|Z36.0]") + 1,
         "facts[order.cfdna_marker].params.reasons")]
    assert "unknown value set 'narcotic-allergy'" in problems[0].detail
    assert "is a code, not a value-set name" in problems[1].detail


def test_the_cli_check_reports_a_broken_value_set(tree, capsys):
    from cdshooks.cli import main as cli

    (tree / "valuesets" / "sepsis.json").write_text('{"resourceType": "ValueSet"}\n', encoding="utf-8")
    code = cli.main(["check", "--policies", str(tree / "policies"), "--mappings", str(tree / "mappings")])
    out = capsys.readouterr().out
    assert code == 1 and re.search(r"valuesets/sepsis\.json:1: .*a value set needs 'compose' or 'expansion'", out)
    assert "mappings/oncology.yaml" in out   # and the facts that name it


# ------------------------------------------------------------------------------ shipped sets
def _shipped():
    return {p.stem: json.loads(p.read_text(encoding="utf-8")) for p in sorted((ROOT / "valuesets").glob("*.json"))}


def _names_in(value) -> set[str]:
    if isinstance(value, dict):
        return set().union(*(_names_in(k) | _names_in(v) for k, v in value.items())) if value else set()
    if isinstance(value, list):
        return set().union(*(_names_in(v) for v in value)) if value else set()
    return {value} if isinstance(value, str) else set()


def test_every_shipped_set_is_used_by_a_policy_a_mapping_or_another_set():
    shipped = _shipped()
    used = set()
    for path in list(ROOT.glob("mappings/*.yaml")) + list(ROOT.glob("policies/*.yaml")):
        if not path.name.endswith("_test.yaml"):
            used |= _names_in(yaml.safe_load(path.read_text(encoding="utf-8")))
    for body in shipped.values():
        for part in body["compose"]["include"] + body["compose"].get("exclude", []):
            used |= {url.rsplit("/", 1)[-1] for url in part.get("valueSet", [])}
    assert sorted(set(shipped) - used) == []


def test_no_code_is_listed_by_two_shipped_sets():
    owner: dict[tuple, str] = {}
    twice = []
    for name, body in _shipped().items():
        for part in body["compose"]["include"]:
            members = [c["code"] for c in part.get("concept", [])] + [f["value"] for f in part.get("filter", [])]
            for member in members:
                key = (part["system"], member)
                if key in owner and owner[key] != name:
                    twice.append(f"{key} in {owner[key]} and {name}")
                owner[key] = name
    assert twice == []


# Issue 11: a SNOMED CT diagnosis lands in every shipped set its ICD-10-CM equivalent lands in.
SAME_MEANING = [
    ("C91.00", "91857003"),       # acute lymphoblastic leukaemia
    ("C91.01", "91856007"),       # acute lymphoblastic leukaemia in remission
    ("C91.02", "12301000132103"),  # acute lymphoblastic leukaemia in relapse
    ("C91.40", "118613001"),      # hairy cell leukaemia
    ("C91.40", "93151007"),       # hairy cell leukaemia of spleen
    ("C91.00", "277575008"),      # T-cell acute lymphoblastic leukaemia
    ("C91.40", "307341004"),      # atypical hairy cell leukaemia
    ("D70.0", "89655007"),        # congenital neutropenia
    ("D70.4", "191347008"),       # cyclical neutropenia
    ("D61.09", "30575002"),       # Fanconi anaemia (constitutional aplastic anaemia)
]
# F-CHRONIC counts ICD-10-CM 3-character categories (colony-stimulating-factors.md f.2), so its set
# is ICD-10-CM by definition.
ICD_CATEGORY_SETS = {"chronic-condition"}


@pytest.mark.parametrize("icd, sct", SAME_MEANING)
def test_a_snomed_diagnosis_is_in_the_same_sets_as_its_icd10cm_equivalent(icd, sct):
    sets = valuesets.load(ROOT / "valuesets")[0]

    def owners(system, code):
        return {name for name, vs in sets.by_name.items() if vs.codes.entry_for(system, normalize_code(system, code))}

    assert owners(SNOMED, sct) and owners(SNOMED, sct) == owners(ICD10CM, icd) - ICD_CATEGORY_SETS
