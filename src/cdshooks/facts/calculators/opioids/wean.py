"""The systemic-opioid wean test (spec f.1): baseline B over the lookback window, current C on R.

Orders are identified and excluded here (buprenorphine, intrathecal/epidural route, Infumorph,
HCPCS-coded exclusions, non-order intents, void statuses); met when C <= 0.5 B, unknown whenever
an order without a computable dose could change the answer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date
from datetime import timedelta
from typing import Any
from typing import Iterable
from typing import Literal

from cdshooks.facts.calculators.opioids.dose import Resolver
from cdshooks.facts.calculators.opioids.dose import drug_mme
from cdshooks.facts.calculators.opioids.dose import identified
from cdshooks.facts.calculators.opioids.dose import mme_text
from cdshooks.facts.calculators.opioids.dose import route_codes
from cdshooks.facts.calculators.opioids.interval import active_interval
from cdshooks.facts.calculators.opioids.products import Drug
from cdshooks.facts.calculators.opioids.tables import MmeTables
from cdshooks.fhir.read import codes_in
from cdshooks.fhir.read import text

NEURAXIAL_ROUTES = frozenset({"72607000", "404820008"})  # intrathecal, epidural
_VOID_STATUSES = frozenset({"entered-in-error", "cancelled", "unknown"})
_NON_ORDER_INTENTS = frozenset({"proposal", "plan", "directive", "option"})
_BASELINE_STATUSES = frozenset({"active", "completed", "stopped", "on-hold"})
_OPEN_STATUSES = frozenset({"active", "draft"})
_DRAFT_ORDER_STATUSES = frozenset({None, "draft", "active"})
# Relative slack for the 50 % comparison: absorbs binary float noise (0.15 x 120 etc.) only.
_EPS = 1e-9


@dataclass(frozen=True)
class OrderMme:
    """One opioid MedicationRequest as the wean test saw it."""

    reference: str
    ingredient: str
    mme_per_day: float | None
    arithmetic: str
    start: date | None
    end: date | None  # exclusive; None = open-ended
    draft: bool
    baseline_eligible: bool
    current_eligible: bool


@dataclass(frozen=True)
class WeanResult:
    """Outcome of the wean test with the numbers behind it."""

    result: Literal["met", "not-met", "unknown"]
    baseline: float | None
    baseline_day: date | None
    current: float | None
    reduction: float | None
    orders: tuple[OrderMme, ...]
    uncomputable_current: tuple[str, ...]
    uncomputable_past: tuple[str, ...]
    note: str


def assess_wean(
    medication_requests: Iterable[tuple[dict, bool]],
    resolve: Resolver,
    reference_date: date,
    tables: MmeTables,
    *,
    lookback_days: int = 180,
    default_supply_days: int = 30,
) -> WeanResult:
    """Judge whether systemic opioids were weaned by at least 50 % by the reference date."""
    window = (reference_date - timedelta(days=lookback_days), reference_date)
    orders: dict[str, OrderMme] = {}
    for position, item in enumerate(medication_requests):
        order = _consider(item, position, resolve, window, tables, default_supply_days)
        # The same order can arrive in prefetch and as a draft: count it once, as the draft.
        if order is not None and (order.reference not in orders or order.draft):
            orders[order.reference] = order
    return _judge(tuple(orders.values()), window)


def _consider(
    item: Any,
    position: int,
    resolve: Resolver,
    window: tuple[date, date],
    tables: MmeTables,
    default_supply_days: int,
) -> OrderMme | None:
    """Turn one (MedicationRequest, is_draft) pair into an OrderMme; None if it does not count."""
    med_request, draft = _unpack(item)
    if med_request is None:
        return None
    concept, drug = identified(med_request, resolve, tables)
    if drug is None or _excluded(med_request, draft, drug, concept, tables):
        return None
    status = text(med_request.get("status"))
    interval = active_interval(med_request, status in _OPEN_STATUSES or draft, default_supply_days)
    if interval is None or not _overlaps(interval, window):
        return None
    mme, name, arithmetic = drug_mme(med_request, drug, tables)
    baseline_eligible, current_eligible = _eligibility(status, draft)
    return OrderMme(
        reference=_reference(med_request, position),
        ingredient=name,
        mme_per_day=mme,
        arithmetic=arithmetic,
        start=interval[0],
        end=interval[1],
        draft=draft,
        baseline_eligible=baseline_eligible,
        current_eligible=current_eligible,
    )


def _eligibility(status: str | None, draft: bool) -> tuple[bool, bool]:
    """Return (baseline-eligible, current-eligible) for an order's status."""
    draft_ok = draft and status in _DRAFT_ORDER_STATUSES
    return status in _BASELINE_STATUSES or draft_ok, status == "active" or draft_ok


def _unpack(item: Any) -> tuple[dict | None, bool]:
    """Read one (MedicationRequest, is_draft) pair, rejecting other shapes."""
    if not isinstance(item, (tuple, list)) or len(item) != 2 or not isinstance(item[0], dict):
        return None, False
    return item[0], item[1] is True


