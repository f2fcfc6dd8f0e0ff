"""Every case of every ``policies/<id>_test.yaml``, run through the whole service."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cdshooks.policy import cases
from conftest import CheckingClient
from conftest import empties

ROOT = Path(__file__).resolve().parents[1]
POLICIES, MAPPINGS = ROOT / "policies", ROOT / "mappings"
SUITES, PROBLEMS = cases.load_suites(POLICIES)


def test_suites_load_without_problems():
    assert PROBLEMS == []
    assert {suite.policy for _, suite in SUITES} >= {"intrathecal-pain-pump", "prenatal-cfdna-screening"}


@pytest.fixture(scope="module")
def apps(tmp_path_factory):
    """One app per (date, policy settings): loading every policy per case would dominate the run."""
    from cdshooks import create_app

    made = {}

    def app_for(suite, case):
        key = ((case.today or suite.today).isoformat(), suite.policy, json.dumps(case.settings, sort_keys=True))
        if key not in made:
            app = create_app({
                "TESTING": True, "TODAY": key[0], "POLICIES": str(POLICIES), "MAPPINGS": str(MAPPINGS),
                "DATABASE_URL": f"sqlite:///{tmp_path_factory.mktemp('cases') / 'cases.sqlite3'}",
                "PUBLIC_BASE_URL": "http://localhost",
                "POLICY_SETTINGS": {suite.policy: dict(case.settings)} if case.settings else {},
            })
            app.test_client_class = CheckingClient  # also enforces the no-null/no-empty rule
            made[key] = app
        return made[key]

    return app_for


@pytest.mark.parametrize("suite, case", [
    pytest.param(suite, case, id=f"{file_name}::{case.name}") for file_name, suite in SUITES for case in suite.cases
])
def test_policy_case(suite, case, apps):
    from cdshooks import registry

    app = apps(suite, case)
    with app.app_context():
        loaded = registry.get()
    assert cases.run_case(app.test_client(), loaded, POLICIES, suite, case) == []


# Results no record or answer can give a leaf: a documentation leaf with a not-met default is never
# unknown; an order that matched its policy's codes always has the code that COD-1 and the
# code-based screening targets (NMN-T2–T4, which fall back to their not-met default) read; the
# SI order's priority and reasons are on the order itself, so BEN-2 and BEN-3 are always decided;
# a referral's requester either resolves (EXC-2 decided) or does not (the not-met default); every
# order the CSF policy accepts has a known product family, so its product gates are decided.
IMPOSSIBLE = {("prenatal-cfdna-screening", node, "unknown") for node in ("COD-1", "NMN-T2", "NMN-T3", "NMN-T4")} | {
    ("si-joint-fusion-open", node, "unknown") for node in ("BEN-2", "BEN-3")} | {
    ("spinal-surgery-referral", "EXC-2", "unknown")} | {
    ("colony-stimulating-factors", f"A.d.{family}.prod", "unknown") for family in ("i", "ii", "iii", "iv")}


def possible_results(policy_id, node) -> set[str]:
    results = {"met", "not-met", "unknown"}
    if node.type == "documentation" and node.default != "unknown":
        results.discard("unknown")
    return {r for r in results if (policy_id, node.id, r) not in IMPOSSIBLE}


def test_every_criterion_is_seen_met_not_met_and_unknown():
    """The suites check each evaluable leaf in every result a record or an answer can give it."""
    from cdshooks.policy.loader import load_policy_set

    policies = load_policy_set(POLICIES, MAPPINGS)
    for _, suite in SUITES:
        seen: dict[str, set] = {}
        for case in suite.cases:
            for node_id, result in case.expect.criteria.items():
                seen.setdefault(node_id, set()).add(result)
        policy = policies.by_id[suite.policy]
        missing = {n.id: sorted(possible_results(policy.id, n) - seen.get(n.id, set()))
                   for n in policy.nodes.values() if n.type in ("structured", "structured+doc", "documentation")}
        missing = {k: v for k, v in missing.items() if v}
        assert not missing, f"{suite.policy}: results never checked: {missing}"


def test_case_fixtures_are_valid_fhir_r4():
    from fhir.resources.R4B import get_fhir_model_class

    for path in sorted((POLICIES / "testdata").glob("*.json")):
        value = json.loads(path.read_text(encoding="utf-8"))
        for resource in value if isinstance(value, list) else [value]:
            get_fhir_model_class(resource["resourceType"]).model_validate(resource)
            assert not list(empties(resource)), path.name
