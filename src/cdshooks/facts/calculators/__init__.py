"""Calculators: small pure functions that derive facts the mappings cannot read directly.

Each entry of :data:`CALCULATORS` names the calculator a mapping refers to, the input roles it
needs (other facts), the model its ``params`` must fit (pydantic, ``extra="forbid"``: checked at
load with file and line), how they are prepared once at start-up, and whether its value
depends on the order under evaluation (``order_scoped``) or only on the draft orders
(``drafts_only``: usable for applicability, before any prefetch is resolved).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from typing import Callable

from pydantic import BaseModel
from pydantic import ConfigDict

from cdshooks.facts.facts import Fact
from cdshooks.facts.model import SettingRef

# Names of value sets (valuesets/<name>.json): one, or a list whose union is meant.
ValueSetNames = str | list[str]
# A number a policy may tune: a literal, or ``{setting, default}`` read from the policy's settings.
SettingInt = int | SettingRef


class Params(BaseModel):
    """A calculator's params as a mapping file writes them; an unknown key is an error."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class NoParams(Params):
    """The calculator takes no params."""


@dataclass(frozen=True)
class Calculator:
    name: str
    compute: Callable                       # (ctx, at, inputs: dict[role, fact name], params) -> Fact
    inputs: frozenset[str] = frozenset()    # required input roles
    prepare: Callable[[dict], Any] | None = None
    order_scoped: bool = False
    drafts_only: bool = False
    resource_types: frozenset[str] = frozenset()   # record types read directly (for prefetch)
    optional_types: frozenset[str] = frozenset()   # read when the client sends them; never required
    # params that name value sets: a name or list of names becomes one CodeSet before ``prepare``;
    # a mapping keyed by names becomes ``((CodeSet, value), ...)``; table rows (a list of mappings)
    # have their ``codes`` resolved
    code_params: frozenset[str] = frozenset()
    # input roles whose items' values the calculator reads as FHIR Quantities itself (a ``unit`` on
    # such an input turns each value into a bare number it cannot read: `cdshooks check` refuses it)
    quantity_inputs: frozenset[str] = frozenset()
    # the param mapping (value -> criterion id of the ``questionnaire`` param's policy) whose
    # documentation answers the calculator reads itself: a 'yes' to those criteria is the fact's
    reads_answers: str | None = None
    # the model the mapping's ``params`` must fit; None: not typed yet (any mapping passes)
    params: type[Params] | None = None


def setting(ctx, value):
    """A calculator parameter: a literal, or ``{setting, default}`` read from the policy's settings."""
    if isinstance(value, dict) and "setting" in value:
        return ctx.settings.get(value["setting"], value.get("default"))
    return value


def data_unavailable(ctx, resource_type: str) -> Fact | None:
    """An ``unavailable`` Fact when the client could not send ``resource_type`` data, else None."""
    reason = ctx.record.unavailable.get(resource_type)
    return Fact("unavailable", note=f"{resource_type} data unavailable: {reason}") if reason else None


def first_unavailable(facts) -> Fact | None:
    """The first of the input facts whose data could not be read, else None."""
    return next((f for f in facts if f.status == "unavailable"), None)


def registry() -> dict[str, Calculator]:
    """Every calculator by name: each module of this package may export ``CALCULATORS``.

    Modules are imported here, when the mappings load, never at import time of the package.
    """
    import importlib
    import pkgutil

    found: dict[str, Calculator] = {}
    for module in pkgutil.iter_modules(__path__):
        exported = getattr(importlib.import_module(f"{__name__}.{module.name}"), "CALCULATORS", ())
        for calculator in exported:
            if calculator.name in found:
                raise ValueError(f"calculator '{calculator.name}' is defined twice")
            found[calculator.name] = calculator
    return found
