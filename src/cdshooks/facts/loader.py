"""Load ``mappings/*.yaml`` once: validate, merge overrides, compile codes and JSONPath.

Files are read in name order; a fact defined again in a later file is an error unless that file
lists the earlier one under ``overrides`` (so a local-EHR file replaces facts of the default file
on purpose, never by accident).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Mapping

from jsonpath_ng.ext import parse as jsonpath_parse

from cdshooks.facts import site_changes
from cdshooks.facts.calculators import Calculator
from cdshooks.facts.calculators import registry as calculator_registry
from cdshooks.facts.model import FactMapping
from cdshooks.facts.model import MappingFile
from cdshooks.facts.model import MappingShell
from cdshooks.facts.model import duration_days
from cdshooks.facts.select import DEFAULT_STATUS
from cdshooks.facts.select import SelectFact
from cdshooks.fhir import units
from cdshooks.fhir.codes import CodeError
from cdshooks.fhir.codes import CodeSet
from cdshooks.fhir.valuesets import EMPTY
from cdshooks.fhir.valuesets import ValueSets
from cdshooks.files import datafile
from cdshooks.files.datafile import Problem

SCHEMA_FILE = "schema.json"


@dataclass(frozen=True)
class CalculatorFact:
    name: str
    calculator: Calculator
    inputs: Mapping[str, str]
    params: Mapping
    order_scoped: bool
    setting_refs: tuple

    @property
    def drafts_only(self) -> bool:
        return self.calculator.drafts_only

    def compute(self, ctx, at):
        return self.calculator.compute(ctx, at, self.inputs, self.params)

    def answers_read(self, policy_id: str) -> frozenset[str]:
        """Criteria of ``policy_id`` whose documentation answers this fact reads itself."""
        key = self.calculator.reads_answers
        if key is None or self.params.get("questionnaire") != policy_id:
            return frozenset()
        return frozenset(self.params[key].values())


@dataclass(frozen=True)
class FactSet:
    """Every compiled fact by name, with the file and line it came from."""

    facts: Mapping[str, SelectFact | CalculatorFact]
    origins: Mapping[str, tuple[str, ...]]    # fact -> "file:line" of its definition, then of site changes

    def reachable(self, names) -> frozenset[str]:
        """The named facts and every fact they read (calculator inputs, window starts)."""
        seen, stack = set(), list(names)
        while stack:
            name = stack.pop()
            if name in seen or name not in self.facts:
                continue
            seen.add(name)
            fact = self.facts[name]
            stack.extend(([fact.since] if fact.since else []) if isinstance(fact, SelectFact) else fact.inputs.values())
        return frozenset(seen)

    def resource_types(self, names) -> frozenset[str]:
        """Record types the named facts read, following calculator inputs."""
        types = set()
        for name in self.reachable(names):
            fact = self.facts[name]
            types |= set(fact.sources) if isinstance(fact, SelectFact) else fact.calculator.resource_types
        return frozenset(types)

    @property
    def optional_types(self) -> frozenset[str]:
        """Types some calculator reads when present, never asked for as required prefetch."""
        return frozenset().union(*(f.calculator.optional_types for f in self.facts.values()
                                   if isinstance(f, CalculatorFact)))

    def drafts_only(self, name: str) -> bool:
        fact = self.facts[name]
        return fact.drafts == "only" if isinstance(fact, SelectFact) else fact.drafts_only


def load(folder: Path, valuesets: ValueSets = EMPTY, site=None) -> tuple[FactSet, list[Problem]]:
    """Read every mapping file of ``folder``, then of the site's ``mappings/`` (``site.yaml``
    changes applied); return the facts and every problem found.

    Code lists name value sets of ``valuesets``; an unknown name is a problem at its line."""
    problems: list[Problem] = []
    raw: dict[str, tuple[FactMapping, datafile.Document, str]] = {}
    if not folder.is_dir():
        problems.append(Problem(str(folder), 1, "", "missing", "mappings folder not found"))
    for path, root in _files(folder, site):
        document, found = datafile.read(path, root)
        problems += found
        if document is None:
            continue
        problems += datafile.check_schema_comment(path, document, SCHEMA_FILE)
        parsed, found = _validate(document)
        problems += found
        if parsed is not None:
            problems += _merge(raw, parsed, document, path.name)
    compiled, origins = {}, {}
    calculators = calculator_registry()
    changes, found = site_changes.fact_changes(site, raw)
    problems += found
    for name, (mapping, document, _file) in raw.items():
        mapping, extra, found = site_changes.apply(site, name, mapping, changes.get(name))
        problems += found
        site_params = (site, frozenset(changes[name].params)) if name in changes else None
        fact, found = _compile(name, mapping, document, calculators, valuesets, site_params)
        problems += found
        if fact is not None and extra:
            fact, found = site_changes.with_sources(fact, mapping, extra, site, name,
                                                     lambda m: _compile_select(name, m, valuesets))
            problems += found
        if fact is not None:
            compiled[name] = fact
            origins[name] = (f"{document.file}:{document.line_of(('facts', name))}",) + \
                (("%s:%d" % site.line("facts", name),) if name in changes else ())
    problems += _check_references(compiled, raw)
    compiled = _with_order_scope(compiled)
    return FactSet(MappingProxyType(compiled), MappingProxyType(origins)), problems


def _files(folder: Path, site) -> list[tuple[Path, Path]]:
    """(file, the folder its name is relative to): shipped files, then the site's (st-elsewhere/mappings/x.yaml)."""
    extra = site.sub("mappings") if site is not None else None
    found = [(p, folder.parent) for p in sorted(folder.glob("*.yaml"))] if folder.is_dir() else []
    return found + ([(p, site.folder.parent) for p in sorted(extra.glob("*.yaml"))]
                    if extra is not None and extra.is_dir() else [])


