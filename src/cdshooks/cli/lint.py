"""``cdshooks check`` beyond loading: the mistakes that load fine and then never match.

* a select fact's ``element`` or ``value`` path that the FHIR R4 model of its source type does not
  have (``$.valueQuantitiy``): checked against fhir.resources, element names cached per type;
* a fact test whose operator cannot fit the fact's value (``ge: 1`` on a true/false fact, ``is:
  true`` on a count, ``present`` on a number);
* ``unit`` on a fact a calculator reads as Quantities itself (the gestational-age ``unit: wk``);
* gestational-age codes outside LOINC whose readings without a unit would be read as nothing;
* facts no policy reads, fixtures no case names, settings nothing reads (warnings).

Warnings have a kind starting ``unused``; they are listed but do not fail the check.
"""

from __future__ import annotations

import functools
import typing

from jsonpath_ng import jsonpath as jp

from cdshooks.facts.loader import CalculatorFact
from cdshooks.facts.select import SelectFact
from cdshooks.fhir.read import canonical_system
from cdshooks.files.datafile import Problem
from cdshooks.files.datafile import format_path
from cdshooks.files.suggest import did_you_mean

WARNING_KINDS = ("unused-fact", "unused-fixture", "unused-setting")
_LOINC = canonical_system("http://loinc.org")
_BOOLEAN_PICKS, _NUMBER_PICKS, _DATE_PICKS = {"exists"}, {"count", "distinct"}, {"latest_date"}
_NUMERIC_OPS = ("ge", "gt", "le", "lt")


def problems(loaded, suites, policies, site=None, complete: bool = True) -> list[Problem]:
    """Every never-match; the unused-thing warnings only when everything loaded (``complete``)."""
    facts = loaded.facts
    out = []
    for name, fact in facts.facts.items():
        where = _origin(facts, name)
        if isinstance(fact, SelectFact):
            for part in (fact, *fact.extra):
                out += _paths(part, name, where)
        else:
            out += _quantity_inputs(facts, name, fact, where)
    for policy in loaded.by_id.values():
        out += _operators(policy, facts)
    if complete:
        out += _unused_facts(loaded) + _unused_settings(loaded) + _unused_fixtures(suites, policies, site)
    return out


def is_warning(problem: Problem) -> bool:
    return problem.kind in WARNING_KINDS


def _origin(facts, name) -> tuple[str, int]:
    file, _, line = facts.origins[name][0].rpartition(":")
    return file, int(line)


# --- FHIR element paths ---------------------------------------------------------------------------

@functools.lru_cache(maxsize=None)
def elements(type_name: str) -> dict[str, str] | None:
    """Element name -> FHIR type name of a resource or datatype (None: not a model fhir.resources has)."""
    from fhir.resources.R4B import get_fhir_model_class

    try:
        model = get_fhir_model_class(type_name)
    except (KeyError, ValueError, AttributeError, ImportError):
        return None
    out = {}
    for key, field in model.model_fields.items():
        extra = field.json_schema_extra or {}
        if isinstance(extra, dict) and extra.get("element_property"):
            out[field.alias or key] = _type_name(field.annotation)
    return out


def _type_name(annotation) -> str:
    for arg in typing.get_args(annotation) or (annotation,):
        name = getattr(arg, "__name__", "") or ""
        if name.endswith("Type") and name != "NoneType":
            return name[:-4]
        if typing.get_args(arg):
            return _type_name(arg)
    return ""


def _fields(expr) -> list[str] | None:
    """The field names a JSONPath walks from the root (``$.a.b[0].c`` -> a, b, c); None past a filter."""
    if isinstance(expr, jp.Root):
        return []
    if isinstance(expr, jp.Child):
        left, right = _fields(expr.left), _fields(expr.right)
        return None if left is None or right is None else left + right
    if isinstance(expr, jp.Fields):
        return list(expr.fields) if len(expr.fields) == 1 and expr.fields[0] != "*" else None
    if isinstance(expr, (jp.Index, jp.Slice)):
        return []
    return None


def _walk(type_name: str, names: list[str]) -> str | None:
    """The first name the model does not know, with a hint; None when the path is valid."""
    for name in names:
        known = elements(type_name)
        if known is None:  # a primitive or a type fhir.resources has no model for: stop checking
            return None
        if name not in known:
            return f"'{name}' is not an element of {type_name}{did_you_mean(name, known)}"
        type_name = known[name]
    return None


def _paths(fact: SelectFact, name: str, where) -> list[Problem]:
    out = []
    if elements(fact.source) is not None and fact.element not in elements(fact.source):
        out.append(Problem(*where, format_path(("facts", name, "element")), "never-matches",
                           f"{fact.source} has no element '{fact.element}'"
                           f"{did_you_mean(fact.element, elements(fact.source))}"))
    names = _fields(fact.value) if fact.value is not None else None
    if names:
        error = _walk(fact.source, names)
        # a value on an Observation component is read as the Observation's own (D9)
        if error and fact.source == "Observation" and _walk("ObservationComponent", names) is None:
            error = None
        if error:
            out.append(Problem(*where, format_path(("facts", name, "value")), "never-matches",
                               f"{error}: this path never finds a value"))
    return out


