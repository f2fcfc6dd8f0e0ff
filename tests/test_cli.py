"""The cdshooks command: check, test, eval (on the saved headline requests), schemas, serve wiring."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from cdshooks.cli import main as cli

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = ["--policies", str(ROOT / "policies"), "--mappings", str(ROOT / "mappings")]


def response_of(output: str) -> dict:
    return json.loads(output[output.index("== response") + len("== response"):])


def test_check_passes_on_the_shipped_files(capsys):
    assert cli.main(["check", *FOLDERS]) == 0
    # warnings (an unused fact or fixture) are listed but do not fail the check
    assert all(line.startswith("warning: ") for line in capsys.readouterr().out.splitlines())


def test_check_prints_every_problem_sorted_and_exits_1(tmp_path, capsys):
    for name in ("policies", "mappings", "valuesets"):
        shutil.copytree(ROOT / name, tmp_path / name)
    policy = tmp_path / "policies" / "prenatal-cfdna-screening.yaml"
    policy.write_text(policy.read_text().replace("default: met\n", "default: maybe\n", 1))
    mapping = tmp_path / "mappings" / "default.yaml"
    mapping.write_text(mapping.read_text().replace("within: P365D", "within: 365 days"))
    assert cli.main(["check", "--policies", str(tmp_path / "policies"), "--mappings", str(tmp_path / "mappings")]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines == sorted(lines) and len(lines) >= 2
    assert lines[0].startswith("mappings/default.yaml:") and ": facts[procedures.last_trial_date].within:" in lines[0]
    assert any(line.startswith("policies/prenatal-cfdna-screening.yaml:") for line in lines)


def test_test_runs_every_case_and_reports_the_count(capsys):
    assert cli.main(["test", *FOLDERS]) == 0
    out = capsys.readouterr().out
    assert "PASS prenatal-cfdna-screening_test.yaml::" in out and " 0 failed" in out


def test_eval_explains_the_opioid_headline_request(capsys):
    assert cli.main(["eval", str(ROOT / "examples" / "pump-trial-opioids-weaned-30pct.json"),
                     "--today", "2025-06-15", *FOLDERS]) == 0
    out = capsys.readouterr().out
    assert "opioids.wean_50pct @ 2025-06-15" in out and "I.A.2.g          not-met  structured" in out
    response = response_of(out)
    card = response["cards"][0]
    assert card["summary"] == "IT pump trial (62322): opioids not weaned ≥50% (70 vs 100 MME/day) — criteria not met"
    assert "oxycodone 20 mg × 2/day × 1.5 = 60" in card["detail"]
    coverage = response["systemActions"][0]["resource"]["extension"][-1]["extension"]
    assert {"url": "covered", "valueCode": "not-covered"} in coverage
    assert not any(part["url"] == "pa-needed" for part in coverage)


def test_eval_explains_the_cfdna_at_8w2d_request(capsys):
    assert cli.main(["eval", str(ROOT / "examples" / "cfdna-at-8w2d.json"), "--today", "2026-11-21", *FOLDERS]) == 0
    response = response_of(capsys.readouterr().out)
    card = response["cards"][0]
    assert card["summary"] == "cfDNA screen (81420): 8w2d on 2026-11-21 — eligible from 2026-11-26 (9w0d)"
    action = card["suggestions"][0]["actions"][0]
    assert action["type"] == "update" and action["resource"]["occurrenceDateTime"] == "2026-11-26"
    assert card["extension"]["cdshooks.evaluation"]["outcome"] == "too-early"


def test_eval_of_a_bad_request_prints_the_operation_outcome(tmp_path, capsys):
    request = tmp_path / "bad.json"
    request.write_text(json.dumps({"hook": "order-sign", "context": {}}))
    assert cli.main(["eval", str(request), *FOLDERS]) == 1
    assert json.loads(capsys.readouterr().out)["resourceType"] == "OperationOutcome"


def test_schemas_writes_the_four_schema_files(tmp_path, capsys):
    (tmp_path / "policies").mkdir()
    (tmp_path / "mappings").mkdir()
    assert cli.main(["schemas", "--policies", str(tmp_path / "policies"),
                     "--mappings", str(tmp_path / "mappings")]) == 0
    assert {p.name for p in tmp_path.glob("*/*.json")} == {"schema.json", "test-schema.json", "site-schema.json"}


def test_serve_refuses_to_start_with_a_broken_policy(tmp_path, monkeypatch, capsys):
    for name in ("policies", "mappings", "valuesets"):
        shutil.copytree(ROOT / name, tmp_path / name)
    (tmp_path / "policies" / "prenatal-cfdna-screening.yaml").write_text("id: [\n")
    monkeypatch.setenv("CDSHOOKS_POLICIES", str(tmp_path / "policies"))
    monkeypatch.setenv("CDSHOOKS_MAPPINGS", str(tmp_path / "mappings"))
    monkeypatch.setenv("CDSHOOKS_DATABASE_URL", f"sqlite:///{tmp_path / 'db.sqlite3'}")
    started = []
    monkeypatch.setattr("cdshooks.serve.server._Gunicorn.run", lambda self: started.append(self))
    assert cli.main(["serve", "--port", "8999"]) == 1
    assert "policies/prenatal-cfdna-screening.yaml:" in capsys.readouterr().err and not started


def test_serve_runs_gunicorn_with_the_access_log_off(tmp_path, monkeypatch):
    monkeypatch.setenv("CDSHOOKS_DATABASE_URL", f"sqlite:///{tmp_path / 'db.sqlite3'}")
    monkeypatch.chdir(ROOT)
    started = []
    monkeypatch.setattr("cdshooks.serve.server._Gunicorn.run", lambda self: started.append(self.options))
    assert cli.main(["serve", "--host", "127.0.0.1", "--port", "8999", "--workers", "3"]) == 0
    (options,) = started
    assert options["bind"] == "127.0.0.1:8999" and options["workers"] == 3 and options["accesslog"] is None
    assert options["worker_class"] == "cdshooks.serve.worker.Worker" and options["preload_app"] is True


def test_serve_with_an_unwritable_sqlite_folder_says_what_to_do(tmp_path, monkeypatch, capsys):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    monkeypatch.setenv("CDSHOOKS_DATABASE_URL", f"sqlite:///{blocker / 'db.sqlite3'}")
    monkeypatch.chdir(ROOT)
    monkeypatch.setattr("cdshooks.serve.server._Gunicorn.run", lambda self: None)
    assert cli.main(["serve", "--port", "8999"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and "chown" in err and "CDSHOOKS_DATABASE_URL" in err


def test_serve_takes_host_port_and_workers_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("CDSHOOKS_DATABASE_URL", f"sqlite:///{tmp_path / 'db.sqlite3'}")
    monkeypatch.setenv("CDSHOOKS_HOST", "0.0.0.0")
    monkeypatch.setenv("CDSHOOKS_PORT", "9130")
    monkeypatch.setenv("CDSHOOKS_WORKERS", "3")
    monkeypatch.chdir(ROOT)
    started = []
    monkeypatch.setattr("cdshooks.serve.server._Gunicorn.run", lambda self: started.append(self.options))
    assert cli.main(["serve"]) == 0
    assert started[0]["bind"] == "0.0.0.0:9130" and started[0]["workers"] == 3


class _Answer:
    def __init__(self, status):
        self.status = status

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_health_probes_the_port_serve_binds(monkeypatch, capsys):
    probed = []
    monkeypatch.setattr("urllib.request.urlopen", lambda url, timeout: probed.append(url) or _Answer(200))
    monkeypatch.setenv("CDSHOOKS_PORT", "9130")
    assert cli.main(["health"]) == 0
    monkeypatch.delenv("CDSHOOKS_PORT")
    assert cli.main(["health"]) == 0
    assert probed == ["http://127.0.0.1:9130/healthz", "http://127.0.0.1:8000/healthz"]


def test_health_fails_when_nothing_answers_or_the_service_is_unhealthy(monkeypatch, capsys):
    def refused(url, timeout):
        raise ConnectionRefusedError(111, "Connection refused")
    monkeypatch.setattr("urllib.request.urlopen", refused)
    assert cli.main(["health", "--port", "9"]) == 1
    assert "127.0.0.1:9/healthz" in capsys.readouterr().err
    monkeypatch.setattr("urllib.request.urlopen", lambda url, timeout: _Answer(204))
    assert cli.main(["health"]) == 1


def test_a_bad_port_in_the_environment_is_a_usage_error(monkeypatch, capsys):
    monkeypatch.setenv("CDSHOOKS_PORT", "eighty")
    with pytest.raises(SystemExit) as exit_:
        cli.main(["health"])
    assert exit_.value.code == 2 and "invalid int value: 'eighty'" in capsys.readouterr().err


def test_no_command_prints_help(capsys):
    assert cli.main([]) == 2
    assert "serve" in capsys.readouterr().out


def test_workers_warm_up_on_each_policy_before_serving(app):
    from cdshooks.serve import server
    from cdshooks.testing import cases

    suites, _ = cases.load_suites(ROOT / "policies")
    assert server.warm_up(app) == len(suites) >= 4


def test_check_rejects_a_policy_whose_responses_leave_a_reachable_decision_unanswered(tmp_path, capsys):
    for name in ("policies", "mappings", "valuesets"):
        shutil.copytree(ROOT / name, tmp_path / name)
    policy = tmp_path / "policies" / "si-joint-fusion-open.yaml"
    row = ("  - when: {decision: [unknown]}\n    indicator: warning\n"
           "    summary: \"{order}: no qualifying indication documented yet — PA review needed ({policy})\"\n")
    text = policy.read_text()
    start = text.index(row)
    end = text.index("  - when:", start + len(row))
    policy.write_text(text[:start] + text[end:])
    assert cli.main(["check", "--policies", str(tmp_path / "policies"), "--mappings", str(tmp_path / "mappings")]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("policies/si-joint-fusion-open.yaml:")
    assert "no response row answers decision 'unknown' with outcome 'none'" in lines[0]


def test_serve_gives_its_workers_one_key_for_kept_form_tokens(tmp_path, monkeypatch):
    import os
    monkeypatch.setattr(os, "environ", {k: v for k, v in os.environ.items() if k != "CDSHOOKS_SECRET_KEY"})
    monkeypatch.setenv("CDSHOOKS_DATABASE_URL", f"sqlite:///{tmp_path / 'db.sqlite3'}")
    monkeypatch.chdir(ROOT)
    monkeypatch.setattr("cdshooks.serve.server._Gunicorn.run", lambda self: None)
    assert cli.main(["serve", "--port", "8999"]) == 0
    key = os.environ["CDSHOOKS_SECRET_KEY"]  # inherited by every forked worker
    assert len(key) > 40
    monkeypatch.setenv("CDSHOOKS_SECRET_KEY", '"configured"')
    assert cli.main(["serve", "--port", "8999"]) == 0
    assert os.environ["CDSHOOKS_SECRET_KEY"] == '"configured"'


def test_valuesets_lists_each_set_with_members_per_system_and_sources(capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    assert cli.main(["valuesets"]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| substance-use-disorder ")]
    assert len(rows) == 1 and "icd-10-cm 18" in rows[0] and "sct " in rows[0] and "2.16.840.1.113883" in rows[0]


def test_test_selects_by_policy_and_keyword_and_quiet_prints_only_failures(capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    assert cli.main(["test", "--policy", "si-joint-fusion-open", "-k", "sacrectomy", "-q"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[-1].endswith("passed, 0 failed") and int(out[-1].split()[0]) >= 1
    assert not any(line.startswith("PASS") for line in out)
    assert cli.main(["test", "--policy", "si-joint-fusion-open", "-k", "sacrectomy"]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("PASS")]
    assert lines and all("si-joint-fusion-open_test.yaml::" in line and "sacrectomy" in line.lower() for line in lines)
    assert cli.main(["test", "-k", "no case has this name"]) == 1


def test_one_broken_test_file_fails_alone_and_the_other_suites_still_run(tmp_path, capsys, monkeypatch):
    for folder in ("policies", "mappings", "valuesets"):
        shutil.copytree(ROOT / folder, tmp_path / folder)
    broken = tmp_path / "policies" / "si-joint-fusion-open_test.yaml"
    broken.write_text(broken.read_text().replace("    orders: [", "    order: [", 1))
    monkeypatch.chdir(tmp_path)
    assert cli.main(["test", "-q"]) == 1
    out = capsys.readouterr().out
    assert "FAIL si-joint-fusion-open_test.yaml::load" in out and "unknown key 'order' (did you mean 'orders'?)" in out
    passed = int(out.splitlines()[-1].split()[0])
    assert passed > 100    # every other suite ran
    assert "FAIL spinal-surgery-referral_test.yaml" not in out


def test_eval_says_why_no_policy_applies_to_an_order(tmp_path, capsys):
    body = json.loads((ROOT / "examples" / "cfdna-at-8w2d.json").read_text())
    body["context"]["draftOrders"]["entry"][0]["resource"]["code"] = {
        "coding": [{"system": "http://www.ama-assn.org/go/cpt", "code": "99213"}]}
    request = tmp_path / "request.json"
    request.write_text(json.dumps(body))
    assert cli.main(["eval", str(request), "--today", "2026-11-21", *FOLDERS]) == 0
    out = capsys.readouterr().out
    assert ("ServiceRequest/sr-cfdna · prenatal-cfdna-screening: does not apply — rule 'cfdna': the order's codes "
            "(99213) are in none of the value sets cfdna-aneuploidy-screen") in out
    assert "APPLIES" not in out


def test_eval_outside_the_project_folder_says_so_in_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CDSHOOKS_POLICIES", raising=False)
    monkeypatch.delenv("CDSHOOKS_MAPPINGS", raising=False)
    assert cli.main(["eval", str(ROOT / "examples" / "cfdna-at-8w2d.json")]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert "run in the project folder, or give --policies/--mappings" in err
    assert cli.main(["test"]) == 2 and "Traceback" not in capsys.readouterr().err


def test_a_broken_site_file_is_one_problem_list_for_every_command(tmp_path, capsys, monkeypatch):
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "site.yaml").write_text("description: x\nvaluesets:\n  gestational-age: {ad: [x]}\n")
    monkeypatch.chdir(ROOT)
    assert cli.main(["check", "--site", str(tmp_path / "site")]) == 1
    assert "unknown key 'ad' (did you mean 'add'?)" in capsys.readouterr().out
    assert cli.main(["eval", "examples/cfdna-at-8w2d.json", "--site", str(tmp_path / "site")]) == 2
    err = capsys.readouterr().err
    assert "site.yaml:3" in err and "Traceback" not in err
