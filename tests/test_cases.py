"""Every case of every ``policies/<id>_test.yaml``, run through the whole service."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cdshooks.testing import cases
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


def test_every_criterion_is_seen_met_not_met_and_unknown():
    """The suites check each evaluable leaf in every result a record or an answer can give it
    (the rule ``cdshooks test`` runs; the suites list what no data can produce under ``unreachable``)."""
    from cdshooks.policy.loader import load_policy_set
    from cdshooks.testing import runner

    outcomes = runner.leaf_coverage(SUITES, load_policy_set(POLICIES, MAPPINGS))
    assert len(outcomes) == len({suite.policy for _, suite in SUITES})
    assert [o for o in outcomes if not o.passed] == []


def test_case_fixtures_are_valid_fhir_r4():
    from fhir.resources.R4B import get_fhir_model_class

    for path in sorted((POLICIES / "testdata").glob("*.json")):
        value = json.loads(path.read_text(encoding="utf-8"))
        for resource in value if isinstance(value, list) else [value]:
            get_fhir_model_class(resource["resourceType"]).model_validate(resource)
            assert not list(empties(resource)), path.name
