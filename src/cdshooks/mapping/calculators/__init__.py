"""Calculators: small pure functions that derive facts the mappings cannot read directly.

Each entry of :data:`CALCULATORS` names the calculator a mapping refers to, the input roles it
needs (other facts), how its parameters are prepared once at start-up, and whether its value
depends on the order under evaluation (``order_scoped``) or only on the draft orders
(``drafts_only``: usable for applicability, before any prefetch is resolved).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from typing import Callable


@dataclass(frozen=True)
class Calculator:
    name: str
    compute: Callable                       # (ctx, at, inputs: dict[role, fact name], params) -> Fact
    inputs: frozenset[str] = frozenset()    # required input roles
    prepare: Callable[[dict], Any] | None = None
    order_scoped: bool = False
    drafts_only: bool = False
    resource_types: frozenset[str] = frozenset()   # record types read directly (for prefetch)


def registry() -> dict[str, Calculator]:
    """Every calculator by name (imported lazily: nothing runs at import time)."""
    from cdshooks.mapping.calculators import adapters

    return {c.name: c for c in adapters.ALL}