def _validate(document) -> tuple[MappingFile | None, list[Problem]]:
    """Validate the file, then each fact on its own: a broken fact is reported and left out."""
    shell, problems = datafile.validate(document, MappingShell)
    if shell is None:
        return None, problems
    facts = {}
    for name in shell.facts:
        fact, found = datafile.validate(document, FactMapping, at=("facts", name))
        problems += found
        if fact is not None:
            facts[name] = fact
    try:
        return MappingFile(description=shell.description, overrides=shell.overrides, facts=facts), problems
    except ValueError as exc:
        return None, problems + [document.problem(("facts",), "schema", str(exc))]


def _merge(raw, parsed: MappingFile, document, file_name: str) -> list[Problem]:
    problems = []
    for name, mapping in parsed.facts.items():
        if name in raw and raw[name][2] not in parsed.overrides:
            problems.append(document.problem(("facts", name), "duplicate",
                                             f"fact already defined in {raw[name][1].file}; "
                                             f"list that file under 'overrides' to replace it"))
            continue
        raw[name] = (mapping, document, file_name)
    return problems


class _JsonPathError(ValueError):
    pass


class _CodeProblem(CodeError):
    """A value-set reference that cannot be resolved, with the path of the key that names it."""

    def __init__(self, path: tuple, detail: str):
        super().__init__(detail)
        self.path = path


def _named(valuesets: ValueSets, names, path: tuple) -> CodeSet:
    try:
        return valuesets.codes(names)
    except CodeError as exc:
        raise _CodeProblem(path, str(exc)) from None


_ROW_CODE_FIELDS = ("codes", "brand_codes")  # the fields of a table row that name value sets


def resolve_params(params: dict, keys, valuesets: ValueSets) -> dict:
    """Replace the params that name value sets by their code sets."""
    out = dict(params)
    for key in keys:
        if key not in params:
            continue
        value = params[key]
        if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):  # table rows
            out[key] = [{**row, **{field: _named(valuesets, row[field], ("params", key, i, field))
                                   if row.get(field) else CodeSet.of_entries(()) for field in _ROW_CODE_FIELDS}}
                        for i, row in enumerate(value)]
        elif isinstance(value, dict):
            out[key] = tuple((_named(valuesets, k, ("params", key, k)), v) for k, v in value.items())
        else:
            out[key] = _named(valuesets, value, ("params", key))
    return out


def _compile(name: str, m: FactMapping, document, calculators, valuesets: ValueSets, site_params=None):
    path = ("facts", name)
    try:
        if m.calculator is not None:
            return _compile_calculator(name, m, document, calculators, valuesets, site_params)
        return _compile_select(name, m, valuesets), []
    except _CodeProblem as exc:
        return None, [document.problem(path + exc.path, "code", str(exc))]
    except (CodeError, re.error) as exc:
        return None, [document.problem(path + ("codes",), "code", str(exc))]
    except _JsonPathError as exc:
        return None, [document.problem(path + ("value",), "jsonpath", f"invalid JSONPath: {exc}")]


def _jsonpath(text: str):
    try:
        return jsonpath_parse(text)
    except Exception as exc:  # JsonPathLexerError, JsonPathParserError, and bare Exception("Parse error …")
        raise _JsonPathError(str(exc)) from None


