"""Facts: what policies see.  Each is ``known`` (value + evidence), ``unknown`` or ``unavailable``.

A :class:`FactContext` computes facts lazily and memoizes them for the whole request, keyed by
name, as-of date and (only for facts that read the order under evaluation) the order.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from dataclasses import field
from typing import Any
from typing import Mapping

from cdshooks.fhir.codes import Code
from cdshooks.fhir.orders import DraftOrder
from cdshooks.fhir.record import Record


@dataclass(frozen=True)
class Evidence:
    """A piece of the patient's record behind a result: where, what, when."""

    reference: str
    value: str
    date: str | None = None

    def as_json(self) -> dict:
        out = {"reference": self.reference, "value": self.value}
        if self.date:
            out["date"] = self.date
        return out

    def __str__(self) -> str:
        when = f", {self.date}" if self.date else ""
        return f"{self.value} ({self.reference}{when})"


@dataclass(frozen=True)
class Fact:
    status: str                          # "known" | "unknown" | "unavailable"
    value: Any = None
    evidence: tuple[Evidence, ...] = ()
    note: str = ""
    brief: str = ""                      # a few words for a card summary, e.g. "100 vs 140 MME/day"

    @property
    def known(self) -> bool:
        return self.status == "known"


UNKNOWN = Fact("unknown")

# The values of a rule-like fact (a policy reads them with ``result: true``), the same strings the
# policy's three-valued logic works with (policy/logic.py)
MET, NOT_MET, UNDECIDED = "met", "not-met", "unknown"


@dataclass(frozen=True)
class Item:
    """One resource a select fact kept, with what it read from it."""

    resource: dict
    reference: str
    date: dt.date | None
    value: Any
    code: str               # the matched code as written in the record
    display: str
    entry: Code | None
    refuted: bool = False

    @property
    def issued(self) -> str:
        """When the resource was issued, as written: D4 breaks a tie of dates with it."""
        return str(self.resource.get("issued", ""))

    def evidence(self, value: str | None = None) -> Evidence:
        text = value if value is not None else " ".join(p for p in (self.code, self.display) if p)
        return Evidence(self.reference, text or self.reference, self.date.isoformat() if self.date else None)


@dataclass
class FactContext:
    """Everything a fact may read for one request; facts are computed on demand, once."""

    definitions: Mapping[str, Any]
    record: Record
    today: dt.date
    resources: Mapping[str, Any]                     # start-up tables (MME, …) by name
    order: DraftOrder | None = None
    service_date: dt.date | None = None
    settings: Mapping[str, Any] = field(default_factory=dict)
    memo: dict = field(default_factory=dict)

    def for_order(self, order: DraftOrder, service_date: dt.date, settings: Mapping[str, Any]) -> "FactContext":
        """A view for one order and policy that shares this request's memo."""
        return FactContext(self.definitions, self.record, self.today, self.resources,
                           order, service_date, settings, self.memo)

    def fact(self, name: str, at: dt.date | None = None) -> Fact:
        """The fact ``name`` as of ``at`` (default T)."""
        at = at or self.today
        definition = self.definitions[name]
        key = (name, at, self.order.reference if definition.order_scoped and self.order else None)
        if definition.setting_refs:  # facts tuned by policy settings are remembered per value
            key += tuple(_hashable(self.settings.get(s, d)) for s, d in definition.setting_refs)
        found = self.memo.get(key)
        if found is None:
            found = self.memo[key] = definition.compute(self, at)
        return found


def _hashable(value):
    return tuple(value) if isinstance(value, list) else value


@dataclass(frozen=True)
class Interval:
    """A number known only within bounds (partial birth date, "≥ 2 fetuses"); compared both ends."""

    low: float
    high: float

    def __str__(self) -> str:
        if self.low == self.high:
            return f"{self.low:g}"
        return f"≥ {self.low:g}" if self.high == float("inf") else f"{self.low:g}–{self.high:g}"
