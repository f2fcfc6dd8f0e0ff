"""The site layer, exercised exactly as docs/integration.md and docs/authoring.md tell a user to:
each task's files are written from the guide's own code blocks into a copy of the shipped files,
then the guide's commands are run through the CLI."""

from __future__ import annotations

import re
import shlex
import shutil
from pathlib import Path

import pytest

from cdshooks.cli import main as cli

ROOT = Path(__file__).resolve().parents[1]
FILE_BLOCK = re.compile(r"File `([^`]+)`[^\n]*:\n\n```\w*\n(.*?)\n```", re.S)
COMMANDS = re.compile(r"```sh\n(.*?)\n```", re.S)


def sections(doc: str) -> dict[str, tuple[list, list]]:
    """Heading -> (files [(path, text)], commands) of each '## ' section of a guide."""
    out = {}
    for part in re.split(r"\n## ", (ROOT / "docs" / doc).read_text(encoding="utf-8"))[1:]:
        title = part.split("\n", 1)[0]
        commands = [line for block in COMMANDS.findall(part) for line in block.splitlines()
                    if line.startswith("cdshooks ")]
        out[title] = (FILE_BLOCK.findall(part), commands)
    return out


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A copy of the shipped data files, as a clone has them; the commands run inside it."""
    for folder in ("policies", "mappings", "valuesets", "examples"):
        shutil.copytree(ROOT / folder, tmp_path / folder)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CDSHOOKS_SITE", raising=False)
    monkeypatch.delenv("CDSHOOKS_POLICY_SETTINGS", raising=False)
    return tmp_path


def follow(project: Path, doc: str, *titles: str, capsys=None) -> list[str]:
    """Write the files of the named sections (in order), run their commands; return the outputs."""
    guide, outputs = sections(doc), []
    for title in titles:
        (key,) = [k for k in guide if k.startswith(title)]
        files, commands = guide[key]
        for path, text in files:
            target = project / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text + "\n", encoding="utf-8")
        for command in commands:
            status = cli.main(shlex.split(command)[1:])
            out = capsys.readouterr().out if capsys else ""
            assert status == 0, f"{command!r} exited {status}:\n{out}"
            outputs.append(out)
    return outputs


def fails_without_site_yaml(project: Path, keyword: str, capsys) -> str:
    """The site's own case, run with the site's files but without site.yaml: it must fail."""
    site = project / "st-elsewhere" / "site.yaml"
    kept = site.read_text()
    site.unlink()
    try:
        assert cli.main(["test", "--site", "st-elsewhere", "-k", keyword]) == 1
        return capsys.readouterr().out
    finally:
        site.write_text(kept)


def test_task_1_a_local_code_added_to_a_shipped_value_set(project, capsys):
    follow(project, "integration.md", "Task 1", capsys=capsys)
    assert "MN-3: expected 'met', got 'unknown'" in fails_without_site_yaml(project, "local GA code", capsys)


def test_task_1_without_the_unit_parameter_check_names_the_never_match(project, capsys):
    follow(project, "integration.md", "Task 1", capsys=capsys)
    site = project / "st-elsewhere" / "site.yaml"
    site.write_text(site.read_text().replace("    params: {unitless_weeks: [st-elsewhere-gestational-age]}\n", "")
                    .replace("  pregnancy.gestational_age_days:\n", "").replace("facts:\n", ""))
    assert cli.main(["check", "--site", "st-elsewhere"]) == 1
    assert "GA-WK): a reading without a UCUM unit" in capsys.readouterr().out


def test_task_2_medication_statement_as_a_second_source_of_a_fact(project, capsys):
    follow(project, "integration.md", "Task 1", "Task 2", capsys=capsys)
    assert "A.a.ii.2.i: expected 'met', got 'unknown'" in fails_without_site_yaml(project, "antiretroviral", capsys)


def test_task_3_a_local_applicability_code_through_the_policys_value_set(project, capsys):
    follow(project, "integration.md", "Task 1", "Task 2", "Task 3", capsys=capsys)
    assert ("expected one card for ServiceRequest/sr-ste-trial, got 0"
            in fails_without_site_yaml(project, "IT-TRIAL", capsys))


def test_task_3_the_rule_only_variant_adds_codes_to_one_applicability_rule(project, capsys):
    follow(project, "integration.md", "Task 1", "Task 2", "Task 3", capsys=capsys)
    site = project / "st-elsewhere" / "site.yaml"
    site.write_text(site.read_text().replace("  pump-trial-procedures: {add: [st-elsewhere-pump-trial]}\n", "")
                    + "applicability:\n  intrathecal-pain-pump: {trial: [st-elsewhere-pump-trial]}\n")
    assert cli.main(["test", "--site", "st-elsewhere", "--policy", "intrathecal-pain-pump", "-k", "IT-TRIAL"]) == 0
    site.write_text(site.read_text().replace("{trial: [", "{trail: ["))
    assert cli.main(["check", "--site", "st-elsewhere"]) == 1
    assert "no applicability rule 'trail' (did you mean 'trial'?)" in capsys.readouterr().out


def test_a_site_value_set_may_not_silently_reuse_a_shipped_name(project, capsys):
    follow(project, "integration.md", "Task 1", capsys=capsys)
    shutil.copy(project / "valuesets" / "twin-pregnancy.json", project / "st-elsewhere" / "valuesets")
    assert cli.main(["check", "--site", "st-elsewhere"]) == 1
    assert "'twin-pregnancy' is a shipped value set" in capsys.readouterr().out


def test_site_settings_are_checked_by_name_and_type(project, capsys):
    follow(project, "integration.md", "Task 1", "Task 2", "Task 3", capsys=capsys)
    site = project / "st-elsewhere" / "site.yaml"
    site.write_text(site.read_text().replace("{paRequired: true}", "{paRequire: true}"))
    assert cli.main(["check", "--site", "st-elsewhere"]) == 1
    out = capsys.readouterr().out
    assert "st-elsewhere/site.yaml:" in out and "no setting 'paRequire' (did you mean 'paRequired'?)" in out
    site.write_text(site.read_text().replace("{paRequire: true}", "{paRequired: 'no'}"))
    assert cli.main(["check", "--site", "st-elsewhere"]) == 1
    assert "'paRequired' is a bool in the policy" in capsys.readouterr().out


def test_the_service_reads_the_site_folder(project, monkeypatch):
    from cdshooks import create_app
    from cdshooks import registry

    follow(project, "integration.md", "Task 1", "Task 2", "Task 3")
    app = create_app({"TESTING": True, "DATABASE_URL": "sqlite://", "SITE": "st-elsewhere"})
    with app.app_context():
        loaded = registry.get()
    assert "medicationStatements" in loaded.services["medical-policy-order-sign"].discovery()["prefetch"]
    assert loaded.policies.by_id["intrathecal-pain-pump"].settings["paRequired"] is True
    assert loaded.policies.valuesets.get("gestational-age").codes.entry_for(
        "http://st-elsewhere.example/fhir/CodeSystem/lab", "GA-WK") is not None


def test_authoring_worked_example_a_new_policy_with_its_tests_eval_and_serve(project, capsys):
    import json

    from cdshooks import create_app

    outputs = follow(project, "authoring.md", "Worked example", capsys=capsys)
    tested, explained = outputs[1], outputs[2]
    assert "PASS st-elsewhere/policies/st-elsewhere-dxa_test.yaml::every leaf of st-elsewhere-dxa" in tested
    assert "8 passed, 0 failed" in tested
    assert "ServiceRequest/sr-ste-dxa · st-elsewhere-dxa: APPLIES — rule 'dxa' matches" in explained
    assert "(st-elsewhere/mappings/st-elsewhere.yaml:4)" in explained
    assert "compared: patient.age_years @E = 50; test: ≥ 65" in explained
    # serve: the same request through the service the guide starts
    app = create_app({"TESTING": True, "DATABASE_URL": "sqlite://", "SITE": "st-elsewhere", "TODAY": "2025-06-15"})
    body = json.loads((project / "st-elsewhere" / "dxa-request.json").read_text())
    (card,) = app.test_client().post("/cds-services/medical-policy-order-sign", json=body).get_json()["cards"]
    assert card["summary"] == "DXA scan (DXA-SCAN): age or risk factor not documented yet (STE DXA rule)"
    assert app.test_client().get("/fhir/Questionnaire/st-elsewhere-dxa").status_code == 200


def test_a_leaf_never_seen_in_every_result_fails_the_new_policy(project, capsys):
    follow(project, "authoring.md", "Worked example", capsys=capsys)
    suite = project / "st-elsewhere" / "policies" / "st-elsewhere-dxa_test.yaml"
    text = suite.read_text()
    suite.write_text(text[:text.index("  - name: procedures could not be read")])
    assert cli.main(["test", "--site", "st-elsewhere", "--policy", "st-elsewhere-dxa", "-q"]) == 1
    out = capsys.readouterr().out
    assert ("FAIL st-elsewhere/policies/st-elsewhere-dxa_test.yaml::every leaf" in out
            and "B.1: never checked unknown" in out)


def test_an_added_set_reaches_the_sets_that_include_the_extended_one_and_replace_swaps_it(project):
    from cdshooks.facts import site
    from cdshooks.fhir import valuesets

    follow(project, "integration.md", "Task 1", "Task 2", "Task 3")
    folder = project / "st-elsewhere"
    (folder / "site.yaml").write_text(
        "description: x\nvaluesets:\n  pump-implant-procedures: {add: [st-elsewhere-pump-trial]}\n"
        "  twin-pregnancy: {replace: st-elsewhere-gestational-age}\n")
    sets, problems = valuesets.load(project / "valuesets", site.load(folder))
    assert problems == []
    local = ("http://st-elsewhere.example/fhir/CodeSystem/procedures", "IT-TRIAL")
    assert sets.get("pump-implant").codes.entry_for(*local) is not None        # includes pump-implant-procedures
    assert sets.get("pump-implant").codes.entry_for("http://www.ama-assn.org/go/cpt", "62350") is not None
    twins = sets.get("twin-pregnancy").codes
    assert twins.entry_for("http://st-elsewhere.example/fhir/CodeSystem/lab", "GA-WK") is not None
    assert twins.entry_for("http://hl7.org/fhir/sid/icd-10-cm", "O30009") is None
    assert "http://st-elsewhere.example/fhir/ValueSet/gestational-age" in sets.get("twin-pregnancy").sources


def test_a_misspelt_param_in_site_yaml_is_reported_at_its_line_of_site_yaml(project, capsys):
    follow(project, "integration.md", "Task 1", capsys=capsys)
    site = project / "st-elsewhere" / "site.yaml"
    site.write_text(site.read_text().replace("params: {unitless_weeks:", "params: {unitless_weekz:"))
    line = site.read_text().splitlines().index("    params: {unitless_weekz: [st-elsewhere-gestational-age]}") + 1
    assert cli.main(["check", "--site", "st-elsewhere"]) == 1
    out = capsys.readouterr().out
    assert (f"st-elsewhere/site.yaml:{line}: facts[pregnancy.gestational_age_days].params.unitless_weekz: "
            f"unknown key 'unitless_weekz' (did you mean 'unitless_weeks'?)") in out
