"""Policy test cases as data (``policies/<id>_test.yaml``): fixed clock, named fixtures, expectations.

Each case sends a real hook request through the whole service (a Flask test client; no server,
no network), built from FHIR fixtures in ``policies/testdata/``, and compares the card's
``cdshooks.evaluation`` and the CRD coverage-information with what the case expects.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import Field

from cdshooks.files import datafile
from cdshooks.files.datafile import Problem
from cdshooks.files.model import FileModel
from cdshooks.policy.model import Result
from cdshooks.respond import card_rules
from cdshooks.respond.coverage import COVERAGE_INFORMATION

SCHEMA_FILE = "test-schema.json"


class Expect(FileModel):
    applies: bool = Field(True, description="false: the policy must give this order no card")
    decision: Literal["met", "not-met", "unknown", "excluded"] | None = None
    outcome: str | None = Field(None, description="outcome code, or 'none'")
    criteria: dict[str, Result] = Field(default_factory=dict)
    documentation: list[str] | None = None
    coverage: dict[str, str] | Literal["none"] | None = Field(
        None, description="exact CRD values (covered, pa-needed, …), or 'none' for no coverage action")
    indicator: Literal["info", "warning", "critical"] | None = None
    summary: str | None = Field(None, description="text the card summary must contain")
    detail: list[str] = Field(default_factory=list, description="texts the card detail must contain")
    suggestion: str | None = Field(None, description="text a suggestion label must contain")


class Case(FileModel):
    name: str = Field(min_length=1)
    hook: Literal["order-sign", "order-select"] = "order-sign"
    today: dt.date | None = None
    orders: list[str] = Field(min_length=1, description="draft order fixtures; the first is evaluated")
    evaluate: str | None = Field(None, description="'Type/id' of the draft order to check (default: the first)")
    record: list[str] = Field(default_factory=list, description="fixtures placed in the prefetch")
    answers: dict[str, bool] = Field(default_factory=dict, description="QuestionnaireResponse answers")
    unavailable: list[str] = Field(default_factory=list, description="resource types sent as OperationOutcome")
    settings: dict[str, bool | int | float | str | list[str]] = Field(default_factory=dict)
    expect: Expect


class Suite(FileModel):
    policy: str
    description: str = Field(min_length=1)
    today: dt.date
    unreachable: dict[str, list[Result]] = Field(default_factory=dict, description=(
        "criterion id -> results no record or answer can give it (left out of the every-leaf rule); "
        "say why in a comment"))
    cases: list[Case] = Field(min_length=1)


@dataclass(frozen=True)
class CaseRun:
    suite: str
    case: str
    failures: tuple[str, ...]

    @property
    def passed(self) -> bool:
        return not self.failures


def fixtures_dir(policies: Path) -> Path:
    return policies / "testdata"


def _fixture_path(policies, name: str) -> Path:
    """``policies`` is a folder or a list of folders (a site's, then the shipped one): first found wins."""
    folders = [policies] if isinstance(policies, Path) else list(policies)
    paths = [fixtures_dir(folder) / f"{name}.json" for folder in folders]
    return next((p for p in paths if p.is_file()), paths[-1])


def load_fixture(policies, name: str) -> list[dict]:
    """A fixture file: one resource or a JSON list of resources."""
    value = json.loads(_fixture_path(policies, name).read_text(encoding="utf-8"))
    return value if isinstance(value, list) else [value]


def load_suites(policies: Path, site: Path | None = None) -> tuple[list[tuple[str, Suite]], list[Problem]]:
    """Every ``*_test.yaml`` of the folder (then of the site's ``policies/``), validated; problems
    for broken ones.  A site's suites are named by their path (``st-elsewhere/policies/x_test.yaml``)."""
    suites, problems = [], []
    for path, root, shipped in suite_files(policies, site):
        suite, found = load_suite(path, root, shipped, policies)
        problems += found
        if suite is not None:
            suites.append((path.name if shipped else datafile.read_name(path, root), suite))
    return suites, problems


def suite_files(policies: Path, site: Path | None):
    yield from ((path, policies.parent, True) for path in sorted(policies.glob("*_test.yaml")))
    local = Path(site) / "policies" if site is not None else None
    if local is not None and local.is_dir():
        yield from ((path, local.parent.parent, False) for path in sorted(local.glob("*_test.yaml")))


def fixture_folders(path: Path, policies: Path) -> list[Path]:
    """Where a suite's fixtures are looked for: its own folder, then the shipped policies folder."""
    return [path.parent] + ([policies] if path.parent.resolve() != policies.resolve() else [])


def load_suite(path: Path, root: Path, shipped: bool = True, policies: Path | None = None):
    """One suite file: the suite (or None) and its problems."""
    document, problems = datafile.read(path, root)
    if document is None:
        return None, problems
    problems += datafile.check_schema_comment(path, document, SCHEMA_FILE)
    suite, found = datafile.validate(document, Suite)
    problems += found
    if suite is not None:
        problems += _check_suite(fixture_folders(path, policies or path.parent), path, suite, document, shipped)
    return suite, problems


def _check_suite(folders, path: Path, suite: Suite, document, shipped: bool = True) -> list[Problem]:
    problems = []
    # a site's suites may have any name (several files may test one policy); shipped ones are named for it
    if shipped and path.name != f"{suite.policy}_test.yaml":
        problems.append(document.problem(("policy",), "name", f"file should be named {suite.policy}_test.yaml"))
    for i, case in enumerate(suite.cases):
        for key in ("orders", "record"):
            for j, name in enumerate(getattr(case, key)):
                if not _fixture_path(folders, name).is_file():
                    problems.append(document.problem(("cases", i, key, j), "fixture", f"no fixture '{name}'"))
    names = [c.name for c in suite.cases]
    for i, name in enumerate(names):
        if names.index(name) != i:
            problems.append(document.problem(("cases", i, "name"), "duplicate", f"case name '{name}' used twice"))
    return problems


def request_for(policies: Path, policy_id: str, case: Case, templates) -> tuple[dict, str]:
    """The hook request a case sends, and the reference of the evaluated order."""
    orders = [r for name in case.orders for r in load_fixture(policies, name)]
    record = [r for name in case.record for r in load_fixture(policies, name)]
    patient = next((r for r in record if r["resourceType"] == "Patient"), None)
    patient_id = patient["id"] if patient else "example"
    if case.answers:
        record.append(_questionnaire_response(policy_id, case, patient_id))
    evaluated = case.evaluate or f"{orders[0]['resourceType']}/{orders[0]['id']}"
    context = {"userId": "Practitioner/example", "patientId": patient_id,
               "draftOrders": {"resourceType": "Bundle", "type": "collection",
                               "entry": [{"resource": r} for r in orders]}}
    if case.hook == "order-select":
        context["selections"] = [evaluated]
    body = {"hook": case.hook, "hookInstance": str(uuid.uuid4()), "context": context,
            "prefetch": {t.key: _prefetch_value(t, record, case) for t in templates}}
    return body, evaluated


_MEDICATION_INCLUDES = ("MedicationRequest", "MedicationStatement")  # searches with _include=…:medication


def _prefetch_value(template, record: list[dict], case: Case):
    if template.resource_type in case.unavailable:
        return {"resourceType": "OperationOutcome",
                "issue": [{"severity": "error", "code": "exception", "diagnostics": "test: unavailable"}]}
    matching = [r for r in record if r["resourceType"] == template.resource_type
                or (template.resource_type in _MEDICATION_INCLUDES and r["resourceType"] == "Medication")]
    if template.key == "patient":
        return matching[0] if matching else None
    if not matching:
        return None
    return {"resourceType": "Bundle", "type": "searchset", "entry": [{"resource": r} for r in matching]}


def _questionnaire_response(policy_id: str, case: Case, patient_id: str) -> dict:
    return {"resourceType": "QuestionnaireResponse", "id": "qr-case", "status": "completed",
            "questionnaire": f"http://localhost/fhir/Questionnaire/{policy_id}",
            "subject": {"reference": f"Patient/{patient_id}"}, "authored": "2000-01-01",
            "item": [{"linkId": k, "answer": [{"valueBoolean": v}]} for k, v in case.answers.items()]}


def run_case(client, registry, policies: Path, suite: Suite, case: Case) -> list[str]:
    """Send the case's request through ``client``; return what did not match (empty = pass)."""
    body, evaluated = request_for(policies, suite.policy, case, registry.templates)
    service = next(s for s in registry.services.values() if s.hook == case.hook)
    response = client.post(f"/cds-services/{service.id}", json=body)
    if response.status_code != 200:
        return [f"HTTP {response.status_code}: {response.get_data(as_text=True)[:300]}"]
    failures = compare(response.get_json(), suite.policy, evaluated, case.expect)
    card = card_for(response.get_json(), suite.policy, evaluated)
    if card is not None:  # every card of every case also keeps the README §7 rules
        failures += card_rules.problems(card, registry.policies.by_id[suite.policy], case.hook)
    return failures


def card_for(response: dict, policy_id: str, order: str) -> dict | None:
    """The card of ``policy_id`` for ``order`` (the only one), if the response has it."""
    cards = [c for c in response["cards"]
             if c.get("extension", {}).get("cdshooks.evaluation", {}).get("policy", {}).get("id") == policy_id
             and c["extension"]["cdshooks.evaluation"]["order"] == order]
    return cards[0] if len(cards) == 1 else None


def compare(response: dict, policy_id: str, order: str, expect: Expect) -> list[str]:
    """Differences between a hook response and a case's expectations."""
    cards = [c for c in response["cards"]
             if c.get("extension", {}).get("cdshooks.evaluation", {}).get("policy", {}).get("id") == policy_id
             and c["extension"]["cdshooks.evaluation"]["order"] == order]
    if not expect.applies:
        return [f"expected no card, got: {cards[0]['summary']}"] if cards else []
    if len(cards) != 1:
        return [f"expected one card for {order}, got {len(cards)}"]
    card = cards[0]
    evaluation = card["extension"]["cdshooks.evaluation"]
    results = {c["id"]: c["result"] for c in evaluation["criteria"]}
    failures = []
    _check(failures, "decision", expect.decision, evaluation["decision"])
    if expect.outcome is not None:
        _check(failures, "outcome", expect.outcome, evaluation.get("outcome", "none"))
    for node_id, wanted in expect.criteria.items():
        _check(failures, node_id, wanted, results.get(node_id, "not evaluated"))
    if expect.documentation is not None:
        _check(failures, "documentation", expect.documentation, evaluation.get("documentation", []))
    _check(failures, "indicator", expect.indicator, card["indicator"])
    if expect.summary is not None and expect.summary not in card["summary"]:
        failures.append(f"summary {card['summary']!r} lacks {expect.summary!r}")
    failures += [f"detail lacks {text!r}" for text in expect.detail if text not in card.get("detail", "")]
    if expect.suggestion is not None:
        labels = [s["label"] for s in card.get("suggestions", [])]
        if not any(expect.suggestion in label for label in labels):
            failures.append(f"no suggestion like {expect.suggestion!r} (got {labels})")
    if expect.coverage is not None:
        _check(failures, "coverage", expect.coverage, coverage_values(response, order))
    return failures


def coverage_values(response: dict, order: str) -> dict | str:
    """The CRD values (without ids, dates, reason) of the coverage action for ``order``, or 'none'."""
    for action in response.get("systemActions", []):
        resource = action.get("resource", {})
        if f"{resource.get('resourceType')}/{resource.get('id')}" != order:
            continue
        for ext in resource.get("extension", []):
            if ext.get("url") == COVERAGE_INFORMATION:
                return {e["url"]: e["valueCode"] for e in ext["extension"] if "valueCode" in e}
    return "none"


def _check(failures: list, what: str, wanted, got) -> None:
    if wanted is not None and wanted != got:
        failures.append(f"{what}: expected {wanted!r}, got {got!r}")
