"""Data-file problems: one record (file, line, path, kind, detail), all of them, sorted."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from cdshooks.files import datafile
from cdshooks.policy.loader import check

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def tree(tmp_path):
    """A copy of policies/, mappings/ and valuesets/ to break."""
    for name in ("policies", "mappings", "valuesets"):
        shutil.copytree(ROOT / name, tmp_path / name)
    return tmp_path


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, old
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def problems(tree):
    return check(tree / "policies", tree / "mappings", {})[1]


def test_the_shipped_files_have_no_problems():
    assert check(ROOT / "policies", ROOT / "mappings", {})[1] == []


def test_unknown_key_is_reported_with_its_line(tree):
    path = tree / "mappings" / "default.yaml"
    edit(path, "    pick: exists\n", "    pick: exists\n    picky: yes\n")
    problem, consequence = problems(tree)  # the broken fact is left out; its one user says so
    line = path.read_text().splitlines().index("    picky: yes") + 1
    assert (problem.file, problem.kind) == ("mappings/default.yaml", "unknown-key")
    assert problem.line == line and problem.path == "facts[orders.implant_companion].picky"
    assert consequence.kind == "reference" and "orders.implant_companion" in consequence.detail


def test_every_problem_in_every_file_is_collected_and_sorted(tree):
    edit(tree / "policies" / "intrathecal-pain-pump.yaml", "when: {fact: pain.origin, is: malignant}",
         "when: {fact: pain.origins, is: malignant}")
    edit(tree / "policies" / "prenatal-cfdna-screening.yaml",
         "codes: [cfdna-microdeletion]", "codes: [cfdna-microdeletions]")
    edit(tree / "mappings" / "default.yaml", "calculator: pain_origin", "calculator: pain_source")
    found = problems(tree)
    assert found == sorted(found)
    files = {p.file for p in found}
    assert files == {"mappings/default.yaml", "policies/intrathecal-pain-pump.yaml",
                     "policies/prenatal-cfdna-screening.yaml"}
    text = "\n".join(str(p) for p in found)
    assert "unknown fact 'pain.origins'" in text and "unknown value set 'cfdna-microdeletions'" in text
    assert "unknown calculator 'pain_source'" in text


def test_duplicate_fact_in_a_second_file_needs_an_override(tree):
    local = tree / "mappings" / "local.yaml"
    local.write_text("# yaml-language-server: $schema=schema.json\ndescription: local EHR\nfacts:\n"
                     "  conditions.narcotic_allergy:\n    description: local codes\n    source: Condition\n"
                     "    codes: [narcotic-allergy-status]\n    pick: exists\n", encoding="utf-8")
    (problem,) = problems(tree)
    assert problem.kind == "duplicate" and problem.file == "mappings/local.yaml" and problem.line == 4
    text = local.read_text().replace("description: local EHR\n", "description: local EHR\noverrides: [default.yaml]\n")
    local.write_text(text, encoding="utf-8")
    assert problems(tree) == []


def test_yaml_syntax_errors_give_the_line(tree):
    path = tree / "policies" / "prenatal-cfdna-screening.yaml"
    edit(path, "settings:\n", "settings: [\n")
    (problem,) = problems(tree)
    assert problem.kind == "yaml" and problem.line > 1


def test_duplicate_yaml_keys_are_refused(tree):
    edit(tree / "policies" / "prenatal-cfdna-screening.yaml",
         "jurisdiction: US\n", "jurisdiction: US\njurisdiction: US\n")
    (problem,) = problems(tree)
    assert "duplicate key" in problem.detail


def test_missing_schema_reference_on_line_1_is_a_problem(tree):
    path = tree / "mappings" / "default.yaml"
    path.write_text("\n".join(path.read_text().splitlines()[1:]) + "\n", encoding="utf-8")
    assert [p.kind for p in problems(tree)] == ["schema-ref"]


def test_applicability_may_not_read_the_record(tree):
    edit(tree / "policies" / "prenatal-cfdna-screening.yaml", "requires: {fact: order.cfdna_marker, is: true}",
         "requires: {fact: pregnancy.gestational_age_days, ge: 63}")
    (problem,) = problems(tree)
    assert problem.kind == "applicability"


def test_duplicate_criterion_ids_and_unknown_references(tree):
    path = tree / "policies" / "intrathecal-pain-pump.yaml"
    edit(path, "- id: I.A.1.b\n", "- id: I.A.1.a\n")
    edit(path, "ref: I.A.2\n", "ref: I.A.9\n")
    kinds = sorted(p.kind for p in problems(tree))
    assert kinds == ["duplicate", "reference"]


def test_crd_invalid_coverage_in_a_response_row_is_refused(tree):
    edit(tree / "policies" / "prenatal-cfdna-screening.yaml",
         "coverage: {covered: covered, pa-needed: no-auth}", "coverage: {covered: covered}")
    (problem,) = problems(tree)
    assert problem.kind == "coverage" and "pa-needed" in problem.detail


def test_problem_prints_as_file_line_path_message():
    problem = datafile.Problem("policies/x.yaml", 12, "criteria.all[0]", "reference", "no criterion 'Q'")
    assert str(problem) == "policies/x.yaml:12: criteria.all[0]: no criterion 'Q' [reference]"


def test_a_leaf_without_a_question_is_reported_with_its_line(tree):
    path = tree / "policies" / "prenatal-cfdna-screening.yaml"
    edit(path, "      question: Is this the first cfDNA screen of this pregnancy?\n", "")
    (problem,) = problems(tree)
    assert (problem.kind, problem.path) == ("missing", "criteria[GEN-1].question")
    assert "question" in problem.detail


POLICY = {"id": "p", "criteria": {"id": "ROOT", "all": [{"id": "I.A"}, {"id": "I.B", "any": [
    {"id": "I.B.1"}, {"id": "I.B.2"}, {"id": "I.B.3", "when": {"all": [{"fact": "x"}, {"fact": "y"}]}}]}]},
    "applicability": [{"name": "trial", "requires": {"fact": "z"}}], "outcomes": [{"code": "EXCL", "when": {}}]}


@pytest.mark.parametrize("path, breadcrumb", [
    (("criteria", "all", 1, "any", 2, "when"), "criteria[I.B.3].when"),
    (("criteria", "all", 1, "any", 2, "when", "all", 1, "fact"), "criteria[I.B.3].when.all[1].fact"),
    (("criteria", "all", 0), "criteria[I.A]"),
    (("applicability", 0, "requires"), "applicability[trial].requires"),
    (("outcomes", 0, "when"), "outcomes[EXCL].when"),
    (("criteria", "all", 7, "text"), "criteria.all[7].text"),   # no such item: numbered
])
def test_breadcrumbs_name_list_items_by_id_as_cfgv_does(path, breadcrumb):
    assert datafile.format_path(path, POLICY) == breadcrumb


def test_breadcrumbs_bracket_fact_names_and_number_items_without_data():
    assert datafile.format_path(("facts", "opioids.daily_mme", "params", "withn_days")) == \
        "facts[opioids.daily_mme].params.withn_days"
    assert datafile.format_path(("criteria", "all", 1, "any", 2)) == "criteria.all[1].any[2]"


def test_a_misspelt_calculator_param_is_refused_at_its_line_with_its_path(tree):
    path = tree / "mappings" / "spine.yaml"
    edit(path, "[spinal-fracture], within_days: 90}", "[spinal-fracture], withn_days: 90}")
    found = [p for p in problems(tree) if p.kind == "unknown-key"]
    line = path.read_text().splitlines().index("    params: {codes: [spinal-fracture], withn_days: 90}") + 1
    assert [(p.file, p.line) for p in found] == [("mappings/spine.yaml", line)]
    assert found[0].path.endswith("].params.withn_days") and found[0].path.startswith("facts[")
    assert "did you mean 'within_days'?" in found[0].detail


def test_a_calculator_param_of_the_wrong_type_or_missing_is_refused(tree):
    path = tree / "mappings" / "default.yaml"
    text = path.read_text()
    edit(path, "lookback_days: {setting: ", "lookback_dayz: {setting: ")
    found = {(p.path.split("].", 1)[-1], p.kind) for p in problems(tree) if p.file == "mappings/default.yaml"}
    assert ("params.lookback_days", "schema") in found and ("params.lookback_dayz", "unknown-key") in found
    path.write_text(text)
    edit(path, "      days: 63\n", "      days: soon\n")
    (problem, *_) = [p for p in problems(tree) if p.file == "mappings/default.yaml"]
    assert problem.path.endswith("].params.days") and problem.kind == "schema"