def _compile_select(name: str, m: FactMapping, valuesets: ValueSets) -> SelectFact:
    if m.unit and not units.known(m.unit):
        raise CodeError(f"unknown unit '{m.unit}'")
    statuses = frozenset(m.status) if m.status is not None else DEFAULT_STATUS.get(m.source)
    excluded = _named(valuesets, m.exclude_codes, ("exclude_codes",)).include if m.exclude_codes else ()
    return SelectFact(
        name=name, source=m.source,
        codes=CodeSet.of_entries(_named(valuesets, m.codes, ("codes",)).include, excluded,
                                 re.compile(m.exclude_pattern) if m.exclude_pattern else None),
        element=m.element or SelectFact.main_element(m.source),
        statuses=statuses,
        active_only=m.active if m.active is not None else m.source == "Condition",
        drafts=m.drafts,
        value=_jsonpath(m.value) if m.value else None,
        unit=m.unit,
        within_days=duration_days(m.within) if m.within else None,
        ahead_days=duration_days(m.ahead) if m.ahead else 0,
        since=m.since, pick=m.pick,
    )


def _compile_calculator(name, m: FactMapping, document, calculators, valuesets: ValueSets,
                        site_params=None):
    path = ("facts", name)
    calculator = calculators.get(m.calculator)
    if calculator is None:
        known = ", ".join(sorted(calculators))
        return None, [document.problem(path + ("calculator",), "calculator",
                                       f"unknown calculator '{m.calculator}' (known: {known})")]
    missing = calculator.inputs - set(m.inputs)
    extra = set(m.inputs) - calculator.inputs
    if missing or extra:
        detail = "; ".join(filter(None, [missing and f"missing inputs {sorted(missing)}",
                                         extra and f"unexpected inputs {sorted(extra)}"]))
        return None, [document.problem(path + ("inputs",), "calculator", detail)]
    raw, found = _typed_params(m, calculator, document, path + ("params",), site_params)
    if raw is None:
        return None, found
    resolved = resolve_params(raw, calculator.code_params, valuesets)
    try:
        params = calculator.prepare(resolved) if calculator.prepare else resolved
    except (KeyError, TypeError, ValueError, CodeError, re.error) as exc:
        return None, [document.problem(path + ("params",), "calculator", f"bad params: {exc}")]
    refs = tuple((v["setting"], tuple(v["default"]) if isinstance(v["default"], list) else v["default"])
                 for v in m.params.values() if isinstance(v, dict) and "setting" in v)
    return CalculatorFact(name, calculator, MappingProxyType(dict(m.inputs)), params,
                          calculator.order_scoped, refs), []


def _typed_params(m: FactMapping, calculator: Calculator, document, path: tuple, site_params=None):
    """The params as the calculator's model reads them (absent and null keys left out), or the problems.

    ``site_params``: (site, the keys its ``site.yaml`` sets); a problem with one of those keys is
    reported at its line of ``site.yaml``."""
    if calculator.params is None:
        return dict(m.params), []
    typed, problems = datafile.validate_value(document, calculator.params, dict(m.params), path)
    if typed is None and site_params is not None:
        site, keys = site_params
        _, at_site = datafile.validate_value(site.document, calculator.params, dict(m.params), path)
        problems = [p for p in problems if _param_key(p.path) not in keys] + \
            [p for p in at_site if _param_key(p.path) in keys]
    if typed is None:
        return None, problems
    return typed.model_dump(exclude_unset=True, exclude_none=True), []


def _param_key(breadcrumb: str) -> str:
    """The param a breadcrumb ``facts[x.y].params.KEY…`` names ('' for the params as a whole)."""
    rest = breadcrumb.partition("].params.")[2]
    return re.split(r"[.\[]", rest, maxsplit=1)[0]


def _check_references(compiled, raw) -> list[Problem]:
    problems = []
    for name, (mapping, document, _file) in raw.items():
        refs = list(mapping.inputs.items()) + ([("since", mapping.since)] if mapping.since else [])
        for role, target in refs:
            if target not in raw:
                key = "since" if role == "since" else "inputs"
                problems.append(document.problem(("facts", name, key), "reference", f"unknown fact '{target}'"))
    return problems


def _with_order_scope(compiled: dict) -> dict:
    """A fact that reads an order-scoped fact is order-scoped itself."""
    changed = True
    while changed:
        changed = False
        for name, fact in compiled.items():
            if isinstance(fact, CalculatorFact) and not fact.order_scoped:
                if any(compiled.get(t) is not None and compiled[t].order_scoped for t in fact.inputs.values()):
                    compiled[name] = CalculatorFact(fact.name, fact.calculator, fact.inputs, fact.params,
                                                    True, fact.setting_refs)
                    changed = True
    return compiled