# --- units -----------------------------------------------------------------------------------------

def _quantity_inputs(facts, name: str, fact: CalculatorFact, where) -> list[Problem]:
    out = []
    for role in fact.calculator.quantity_inputs:
        target = facts.facts.get(fact.inputs.get(role))
        if not isinstance(target, SelectFact):
            continue
        if target.unit:
            where_unit = format_path(("facts", target.name, "unit"))
            out.append(Problem(*_origin(facts, target.name), where_unit, "never-matches",
                               f"'{fact.calculator.name}' ({name}) reads the Quantity of each reading itself; "
                               f"unit: {target.unit} turns it into a bare number it cannot read: remove 'unit'"))
        if fact.calculator.name == "gestational_age":
            out += _unitless_local_codes(target, fact, name, where)
    return out


def _unitless_local_codes(target: SelectFact, fact: CalculatorFact, name: str, where) -> list[Problem]:
    local = sorted({e.token for part in (target, *target.extra) for e in part.codes.include if e.system != _LOINC})
    declared = fact.params.get("unitless_weeks")
    uncovered = [t for t in local if declared is None or not any(e.token == t for e in declared.include)]
    if not uncovered:
        return []
    return [Problem(*where, format_path(("facts", name, "params")), "never-matches",
                    f"gestational-age codes outside LOINC ({', '.join(uncovered)}): a reading without a UCUM "
                    f"unit (wk or d) would be read as nothing; if such readings are in weeks, name their value "
                    f"set in params.unitless_weeks")]


# --- operators -------------------------------------------------------------------------------------

def _kind(fact) -> str | None:
    if isinstance(fact, SelectFact):
        if fact.pick in _BOOLEAN_PICKS:
            return "boolean"
        if fact.pick in _NUMBER_PICKS or (fact.pick in ("latest", "max", "min") and fact.unit):
            return "number"
        if fact.pick in _DATE_PICKS:
            return "date"
        if fact.pick == "all":
            return "list"
    return None


def _operators(policy, facts) -> list[Problem]:
    from cdshooks.policy import definitions

    out = []
    for expr, path in definitions.tests(policy.model, policy.paths):
        kind = _kind(facts.facts.get(expr.fact)) if expr.fact else None
        detail = _mismatch(expr, kind) if kind else None
        if detail:
            out.append(policy.document.problem(path, "never-matches",
                                               f"fact '{expr.fact}' is {_article(kind)}: {detail}"))
    return out


def _mismatch(expr, kind: str) -> str | None:
    numeric = [op for op in _NUMERIC_OPS if getattr(expr, op) is not None]
    if kind == "boolean" and numeric:
        return f"'{numeric[0]}' compares numbers; test it with 'present' or 'is: true'"
    if kind == "boolean" and expr.is_ is not None and not isinstance(expr.is_, bool):
        return f"'is: {expr.is_!r}' is never equal to true or false"
    if kind in ("number", "date", "list") and (expr.present is not None or isinstance(expr.is_, bool)):
        return "'present' and 'is: true/false' test true/false facts; compare it with ge/gt/le/lt or is"
    if kind in ("date", "list") and numeric:
        return f"'{numeric[0]}' compares numbers"
    if kind != "boolean" and expr.result is not None:
        return "'result' reads a met/not-met fact"
    return None


def _article(kind: str) -> str:
    return {"boolean": "true/false", "number": "a number", "date": "a date", "list": "a list of readings"}[kind]


# --- unused ----------------------------------------------------------------------------------------

def _unused_facts(loaded) -> list[Problem]:
    facts = loaded.facts
    read = facts.reachable(f for p in loaded.by_id.values() for f in p.facts)
    return [Problem(*_origin(facts, name), format_path(("facts", name)), "unused-fact", "no policy reads this fact")
            for name in facts.facts if name not in read]


def _unused_settings(loaded) -> list[Problem]:
    out = []
    for policy in loaded.by_id.values():
        text = repr(policy.model.criteria) + repr(policy.model.responses) + repr(policy.model.applicability)
        refs = {ref[0] for name in policy.facts if isinstance(loaded.facts.facts.get(name), CalculatorFact)
                for ref in loaded.facts.facts[name].setting_refs}
        for key in policy.model.settings:
            if f"'{key}'" not in text and key not in refs:
                out.append(Problem(policy.file, 1, f"settings.{key}", "unused-setting", "nothing reads this setting"))
    return out


def _unused_fixtures(suites, policies, site) -> list[Problem]:
    named = {n for _, suite in suites for case in suite.cases for n in (*case.orders, *case.record)}
    from cdshooks.files.datafile import read_name

    folders = [(policies / "testdata", policies.parent)] + (
        [(site / "policies" / "testdata", site.parent)] if site else [])
    return [Problem(read_name(path, root), 1, "", "unused-fixture", "no test case names this fixture")
            for folder, root in folders if folder.is_dir() for path in sorted(folder.glob("*.json"))
            if path.stem not in named]
