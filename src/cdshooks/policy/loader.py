"""Load ``policies/*.yaml`` once, against the loaded facts, into an immutable :class:`PolicySet`.

Checks beyond the schema: unique criterion ids, references to nodes and facts that exist,
applicability that reads only the draft orders, code tokens, response-table settings, and
deployment overrides (``CDSHOOKS_POLICY_SETTINGS``) that name real settings.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Mapping

from cdshooks.facts import loader as mapping_loader
from cdshooks.facts import site as site_module
from cdshooks.facts.calculators.opioids.tables import load_mme_tables
from cdshooks.facts.loader import FactSet
from cdshooks.fhir import valuesets as valueset_loader
from cdshooks.fhir.codes import CodeError
from cdshooks.fhir.codes import CodeSet
from cdshooks.fhir.valuesets import ValueSets
from cdshooks.files import datafile
from cdshooks.files.datafile import DataFileError
from cdshooks.files.datafile import Problem
from cdshooks.files.suggest import did_you_mean
from cdshooks.policy import assertions
from cdshooks.policy import definitions
from cdshooks.policy import questionnaire
from cdshooks.policy import tree as tree_module
from cdshooks.policy.compile import Program
from cdshooks.policy.compile import compile_policy
from cdshooks.policy.model import Expr
from cdshooks.policy.model import Node
from cdshooks.policy.model import Policy
from cdshooks.policy.tree import TreeIndex

SCHEMA_FILE = "schema.json"
TEST_SUFFIX = "_test.yaml"
_PLACEHOLDER = re.compile(r"\{([a-z_]+)(?::([^}]+))?\}")
_PLACEHOLDERS = frozenset({"order", "policy", "deciding", "open", "fact", "brief", "date", "met"})


@dataclass(frozen=True)
class CompiledPolicy:
    model: Policy
    nodes: Mapping[str, Node]
    settings: Mapping[str, object]
    codesets: Mapping[tuple, CodeSet]
    applies: tuple[tuple[object, CodeSet | None], ...]     # (Applicability, its code set if any)
    facts: frozenset[str]
    file: str
    order: Mapping[str, int]      # criterion id -> position in the tree (pre-order)
    negated: Mapping[str, bool]   # under an odd number of `none` groups: "met" is the bad news
    parents: Mapping[str, str]    # criterion id -> the group it sits in (the root has none)
    twins: Mapping[str, tuple[str, ...]]   # criterion id -> the other expansions of its named-list item
    paths: Mapping[str, tuple]     # criterion id -> where the file writes it (for problems)
    answered_by_facts: frozenset[str]   # leaves whose 'yes' their fact reads (calculator reads_answers)
    doc_leaves: tuple[Node, ...]  # the documentation-answerable leaves in tree order (questionnaire, forms), once
    tree: TreeIndex               # where each criterion sits (leaves, ancestors, what an all group asks first)
    program: Program              # the criteria tree compiled for evaluation (policy/compile)
    document: datafile.Document | None = None   # the parsed file, for problems found later (lint)

    def unfavourable(self, node_id: str, result: str) -> bool:
        """Whether a result counts against the order (unknown always does)."""
        if result == "unknown":
            return True
        return result == ("met" if self.negated[node_id] else "not-met")

    @property
    def id(self) -> str:
        return self.model.id

    def questionnaire(self, base_url: str) -> dict:
        return questionnaire.build(self, base_url)


@dataclass(frozen=True)
class PolicySet:
    by_id: Mapping[str, CompiledPolicy]
    facts: FactSet
    valuesets: ValueSets
    resources: Mapping[str, object]
    reads: Mapping[str, frozenset[str]]      # policy id -> record types its facts read

    @property
    def resource_types(self) -> frozenset[str]:
        return frozenset().union(*self.reads.values())

    def resource_types_for(self, policy: CompiledPolicy) -> frozenset[str]:
        return self.reads[policy.id]


def load_policy_set(policies: Path, mappings: Path, overrides: Mapping[str, Mapping] | None = None,
                    valuesets: Path | None = None, site: Path | None = None) -> PolicySet:
    """Load value sets, mappings then policies; raise :class:`DataFileError` listing every problem."""
    policy_set, problems = check(policies, mappings, overrides or {}, valuesets, site)
    if problems:
        raise DataFileError(problems)
    return policy_set


def check(policies: Path, mappings: Path, overrides: Mapping[str, Mapping],
          valuesets: Path | None = None, site: Path | None = None) -> tuple[PolicySet, list[Problem]]:
    """Load everything, collecting (not raising) problems; used by start-up and ``cdshooks check``.

    Value sets are read from ``valuesets`` (default: the ``valuesets`` folder beside ``mappings``);
    ``site`` names a site folder (see :mod:`cdshooks.facts.site`) whose files extend the shipped ones."""
    local = site_module.load(site)
    problems = list(local.problems) if local else []
    sets, found = valueset_loader.load(valuesets or mappings.parent / "valuesets", local)
    problems += found
    facts, found = mapping_loader.load(mappings, sets, local)
    problems += found
    overrides = site_module.settings(local, overrides)
    compiled: dict[str, CompiledPolicy] = {}
    # a site's files are named from the folder above the site (st-elsewhere/policies/x.yaml)
    files = [(p, folder.parent if i == 0 else local.folder.parent)
             for i, folder in enumerate(site_module.folders(policies, local, "policies")) if folder.is_dir()
             for p in sorted(folder.glob("*.yaml")) if not p.name.endswith(TEST_SUFFIX)]
    if not policies.is_dir():
        problems.append(Problem(str(policies), 1, "", "missing", "policies folder not found"))
    for path, root in files:
        policy, found = _load_one(path, root, facts, overrides, sets, local)
        problems += found
        if policy is not None:
            if policy.id in compiled:
                problems.append(Problem(policy.file, 1, "id", "duplicate", f"policy id '{policy.id}' used twice"))
            compiled[policy.id] = policy
    for policy_id in overrides:
        if policy_id not in compiled:
            where = local.line("settings", policy_id) if local and policy_id in local.file.settings \
                else ("CDSHOOKS_POLICY_SETTINGS", 1)
            problems.append(Problem(*where, policy_id, "unknown", f"no such policy{did_you_mean(policy_id, compiled)}"))
    problems += _check_site_applicability(local, compiled)
    resources = MappingProxyType({"mme": load_mme_tables()})
    reads = MappingProxyType({pid: facts.resource_types(p.facts) for pid, p in compiled.items()})
    return PolicySet(MappingProxyType(compiled), facts, sets, resources, reads), problems


def _check_site_applicability(site, compiled) -> list[Problem]:
    problems = []
    for policy_id, rules in (site.file.applicability.items() if site else ()):
        if policy_id not in compiled:
            problems.append(site.problem(("applicability", policy_id), "reference",
                                         f"no such policy{did_you_mean(policy_id, compiled)}"))
            continue
        names = [rule.name for rule in compiled[policy_id].model.applicability]
        problems += [site.problem(("applicability", policy_id, rule), "reference",
                                  f"policy '{policy_id}' has no applicability rule '{rule}'{did_you_mean(rule, names)}")
                     for rule in rules if rule not in names]
    return problems


def _load_one(path: Path, root: Path, facts: FactSet, overrides, sets: ValueSets,
              site=None) -> tuple[CompiledPolicy | None, list[Problem]]:
    document, problems = datafile.read(path, root)
    if document is None:
        return None, problems
    problems += datafile.check_schema_comment(path, document, SCHEMA_FILE)
    model, found = datafile.validate(document, Policy)
    if model is None:
        return None, problems + found
    if model.id != path.stem:
        problems.append(document.problem(("id",), "id", f"id '{model.id}' must match the file name '{path.stem}'"))
    problems += [document.problem(where, "reference", detail) for where, detail in definitions.list_problems(model)]
    model, twins, paths = definitions.expand(model)
    nodes, found = _index(model.criteria, document, paths)
    problems += found
    settings = dict(model.settings)
    for key, value in (overrides.get(model.id) or {}).items():
        if key not in settings:
            where = site.line("settings", model.id, key) if site and key in site.file.settings.get(model.id, {}) \
                else ("CDSHOOKS_POLICY_SETTINGS", 1)
            problems.append(Problem(*where, f"{model.id}.{key}", "unknown",
                                    f"policy '{model.id}' has no setting '{key}'{did_you_mean(key, model.settings)}"))
        elif type(value) is not type(settings[key]) and not (isinstance(settings[key], float) and type(value) is int):
            problems.append(Problem(*(site.line("settings", model.id, key) if site and key in site.file.settings.get(
                model.id, {}) else ("CDSHOOKS_POLICY_SETTINGS", 1)), f"{model.id}.{key}", "type",
                f"'{key}' is a {type(settings[key]).__name__} in the policy, got {value!r}"))
        settings[key] = value
    local_codes = site.file.applicability.get(model.id, {}) if site else {}
    codesets, applies, used, found = _compile_codes_and_facts(model, nodes, paths, facts, document, sets,
                                                                local_codes, site)
    problems += found + _unanswered_decisions(model, settings, document)
    tree = list(definitions.criteria(model.criteria))
    order = {node.id: i for i, node in enumerate(tree)}
    answered_by_facts = _answered_by_facts(model, facts)
    where = tree_module.index(tree)
    policy = CompiledPolicy(model, MappingProxyType(nodes), MappingProxyType(settings),
                            MappingProxyType(codesets), applies, frozenset(used), document.file,
                            MappingProxyType(order), MappingProxyType(_negations(model.criteria)),
                            where.parents, MappingProxyType(twins), MappingProxyType(paths), answered_by_facts,
                            tuple(questionnaire.documentation_leaves(model.criteria)), where,
                            compile_policy(model, codesets, twins, answered_by_facts), document)
    return policy, problems


_ROOT_DECISIONS = ("met", "not-met", "unknown")


def _unanswered_decisions(model: Policy, settings: Mapping, document) -> list[Problem]:
    """Every decision/outcome the policy can reach needs a response row (else the call is a 500).

    A row counts only if it matches whatever the other criteria results are: a row that also
    asks for results of criteria may not match, so it cannot be the answer of last resort.
    """
    root = model.criteria.id
    reachable = {(decision, "none") for decision in _ROOT_DECISIONS}
    for outcome in model.outcomes:
        condition = outcome.when.results.get(root)
        roots = _ROOT_DECISIONS if condition is None else condition if isinstance(condition, list) else [condition]
        reachable |= {(outcome.decision or decision, outcome.code) for decision in roots}
    problems = []
    for decision, outcome in sorted(reachable):
        if not any(_answers(row.when, root, decision, outcome, settings) for row in model.responses):
            problems.append(document.problem(("responses",), "unanswered",
                                             f"no response row answers decision '{decision}' with outcome "
                                             f"'{outcome}' under the settings {dict(settings) or '{}'}"))
    return problems


def _answers(when, root: str, decision: str, outcome: str, settings: Mapping) -> bool:
    root_condition = when.results.get(root)
    if root_condition is not None and decision not in (root_condition if isinstance(root_condition, list)
                                                       else [root_condition]):
        return False
    return (not when.decision or decision in when.decision) and (not when.outcome or outcome in when.outcome) \
        and all(settings.get(key) == value for key, value in when.settings.items()) \
        and set(when.results) <= {root}


def _index(root: Node, document, paths: Mapping[str, tuple]) -> tuple[dict[str, Node], list[Problem]]:
    nodes, problems = {}, []
    for node in definitions.criteria(root):
        if node.id in nodes:
            problems.append(document.problem(paths[node.id] + ("id",), "duplicate",
                                             f"criterion id '{node.id}' used twice"))
        nodes[node.id] = node
    for node in definitions.criteria(root):
        path = paths[node.id]
        if node.ref is not None and node.ref not in nodes:
            problems.append(document.problem(path + ("ref",), "reference", f"no criterion '{node.ref}'"))
        if node.type is not None and node.question is None:  # cards ask open criteria as questions
            problems.append(document.problem(path + ("question",), "missing",
                                             "a leaf needs a question a clinician can answer (yes = met)"))
    return nodes, problems


def _answered_by_facts(model: Policy, facts: FactSet) -> frozenset[str]:
    """Leaves a fact of theirs answers from documentation itself (f.1: one category of three)."""
    def read(node: Node) -> bool:
        tests = definitions.resolved(node.when, model.define) if node.when is not None else ()
        return any(node.id in getattr(facts.facts.get(t.fact), "answers_read", lambda _: ())(model.id) for t in tests)
    return frozenset(node.id for node in definitions.criteria(model.criteria) if read(node))


def _negations(node: Node, negated: bool = False) -> dict[str, bool]:
    out = {node.id: negated}
    for child in node.children():
        out.update(_negations(child, negated != (node.op == "none")))
    return out


def _compile_codes_and_facts(model: Policy, nodes, paths, facts: FactSet, document, sets: ValueSets,
                             local_codes=None, site=None):
    problems, codesets, used, applies = [], {}, set(), []
    for i, rule in enumerate(model.applicability):
        try:
            applies.append((rule, sets.codes(rule.codes) if rule.codes else None))
        except CodeError as exc:
            problems.append(document.problem(("applicability", i, "codes"), "code", str(exc)))
        if (local_codes or {}).get(rule.name) and applies and applies[-1][0] is rule:
            try:  # the site's local codes for this rule (site.yaml applicability)
                if applies[-1][1] is None:
                    raise CodeError(f"rule '{rule.name}' has no codes (its 'requires' identifies the order)")
                applies[-1] = (rule, CodeSet.union([applies[-1][1], sets.codes(local_codes[rule.name])]))
            except CodeError as exc:
                problems.append(site.problem(("applicability", model.id, rule.name), "code", str(exc)))
        for section in rule.sections or ():
            if section not in [c.id for c in model.criteria.children()]:
                problems.append(document.problem(("applicability", i, "sections"), "reference",
                                                 f"'{section}' is not a child of the root criterion"))
    exprs = list(definitions.tests(model, paths))
    problems += [document.problem(where, "reference", detail)
                 for where, detail in definitions.define_problems(model.define, iter(exprs))]
    for expr, path in exprs:
        problems += _check_expr(expr, path, nodes, facts, document)
        if expr.setting is not None and expr.setting not in model.settings:
            problems.append(document.problem(path + ("setting",), "reference", f"no setting '{expr.setting}'"))
        if expr.fact is not None and expr.fact in facts.facts:
            used.add(expr.fact)
        if path[0] == "applicability" and path[2] != "confirm":
            problems += _draft_only(model, expr, path, facts, document)
        if expr.codes_in is not None:
            try:
                codesets[tuple(expr.codes_in)] = sets.codes(expr.codes_in)
            except CodeError as exc:
                problems.append(document.problem(path + ("codes_in",), "code", str(exc)))
    problems += _check_dates_and_responses(model, nodes, facts, document, used)
    return codesets, tuple(applies), used, problems


def _check_expr(expr: Expr, path, nodes, facts: FactSet, document) -> list[Problem]:
    problems = []
    if expr.fact is not None and expr.fact not in facts.facts:
        problems.append(document.problem(path + ("fact",), "reference", f"unknown fact '{expr.fact}'"))
    for key in ("node", "doc"):
        target = getattr(expr, key)
        if target is not None and target not in nodes:
            problems.append(document.problem(path + (key,), "reference", f"no criterion '{target}'"))
    return problems


def _draft_only(model: Policy, expr: Expr, path: tuple, facts: FactSet, document) -> list[Problem]:
    """An applicability test (and the definitions it uses) may read the draft orders only."""
    if expr.fact is not None:
        names, where = [expr.fact], path + ("fact",)
    elif expr.def_ is not None and expr.def_ in model.define:
        names = [sub.fact for sub in definitions.resolved(model.define[expr.def_], model.define) if sub.fact]
        where = path + ("def",)
    else:
        return []
    return [document.problem(where, "applicability",
                             f"fact '{name}' reads the record; applicability may only read the draft orders")
            for name in dict.fromkeys(names) if name in facts.facts and not _draft_safe(facts, name)]


def _draft_safe(facts: FactSet, name: str) -> bool:
    fact = facts.facts[name]
    if facts.drafts_only(name):
        return True
    return not facts.resource_types([name]) and getattr(fact, "order_scoped", False)


def _check_dates_and_responses(model: Policy, nodes, facts: FactSet, document, used: set) -> list[Problem]:
    problems = []
    for key, rule in model.dates.items():
        if rule.fact not in facts.facts:
            problems.append(document.problem(("dates", key, "fact"), "reference", f"unknown fact '{rule.fact}'"))
        used.add(rule.fact)
    for i, outcome in enumerate(model.outcomes):
        targets = list(outcome.when.results)
        if outcome.when.counterfactual:
            targets += [outcome.when.counterfactual.node, *outcome.when.counterfactual.set]
        problems += [document.problem(("outcomes", i, "when"), "reference", f"no criterion '{t}'")
                     for t in targets if t not in nodes]
    for i, row in enumerate(model.responses):
        problems += [document.problem(("responses", i, "when", "settings"), "reference", f"no setting '{s}'")
                     for s in row.when.settings if s not in model.settings]
        problems += [document.problem(("responses", i, "when", "results"), "reference", f"no criterion '{n}'")
                     for n in row.when.results if n not in nodes]
        for name, arg in _PLACEHOLDER.findall(row.summary):
            if name not in _PLACEHOLDERS or (name == "fact" and arg not in facts.facts) or \
                    (name in ("brief", "met") and arg not in nodes) or (name == "date" and arg not in "TER"):
                problems.append(document.problem(("responses", i, "summary"), "template",
                                                 f"unknown placeholder '{{{name}{':' + arg if arg else ''}}}'"))
            if name == "fact" and arg in facts.facts:
                used.add(arg)
        if row.reschedule:
            if row.reschedule.date_fact not in facts.facts:
                problems.append(document.problem(("responses", i, "reschedule"), "reference",
                                                 f"unknown fact '{row.reschedule.date_fact}'"))
            used.add(row.reschedule.date_fact)
        if row.coverage:
            values = row.coverage.model_dump(by_alias=True, exclude_none=True)
            values["reason"] = "(set at run time)"
            if values.get("doc-needed"):
                values["questionnaire"] = "(set at run time)"
            problems += [document.problem(("responses", i, "coverage"), "coverage", detail)
                         for detail in assertions.invariant_problems(values)]
        if row.coverage and model.jurisdiction != "US":
            problems.append(document.problem(("responses", i, "coverage"), "jurisdiction",
                                             "only US policies carry CRD coverage information"))
    return problems
