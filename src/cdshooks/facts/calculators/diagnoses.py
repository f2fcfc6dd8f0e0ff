"""Diagnoses as the policies read them: the order's reasons (D6) together with the problem list (D2).

``diagnosis`` answers with a three-valued result and evidence:

* met — a matching code in the order's reasons or on an active Condition (in the window, if any);
* not-met — only refuted matches; or, with a window, every dated match is older than the window;
  or, with ``unless``, a code of that second set is present;
* unknown (known fact, undecided) — a match that cannot be placed in the window (no date, or only
  on the order, whose reasons carry no date);
* no evidence (an ``unknown`` fact) — nothing matches: the leaf's default decides.
"""

from __future__ import annotations

import datetime as dt

from pydantic import Field
from pydantic import model_validator

from cdshooks.facts.calculators import Calculator
from cdshooks.facts.calculators import NoParams
from cdshooks.facts.calculators import Params
from cdshooks.facts.calculators import ValueSetNames
from cdshooks.facts.calculators import data_unavailable
from cdshooks.facts.calculators import first_unavailable
from cdshooks.facts.calculators import orders
from cdshooks.facts.calculators.opioids.dose import route_codes
from cdshooks.facts.calculators.opioids.interval import active_interval
from cdshooks.facts.facts import UNKNOWN
from cdshooks.facts.facts import Evidence
from cdshooks.facts.facts import Fact
from cdshooks.facts.facts import FactContext
from cdshooks.facts.select import written_code
from cdshooks.fhir.codes import SYSTEMS
from cdshooks.fhir.codes import CodeSet
from cdshooks.fhir.dates import condition_state
from cdshooks.fhir.dates import resource_date
from cdshooks.fhir.read import as_list
from cdshooks.fhir.read import codings
from cdshooks.fhir.record import display_codes
from cdshooks.fhir.record import reference_of


def _matches(ctx: FactContext, code_set: CodeSet, at: dt.date, params, reasons,
             site_codes: CodeSet | None = None) -> tuple[list, list]:
    """(reason-code hits, Condition hits as (resource, code, state)).

    With ``site_codes``, a Condition also matches when one of those codes is recorded with a
    ``bodySite`` in ``params["body_site"]`` (order reasons carry no body site)."""
    reason_hits = [(s, c) for s, c in reasons if code_set.entry_for(s, c)]
    hits = []
    candidates = code_set.candidates(ctx.record) + (site_codes.candidates(ctx.record) if site_codes else [])
    for resource in {id(r): r for r in candidates}.values():
        if resource.get("resourceType") != "Condition":
            continue
        state = ctx.record.derived("state", resource, condition_state, at)
        if state == "ignored" or (state == "inactive" and not params.get("any_status")):
            continue
        found = code_set.matches_concept(resource.get("code"))
        if not found and site_codes is not None and params["body_site"].matches_concept(resource.get("bodySite")):
            found = site_codes.matches_concept(resource.get("code"))
        if found:
            hits.append((resource, found[0][1], state))
    return reason_hits, hits


def _live(hits) -> list:
    return [h for h in hits if h[2] != "refuted"]


def _date(ctx: FactContext, resource: dict) -> dt.date | None:
    return ctx.record.derived("date", resource, resource_date)


def _evidence(ctx: FactContext, reason_hits, hits) -> tuple[Evidence, ...]:
    out = [Evidence(ctx.order.reference, "order reason " + written_code(ctx.order.resource.get("reasonCode"), c, s))
           for s, c in reason_hits]
    for resource, code, state in hits:
        when = _date(ctx, resource)
        text = written_code(resource.get("code"), code) + (" (refuted)" if state == "refuted" else "")
        out.append(Evidence(reference_of(resource) or "Condition", text, when.isoformat() if when else None))
    return tuple(out)


def diagnosis(ctx: FactContext, at: dt.date, inputs, params) -> Fact:
    reasons = orders.reason_codes(ctx.order.resource, ctx.record)[0] if ctx.order else []
    reason_hits, hits = _matches(ctx, params["codes"], at, params, reasons, params.get("site_codes"))
    live = _live(hits)
    if "pair_with" in params and (reason_hits or live):  # both members must be present, neither refuted
        partner_reasons, partner_hits = _matches(ctx, params["pair_with"], at, params, reasons)
        partner_live = _live(partner_hits)
        if not (partner_reasons or partner_live):
            return Fact("unknown", note="only one member of the pair is recorded")
        reason_hits, live = reason_hits + partner_reasons, live + partner_live
    if "unless" in params:
        other_reasons, other_hits = _matches(ctx, params["unless"], at, params, reasons)
        if other_reasons or _live(other_hits):
            evidence = _evidence(ctx, other_reasons, other_hits)
            return Fact("known", "not-met", evidence, "a code of the other set is present")
    evidence = _evidence(ctx, reason_hits, live or hits)
    if "within_days" in params:
        return _windowed(ctx, at, int(params["within_days"]), reason_hits, live, evidence)
    if reason_hits or live:
        return Fact("known", "met", evidence)
    if hits:
        return Fact("known", "not-met", evidence, "only refuted diagnoses")
    return data_unavailable(ctx, "Condition") or UNKNOWN


def _windowed(ctx: FactContext, at, days, reason_hits, live, evidence) -> Fact:
    start = at - dt.timedelta(days=days)
    dates = [_date(ctx, resource) for resource, _, _ in live]
    if any(d is not None and start <= d <= at for d in dates):
        return Fact("known", "met", evidence, f"recorded within {days} days")
    if any(d is None for d in dates) or (reason_hits and not live):
        return Fact("known", "unknown", evidence, "recorded without a date: is it new?")
    if live:
        return Fact("known", "not-met", evidence, f"recorded before the last {days} days (not new)")
    return data_unavailable(ctx, "Condition") or UNKNOWN


