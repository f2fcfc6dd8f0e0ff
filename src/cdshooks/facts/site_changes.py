"""A site's changes to shipped facts (``site.yaml`` ``facts``): more codes, more sources, a window.

The fact keeps its name, its pick and its place in every policy; what changes is what it reads.
Problems are reported at the line of ``site.yaml`` that asks for the change.
"""

from __future__ import annotations

import dataclasses
import re

from cdshooks.facts.model import FactMapping
from cdshooks.fhir.codes import CodeError
from cdshooks.files.suggest import did_you_mean


def fact_changes(site, raw: dict) -> tuple[dict, list]:
    """``site.yaml`` fact changes by name, each checked: the fact exists and is a select fact."""
    if site is None:
        return {}, []
    changes, problems = {}, []
    for name, change in site.file.facts.items():
        if name not in raw:
            problems.append(site.problem(("facts", name), "reference",
                                         f"unknown fact '{name}'{did_you_mean(name, raw)}"))
        elif raw[name][0].calculator is not None and (change.add_codes or change.add_sources or change.within):
            problems.append(site.problem(("facts", name), "site", f"'{name}' is computed by the calculator "
                                         f"'{raw[name][0].calculator}': set its params, or extend the facts or "
                                         f"value sets it reads"))
        elif raw[name][0].calculator is None and change.params:
            problems.append(site.problem(("facts", name, "params"), "site", f"'{name}' is a select fact: params "
                                         f"are for calculator facts"))
        else:
            changes[name] = change
    return changes, problems


def apply(site, name: str, mapping: FactMapping, change) -> tuple[FactMapping, list, list]:
    """The fact's mapping with the site's codes and window; the added sources, for :func:`with_sources`."""
    if change is None:
        return mapping, [], []
    update = {}
    if change.add_codes:
        update["codes"] = list(dict.fromkeys([*mapping.codes, *change.add_codes]))
    if change.within:
        update["within"] = change.within
    if change.params:
        update["params"] = {**mapping.params, **change.params}
    return mapping.model_copy(update=update), list(change.add_sources), []


def with_sources(fact, mapping: FactMapping, extra: list, site, name: str, compile_select):
    """``fact`` reading also the added sources (same window and pick); problems at site.yaml."""
    compiled, problems = [], []
    for i, added in enumerate(extra):
        update = {"source": added.source, "codes": added.codes, "element": added.element, "status": added.status,
                  "value": added.value or mapping.value, "unit": added.unit or mapping.unit, "active": None}
        try:
            compiled.append(compile_select(mapping.model_copy(update=update)))
        except (CodeError, re.error, ValueError) as exc:
            problems.append(site.problem(("facts", name, "add_sources", i), "code", str(exc)))
    return dataclasses.replace(fact, extra=tuple(compiled)), problems
