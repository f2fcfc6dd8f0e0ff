"""`cdshooks check` catches the mistakes that load fine and then never match (lint.py), each at
its file and line, on a copy of the shipped files with one mistake made."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from cdshooks.cli import main as cli

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def tree(tmp_path, monkeypatch):
    for folder in ("policies", "mappings", "valuesets"):
        shutil.copytree(ROOT / folder, tmp_path / folder)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def edit(path: Path, old: str, new: str, count: int = 1) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, old
    path.write_text(text.replace(old, new, count), encoding="utf-8")


def check(capsys) -> tuple[int, list[str]]:
    status = cli.main(["check"])
    return status, [line for line in capsys.readouterr().out.splitlines() if not line.startswith("warning: ")]


def test_a_value_path_fhir_does_not_have_is_named_with_the_nearest_element(tree, capsys):
    edit(tree / "mappings" / "default.yaml", "    codes: [gestational-age]\n    value: $.valueQuantity",
         "    codes: [gestational-age]\n    value: $.valueQuantitiy")
    status, lines = check(capsys)
    assert status == 1 and lines == [
        "mappings/default.yaml:158: facts[pregnancy.ga_observations].value: 'valueQuantitiy' is not an element of "
        "Observation (did you mean 'valueQuantity'?): this path never finds a value [never-matches]"]


def test_a_coded_element_the_source_type_does_not_have_is_refused(tree, capsys):
    edit(tree / "mappings" / "default.yaml", "    codes: [pump-trial-procedures]\n",
         "    codes: [pump-trial-procedures]\n    element: cod\n")
    status, lines = check(capsys)
    assert status == 1 and "Procedure has no element 'cod' (did you mean 'code'?)" in lines[0]


def test_nested_paths_are_walked_through_the_datatypes(tree, capsys):
    edit(tree / "mappings" / "default.yaml", "    value: $.valueQuantity\n", "    value: $.valueQuantity.valeu\n")
    status, lines = check(capsys)
    assert status == 1 and "'valeu' is not an element of Quantity (did you mean 'value'?)" in lines[0]


def test_a_system_with_a_trailing_slash_is_refused(tree, capsys):
    edit(tree / "valuesets" / "gestational-age.json", '"http://loinc.org"', '"http://loinc.org/"')
    status, lines = check(capsys)
    (line,) = [line for line in lines if line.startswith("valuesets/gestational-age.json:")]
    assert status == 1 and "system 'http://loinc.org/' has a trailing slash or space; records never carry it: " \
        "write 'http://loinc.org'" in line


def test_a_range_written_as_a_code_is_refused_and_an_en_dash_range_filter_is_a_range(tree, capsys):
    from cdshooks.fhir import valuesets

    path = tree / "valuesets" / "malignant-neoplasm.json"
    edit(path, '"value": "C00-C96"', '"value": "C00\u2013C96"')
    sets, problems = valuesets.load(tree / "valuesets")
    assert problems == [] and sets.get("malignant-neoplasm").codes.entry_for("http://hl7.org/fhir/sid/icd-10-cm", "C7A")
    data = json.loads(path.read_text())
    data["compose"]["include"][0] = {**data["compose"]["include"][0], "filter": [], "concept": [{"code": "C00-C96"}]}
    path.write_text(json.dumps(data, indent=2))
    status, lines = check(capsys)
    assert status == 1 and "'C00-C96' is a range, not a code: write it as a filter" in lines[0]


def test_a_numeric_operator_on_a_true_false_fact_is_refused_at_its_criterion(tree, capsys):
    edit(tree / "policies" / "intrathecal-pain-pump.yaml", "{fact: conditions.substance_use_active, present: true}",
         "{fact: conditions.substance_use_active, ge: 1}")
    status, lines = check(capsys)
    assert status == 1 and lines == [
        "policies/intrathecal-pain-pump.yaml:193: criteria[I.B.2].when: fact "
        "'conditions.substance_use_active' is true/false: 'ge' compares numbers; test it with 'present' or "
        "'is: true' [never-matches]"]


def test_present_on_a_count_is_refused(tree, capsys):
    edit(tree / "policies" / "prenatal-cfdna-screening.yaml", "{fact: pregnancy.fetal_anomaly_groups, ge: 2}",
         "{fact: pregnancy.fetal_anomaly_groups, present: true}")
    status, lines = check(capsys)
    assert status == 1 and "'pregnancy.fetal_anomaly_groups' is a number: 'present'" in lines[0]


def test_a_unit_on_readings_a_calculator_reads_as_quantities_is_refused(tree, capsys):
    edit(tree / "mappings" / "default.yaml", "    value: $.valueQuantity\n    within: P300D\n",
         "    value: $.valueQuantity\n    unit: wk\n    within: P300D\n")
    status, lines = check(capsys)
    assert status == 1 and "unit: wk turns it into a bare number it cannot read: remove 'unit'" in lines[0]


def test_an_unknown_key_gets_a_did_you_mean_and_an_id_breadcrumb(tree, capsys):
    edit(tree / "policies" / "intrathecal-pain-pump.yaml", "              when: {fact: conditions.dementia",
         "              whenn: {fact: conditions.dementia")
    status, lines = check(capsys)
    assert status == 1 and lines == [
        "policies/intrathecal-pain-pump.yaml:201: criteria[I.B.3].whenn: unknown key 'whenn' "
        "(did you mean 'when'?) [unknown-key]"]


def test_unused_facts_fixtures_and_settings_are_warnings(tree, capsys):
    edit(tree / "mappings" / "spine.yaml", "facts:\n",
         "facts:\n  spine.never_read:\n    description: Nothing reads it.\n"
         "    source: Condition\n    codes: [sepsis]\n    pick: exists\n")
    (tree / "policies" / "testdata" / "orphan.json").write_text('{"resourceType": "Patient", "id": "x"}')
    edit(tree / "policies" / "si-joint-fusion-open.yaml", "settings:\n", "settings:\n  unusedKnob: 3\n")
    assert cli.main(["check"]) == 0
    out = capsys.readouterr().out
    assert "warning: mappings/spine.yaml:" in out
    assert "facts[spine.never_read]: no policy reads this fact [unused-fact]" in out
    assert "warning: policies/testdata/orphan.json:1: no test case names this fixture [unused-fixture]" in out
    assert "settings.unusedKnob: nothing reads this setting [unused-setting]" in out


def test_an_unknown_fact_in_a_policy_gets_a_did_you_mean(tree, capsys):
    from cdshooks.files.suggest import did_you_mean

    assert did_you_mean("pain.origins", ["pain.origin", "patient.age_years"]) == " (did you mean 'pain.origin'?)"
    assert did_you_mean("zzz", ["pain.origin"]) == ""
