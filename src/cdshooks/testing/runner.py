"""Run policy test suites (``cdshooks test``): the shipped ones and a site's, filtered, with the
every-leaf rule; a broken file fails on its own and never hides the others."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from cdshooks.files.datafile import DataFileError
from cdshooks.testing import cases
from cdshooks.testing.cases import CaseRun

EVALUABLE = ("structured", "structured+doc", "documentation")


@dataclass(frozen=True)
class Selection:
    policy: str | None = None      # only suites of this policy
    keyword: str | None = None     # only cases whose name (or file) contains this, case-insensitive

    def wants(self, file_name: str, suite, case=None) -> bool:
        if self.policy and suite.policy != self.policy:
            return False
        if self.keyword and case is not None:
            return self.keyword.lower() in f"{file_name}::{case.name}".lower()
        return True


def run(policies: Path, mappings: Path, site: Path | None = None, selection: Selection = Selection(),
        valuesets: Path | None = None) -> list[CaseRun]:
    """Every selected case, then the every-leaf rule per policy (only when no ``-k`` narrows the cases)."""
    from cdshooks import create_app
    from cdshooks import registry as registry_module

    apps, runs, loaded = {}, [], []
    for path, root, shipped in cases.suite_files(policies, site):
        suite, problems = cases.load_suite(path, root, shipped, policies)
        name = path.name if shipped else str(path.relative_to(root))
        if problems or suite is None:
            if suite is None or selection.wants(name, suite):
                runs.append(CaseRun(name, "load", tuple(str(p) for p in sorted(problems))))
            continue
        if not selection.wants(name, suite):
            continue
        loaded.append((name, suite))
        folders = cases.fixture_folders(path, policies)
        for case in suite.cases:
            if not selection.wants(name, suite, case):
                continue
            today = case.today or suite.today
            key = (today, suite.policy, json.dumps(case.settings, sort_keys=True))
            if key not in apps:
                try:
                    apps[key] = create_app(_config(policies, mappings, site, valuesets, today, suite, case))
                except DataFileError as exc:
                    return runs + [CaseRun("(data files)", "load", tuple(str(p) for p in exc.problems))]
            app = apps[key]
            with app.app_context():
                registry = registry_module.get()
            if suite.policy not in registry.policies.by_id:
                runs.append(CaseRun(name, case.name, (f"no policy '{suite.policy}' is loaded",)))
                continue
            failures = cases.run_case(app.test_client(), registry, folders, suite, case)
            runs.append(CaseRun(name, case.name, tuple(failures)))
    if apps and not selection.keyword:
        with next(iter(apps.values())).app_context():
            policy_set = registry_module.get().policies
        runs += leaf_coverage(loaded, policy_set)
    return runs


def _config(policies, mappings, site, valuesets, today, suite, case) -> dict:
    config = {"TESTING": True, "TODAY": today.isoformat(), "DATABASE_URL": "sqlite://",
              "POLICIES": str(policies), "MAPPINGS": str(mappings), "PUBLIC_BASE_URL": "http://localhost",
              "POLICY_SETTINGS": {suite.policy: dict(case.settings)} if case.settings else {}}
    if site is not None:
        config["SITE"] = str(site)
    if valuesets is not None:
        config["VALUESETS"] = str(valuesets)
    return config


def possible_results(node, unreachable: dict) -> set[str]:
    """The results a record or an answer can give a leaf: a documentation leaf whose default is
    not unknown is never unknown; a suite lists the others no data can produce (``unreachable``)."""
    results = {"met", "not-met", "unknown"}
    if node.type == "documentation" and node.default != "unknown":
        results.discard("unknown")
    return results - set(unreachable.get(node.id, ()))


def leaf_coverage(suites, policy_set) -> list[CaseRun]:
    """Per policy, over all its suites (shipped and the site's): every evaluable leaf seen in every
    result it can take.  One outcome per policy, failing with the results never checked."""
    seen: dict[str, dict[str, set]] = {}
    unreachable: dict[str, dict] = {}
    files: dict[str, list[str]] = {}
    for name, suite in suites:
        files.setdefault(suite.policy, []).append(name)
        unreachable.setdefault(suite.policy, {}).update(suite.unreachable)
        for case in suite.cases:
            for node_id, result in case.expect.criteria.items():
                seen.setdefault(suite.policy, {}).setdefault(node_id, set()).add(result)
    runs = []
    for policy_id, names in files.items():
        policy = policy_set.by_id.get(policy_id)
        if policy is None:
            continue
        missing = {n.id: sorted(possible_results(n, unreachable[policy_id]) - seen.get(policy_id, {}).get(n.id, set()))
                   for n in policy.nodes.values() if n.type in EVALUABLE}
        failures = tuple(f"{node_id}: never checked {', '.join(results)}"
                         for node_id, results in missing.items() if results)
        runs.append(CaseRun(" + ".join(names), f"every leaf of {policy_id} met / not met / unknown", failures))
    return runs