def _excluded(
    med_request: dict, draft: bool, drug: Drug, concept: dict, tables: MmeTables
) -> bool:
    """Apply the f.1 exclusions (drug, route, product, HCPCS, intent, status)."""
    status = text(med_request.get("status"))
    intent = text(med_request.get("intent"))
    product = drug.product.code if drug.product is not None else None
    return (
        drug.ingredient in tables.excluded_ingredients
        or product in tables.always_excluded
        or bool(route_codes(med_request) & NEURAXIAL_ROUTES)
        or bool(tables.excluded_hcpcs.intersection(codes_in(concept, tables.hcpcs_system)))
        or status in _VOID_STATUSES
        or (status == "draft" and not draft)
        or (intent in _NON_ORDER_INTENTS and not draft)
    )


def _reference(med_request: dict, position: int) -> str:
    """Return 'MedicationRequest/<id>' (or MedicationStatement), or a positional stand-in."""
    resource_id = text(med_request.get("id"))
    kind = "MedicationStatement" if med_request.get("resourceType") == "MedicationStatement" else "MedicationRequest"
    return f"{kind}/{resource_id or f'(item {position})'}"


def _overlaps(interval: tuple[date | None, date | None], window: tuple[date, date]) -> bool:
    """Tell whether [start, end) shares at least one day with the inclusive window."""
    start, end = interval
    return (start is None or start <= window[1]) and (end is None or end > window[0])


def _active_on(order: OrderMme, day: date) -> bool:
    """Tell whether the order is active on a calendar day."""
    return (order.start is None or order.start <= day) and (order.end is None or day < order.end)


def _total_on(orders: Iterable[OrderMme], day: date) -> float:
    """Sum MME/day of the computable orders active on a day."""
    return math.fsum(
        o.mme_per_day for o in orders if o.mme_per_day is not None and _active_on(o, day)
    )


def _baseline(history: list[OrderMme], window: tuple[date, date]) -> tuple[float, date | None]:
    """Return the highest daily total in the window and its first day."""
    first, last = window
    # Totals only rise when an order starts, so the window start and start days suffice.
    days = sorted({first} | {o.start for o in history if o.start and first < o.start <= last})
    best, best_day = 0.0, None
    for day in days:
        total = _total_on(history, day)
        if total > best:
            best, best_day = total, day
    return best, best_day


def _judge(orders: tuple[OrderMme, ...], window: tuple[date, date]) -> WeanResult:
    """Compute B, C, U_R and U_past and apply the f.1 result rules."""
    history = [o for o in orders if o.baseline_eligible]
    now = [o for o in orders if o.current_eligible and _active_on(o, window[1])]
    current = _total_on(now, window[1]) if orders else None
    u_r = tuple(o.reference for o in now if o.mme_per_day is None)
    u_past = tuple(
        o.reference for o in history if o.mme_per_day is None and o.reference not in u_r
    )
    if not history or all(o.draft for o in history):
        note = _no_history_note(bool(history), window)
        return WeanResult("unknown", None, None, current, None, orders, u_r, u_past, note)
    baseline, day = _baseline(history, window)
    if baseline <= 0:
        count = _count(len(u_r + u_past), "opioid order")
        note = f"{count} between {window[0]} and {window[1]}, none with a computable dose"
        return WeanResult("unknown", None, None, current, None, orders, u_r, u_past, note)
    reduction = None if u_r else 1 - current / baseline
    result = _decide(baseline, current, u_r, u_past)
    note = _note(baseline, day, current, reduction, orders, u_r, u_past)
    return WeanResult(result, baseline, day, current, reduction, orders, u_r, u_past, note)


def _decide(
    baseline: float, current: float, u_r: tuple[str, ...], u_past: tuple[str, ...]
) -> Literal["met", "not-met", "unknown"]:
    """Apply the f.1 result rules once a baseline exists."""
    if u_r:
        return "unknown"
    if current <= 0.5 * baseline * (1 + _EPS):
        return "met"
    # An uncomputable past order could only raise B, so it can still turn not-met into met.
    return "unknown" if u_past else "not-met"


def _no_history_note(drafts_only: bool, window: tuple[date, date]) -> str:
    """Explain why there is no baseline."""
    found = "only this request's opioid orders are" if drafts_only else "no opioid order is"
    return f"{found} on record between {window[0]} and {window[1]}: no baseline to compare"


def _note(
    baseline: float,
    day: date | None,
    current: float,
    reduction: float | None,
    orders: tuple[OrderMme, ...],
    u_r: tuple[str, ...],
    u_past: tuple[str, ...],
) -> str:
    """Write the one-sentence summary of B, C and what is missing."""
    summary = f"baseline {mme_text(baseline)} MME/day on {day}"
    if u_r or reduction is None:
        missing = "; ".join(f"{o.reference} ({o.arithmetic})" for o in orders if o.reference in u_r)
        return f"{summary}; current unknown: {mme_text(current)} MME/day computable, plus {missing}"
    summary += f", current {mme_text(current)} MME/day"
    if reduction < 0:
        summary += f" ({mme_text(-reduction * 100)} % increase; ≥ 50 % reduction required)"
    else:
        summary += f" ({mme_text(reduction * 100)} % reduction; ≥ 50 % required)"
    if u_past and current > 0.5 * baseline * (1 + _EPS):
        past = _count(len(u_past), "earlier order")
        summary += f"; {past} with no computable dose could raise the baseline"
    return summary


def _count(number: int, noun: str) -> str:
    """Write '1 order' / '2 orders'."""
    return f"{number} {noun}{'' if number == 1 else 's'}"
