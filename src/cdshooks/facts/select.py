"""Select facts: resources of one type, chosen by code through the record index, then picked."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from functools import partial
from typing import Any

from cdshooks.facts.facts import UNKNOWN
from cdshooks.facts.facts import Fact
from cdshooks.facts.facts import FactContext
from cdshooks.facts.facts import Item
from cdshooks.fhir import units
from cdshooks.fhir.codes import CodeSet
from cdshooks.fhir.dates import condition_state
from cdshooks.fhir.dates import latest_key
from cdshooks.fhir.dates import resource_date
from cdshooks.fhir.read import as_list
from cdshooks.fhir.read import main_code_element
from cdshooks.fhir.record import display_code
from cdshooks.fhir.record import reference_of

DEFAULT_STATUS = {
    "Observation": frozenset({"final", "amended", "corrected"}),
    "DiagnosticReport": frozenset({"registered", "partial", "preliminary", "final", "amended",
                                   "corrected", "appended"}),
    # D10: a statement counts as history unless entered in error, not taken or of unknown status.
    "MedicationStatement": frozenset({"active", "completed", "intended", "stopped", "on-hold"}),
}


@dataclass(frozen=True)
class SelectFact:
    name: str
    source: str
    codes: CodeSet
    element: str
    statuses: frozenset[str] | None
    active_only: bool
    drafts: str
    value: Any                       # compiled JSONPath or None
    unit: str | None
    within_days: int | None
    ahead_days: int
    since: str | None
    pick: str
    order_scoped: bool = False
    setting_refs: tuple = ()
    extra: tuple = ()                # more sources a site added (same window and pick): SelectFacts

    @property
    def sources(self) -> tuple[str, ...]:
        return (self.source,) + tuple(e.source for e in self.extra)

    @classmethod
    def main_element(cls, source: str) -> str:
        return main_code_element(source)

    def compute(self, ctx: FactContext, at: dt.date) -> Fact:
        for source in self.sources:
            if self.drafts != "only" and source in ctx.record.unavailable:
                return Fact("unavailable", note=f"{source} data unavailable: {ctx.record.unavailable[source]}")
        start, end = self._window(ctx, at)
        items = [item for part in (self, *self.extra) for resource in part.codes.candidates(ctx.record)
                 for item in part._items(ctx, resource, at, start, end)]
        return _PICKS[self.pick](self, items)

    def _window(self, ctx: FactContext, at: dt.date) -> tuple[dt.date | None, dt.date | None]:
        start = at - dt.timedelta(days=self.within_days) if self.within_days is not None else None
        if self.since:
            since = ctx.fact(self.since, at)
            if since.known and isinstance(since.value, dt.date):
                start = since.value
        has_window = self.within_days is not None or self.since is not None
        end = at + dt.timedelta(days=self.ahead_days) if has_window else None
        return start, end

    def _items(self, ctx: FactContext, resource: dict, at, start, end):
        if resource.get("resourceType") != self.source:
            return
        is_draft = ctx.record.is_draft(resource)
        if (self.drafts == "exclude" and is_draft) or (self.drafts == "only" and not is_draft):
            return
        record = ctx.record
        state = record.derived("state", resource, condition_state, at) if self.source == "Condition" else "active"
        if state in ("ignored", "inactive") and (self.active_only or state == "ignored"):
            return
        when = record.derived("date", resource, resource_date)
        if not is_draft and not self._admitted(resource, when, start, end):
            return
        for _system, code, entry in self.codes.matches_concept(resource.get(self.element)):
            yield self._item(resource, when, code, entry, state == "refuted")
            return
        if self.source == "Observation" and self.element == "code":
            for component in as_list(resource.get("component")):
                hits = self.codes.matches_concept(component.get("code")) if isinstance(component, dict) else []
                if hits:
                    # memoized per component so every fact of the call sees the same view object
                    view = record.derived("component", component, partial(component_view, resource))
                    yield self._item(view, when, hits[0][1], hits[0][2], False)
                    return

    def _admitted(self, resource, when, start, end) -> bool:
        if self.statuses is not None and resource.get("status") not in self.statuses:
            return False
        if start is not None or end is not None:
            if when is None or (start and when < start) or (end and when > end):
                return False
        return True

    def _item(self, resource, when, code, entry, refuted) -> Item:
        text_code, display = _written_code(resource.get(self.element), code)
        return Item(resource, reference_of(resource) or resource["resourceType"], when,
                    self._read_value(resource), text_code, display, entry, refuted)

    def _read_value(self, resource):
        if self.value is None:
            return None
        matches = self.value.find(resource)
        if not matches:
            return None
        value = matches[0].value
        if self.unit and isinstance(value, dict):
            number = value.get("value")
            if not isinstance(number, (int, float)) or isinstance(number, bool):
                return None
            return units.convert(float(number), units.quantity_unit(value), self.unit)
        return value


def component_view(observation: dict, component: dict) -> dict:
    """The Observation as if the component were its code and value (D9): same id, status and date."""
    view = {k: v for k, v in observation.items()
            if not k.startswith("value") and k not in ("component", "referenceRange")}
    view.update({k: v for k, v in component.items() if k == "code" or k.startswith("value") or k == "referenceRange"})
    return view


def _written_code(concept, normalized: str, system: str | None = None) -> tuple[str, str]:
    """The code as people read it (``M96.1``, even when written ``M961``) and its display or text."""
    for cc in as_list(concept):
        for coding in as_list(cc.get("coding") if isinstance(cc, dict) else None):
            if isinstance(coding, dict) and isinstance(coding.get("code"), str):
                if coding["code"].replace(".", "").upper().strip() == normalized.upper():
                    shown = display_code(coding.get("system"), coding["code"])
                    return shown, coding.get("display") or (cc.get("text") or "")
    return display_code(system, normalized), ""


def written_code(concept, normalized: str, system: str | None = None) -> str:
    """``M96.1 Postlaminectomy syndrome…``: the code as people read it with its display, for evidence.

    ``system`` shows a code the concept does not carry (one from a referenced Condition) in its
    readable form too.
    """
    return " ".join(part for part in _written_code(concept, normalized, system) if part)


def _usable(items):
    return [i for i in items if not i.refuted]


def _pick_exists(fact: SelectFact, items) -> Fact:
    present = _usable(items)
    if present:
        return Fact("known", True, tuple(i.evidence() for i in present))
    refuted = [i for i in items if i.refuted]
    if refuted:
        return Fact("known", False, tuple(i.evidence(f"refuted: {i.code} {i.display}".strip()) for i in refuted))
    return UNKNOWN


def _ordered(items):
    valued = [i for i in _usable(items) if i.value is not None]
    return sorted(valued, key=lambda i: latest_key(i.date, i.issued, i.reference))


def _value_text(fact: SelectFact, item: Item) -> str:
    value = item.value
    shown = f"{value:g}" if isinstance(value, float) else str(value)
    return f"{item.display or item.code}: {shown}{' ' + fact.unit if fact.unit else ''}"


def _pick_latest(fact, items) -> Fact:
    ordered = _ordered(items)
    if not ordered:
        return UNKNOWN
    best = ordered[-1]
    return Fact("known", best.value, (best.evidence(_value_text(fact, best)),))


def _pick_latest_date(fact, items) -> Fact:
    dated = [i for i in _usable(items) if i.date is not None]
    if not dated:
        return UNKNOWN
    best = max(dated, key=lambda i: (i.date, i.reference))
    return Fact("known", best.date, (best.evidence(),), f"latest on {best.date}")


def _pick_extreme(choose):
    def pick(fact, items) -> Fact:
        ordered = _ordered(items)
        if not ordered:
            return UNKNOWN
        best = choose(ordered, key=lambda i: i.value)
        return Fact("known", best.value, (best.evidence(_value_text(fact, best)),))
    return pick


def _pick_count(fact, items) -> Fact:
    present = _usable(items)
    return Fact("known", len(present), tuple(i.evidence() for i in present))


def _pick_distinct(fact, items) -> Fact:
    present = _usable(items)
    entries = {i.entry.token for i in present if i.entry is not None}
    return Fact("known", len(entries), tuple(i.evidence() for i in present))


def _pick_all(fact, items) -> Fact:
    return Fact("known", tuple(items), ())


_PICKS = {
    "exists": _pick_exists, "latest": _pick_latest, "latest_date": _pick_latest_date, "max": _pick_extreme(max),
    "min": _pick_extreme(min), "count": _pick_count, "distinct": _pick_distinct, "all": _pick_all,
}