def bilateral(ctx: FactContext, at: dt.date, inputs, params) -> Fact:
    """Both sides recorded and at least one of them new: e.g. bilateral radicular pain (NHS WS-1).

    ``right`` and ``left`` are windowed ``diagnosis`` facts (met = new, not-met = older, unknown =
    undated). A side with no diagnosis at all is no evidence of bilateral pain.
    """
    right, left = ctx.fact(inputs["right"], at), ctx.fact(inputs["left"], at)
    if not (right.known and left.known):
        return first_unavailable((right, left)) or UNKNOWN
    values = {right.value, left.value}
    result = "met" if "met" in values else "unknown" if "unknown" in values else "not-met"
    return Fact("known", result, right.evidence + left.evidence,
                "both sides recorded" + ("" if result == "met" else ", neither shown to be new"))


def requester_codes(ctx: FactContext, at: dt.date, inputs, params) -> Fact:
    """Role, specialty and qualification codes of whoever requested the order (contained or prefetched)."""
    order = ctx.order.resource
    requester = ctx.record.resolve(order.get("requester"), order)
    if requester is None:
        return Fact("unknown", note="the requester is not in the record")
    concepts = []
    if requester.get("resourceType") == "PractitionerRole":
        concepts += as_list(requester.get("code")) + as_list(requester.get("specialty"))
        practitioner = ctx.record.resolve(requester.get("practitioner"), requester)
        requester = practitioner or requester
    if requester.get("resourceType") == "Practitioner":
        concepts += [q.get("code") for q in as_list(requester.get("qualification")) if isinstance(q, dict)]
    pairs = codings(concepts)
    shown = ", ".join(c for _, c in pairs) or "no role codes"
    return Fact("known", tuple(pairs), (Evidence(f"{ctx.order.reference} requester", shown),))


def order_element(ctx: FactContext, at: dt.date, inputs, params) -> Fact:
    """An element of the order: its codes (``category``, ``bodySite``) or a plain value (``priority``)."""
    value = ctx.order.resource.get(params["element"])
    if value is None:
        return Fact("unknown", note=f"the order has no {params['element']}")
    if isinstance(value, str):
        return Fact("known", value, (Evidence(ctx.order.reference, f"{params['element']} {value}"),))
    pairs = codings(value)
    if not pairs:
        return Fact("unknown", note=f"the order's {params['element']} carries no code")
    return Fact("known", tuple(pairs), (Evidence(ctx.order.reference, display_codes(pairs)),))


def _prepare_course(params: dict) -> dict:
    routes = params.get("exclude_routes")
    return {**params, "routes": routes.exact_codes(SYSTEMS["snomed"]) if routes is not None else frozenset()}


def medication_course(ctx: FactContext, at: dt.date, inputs, params) -> Fact:
    """A medication of the code set that is ordered now, active, or ended within ``ended_within_days``."""
    window = at - dt.timedelta(days=int(params["ended_within_days"]))
    found = []   # (request, its concepts)
    for request in ctx.record.of_type("MedicationRequest"):
        concepts = orders.order_concepts(request, ctx.record)
        if not params["codes"].matches_concept(concepts) or (route_codes(request) & params["routes"]):
            continue
        if ctx.record.is_draft(request) or request.get("status") == "active":
            found.append((request, concepts))
        elif request.get("status") in ("completed", "stopped"):
            interval = active_interval(request, False, int(params.get("default_supply_days", 30)))
            if interval and interval[1] is not None and window <= interval[1] - dt.timedelta(days=1) <= at:
                found.append((request, concepts))
    if not found:
        return data_unavailable(ctx, "MedicationRequest") or UNKNOWN
    evidence = tuple(Evidence(reference_of(r) or "MedicationRequest",
                              f"{next(iter(orders.texts(concepts)), '') or 'course'} ({r.get('status')})")
                     for r, concepts in found)
    return Fact("known", "met", evidence)


class DiagnosisParams(Params):
    codes: ValueSetNames
    unless: ValueSetNames | None = None       # a code of this set present: not-met
    pair_with: ValueSetNames | None = None    # both sets must be present
    site_codes: ValueSetNames | None = None   # these codes count when recorded with a body_site
    body_site: ValueSetNames | None = None
    within_days: int | None = Field(None, ge=0)
    any_status: bool = False                  # inactive Conditions count too

    @model_validator(mode="after")
    def _site_codes_need_a_site(self):
        if self.site_codes is not None and self.body_site is None:
            raise ValueError("site_codes count only with a body_site: name its value set")
        return self


class OrderElementParams(Params):
    element: str = Field(min_length=1)


class CourseParams(Params):
    codes: ValueSetNames
    ended_within_days: int = Field(ge=0)
    exclude_routes: ValueSetNames | None = None
    default_supply_days: int = Field(30, ge=1)


CALCULATORS = (
    Calculator("diagnosis", diagnosis, order_scoped=True, resource_types=frozenset({"Condition"}),
               code_params=frozenset({"codes", "unless", "pair_with", "site_codes", "body_site"}),
               params=DiagnosisParams),
    Calculator("bilateral", bilateral, frozenset({"right", "left"}), params=NoParams),
    Calculator("requester_codes", requester_codes, order_scoped=True,
               optional_types=frozenset({"PractitionerRole", "Practitioner"}), params=NoParams),
    Calculator("order_element", order_element, order_scoped=True, params=OrderElementParams),
    Calculator("medication_course", medication_course, prepare=_prepare_course,
               resource_types=frozenset({"MedicationRequest"}), code_params=frozenset({"codes", "exclude_routes"}),
               params=CourseParams),
)
