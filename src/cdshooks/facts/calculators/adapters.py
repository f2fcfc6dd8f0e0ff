"""The calculators as fact functions: read inputs from the context, call the pure code, wrap a Fact."""

from __future__ import annotations

import datetime as dt
import re

from pydantic import Field

from cdshooks.facts.calculators import Calculator
from cdshooks.facts.calculators import NoParams
from cdshooks.facts.calculators import Params
from cdshooks.facts.calculators import SettingInt
from cdshooks.facts.calculators import ValueSetNames
from cdshooks.facts.calculators import age
from cdshooks.facts.calculators import data_unavailable
from cdshooks.facts.calculators import first_unavailable
from cdshooks.facts.calculators import gestation
from cdshooks.facts.calculators import orders
from cdshooks.facts.calculators import pain
from cdshooks.facts.calculators import pregnancy
from cdshooks.facts.calculators import setting
from cdshooks.facts.calculators.opioids.dose import opioid_ingredients
from cdshooks.facts.calculators.opioids.dose import route_codes
from cdshooks.facts.calculators.opioids.wean import assess_wean
from cdshooks.facts.facts import UNKNOWN
from cdshooks.facts.facts import Evidence
from cdshooks.facts.facts import Fact
from cdshooks.facts.facts import FactContext
from cdshooks.facts.facts import Interval
from cdshooks.facts.select import written_code
from cdshooks.fhir import medications
from cdshooks.fhir.codes import SYSTEMS
from cdshooks.fhir.dates import condition_state
from cdshooks.fhir.dates import parse_date
from cdshooks.fhir.read import codings
from cdshooks.fhir.record import display_code
from cdshooks.fhir.record import display_codes
from cdshooks.fhir.record import reference_of

SNOMED = SYSTEMS["snomed"]


# ------------------------------------------------------------------------------ patient
def patient_age(ctx: FactContext, at: dt.date, inputs, params) -> Fact:
    patient = ctx.record.patient
    if patient is None:
        return data_unavailable(ctx, "Patient") or Fact("unknown", note="no Patient resource")
    bounds = age.age_bounds(patient.get("birthDate"), at)
    if bounds is None:
        return Fact("unknown", note="no usable birthDate")
    value = Interval(*bounds)
    reference = f"Patient/{patient.get('id', '')}".rstrip("/")
    return Fact("known", value, (Evidence(reference, f"age {value} on {at}"),))


# ---------------------------------------------------------------------------- pregnancy
def gestational_age(ctx: FactContext, at: dt.date, inputs, params) -> Fact:
    observations = ctx.fact(inputs["observations"], ctx.today)
    edd = ctx.fact(inputs["edd"], ctx.today)
    if not observations.known and not edd.known:
        return observations if observations.status == "unavailable" else UNKNOWN
    weeks = params.get("unitless_weeks")   # local codes whose readings without a unit are in weeks
    def in_weeks(i) -> bool:
        return bool(weeks and i.entry is not None and weeks.entry_for(i.entry.system, i.entry.code))

    ga_items = [gestation.GaObservation(i.reference, i.date, i.value, i.code, i.issued, in_weeks(i))
                for i in (observations.value or ()) if i.date]
    edd_items = [gestation.EddObservation(i.reference, i.date, parse_date(i.value), i.issued)
                 for i in (edd.value or ()) if i.date]
    found = gestation.gestational_age(ga_items, edd_items, at)
    if found is None:
        return Fact("unknown", note="no gestational age or EDD within range")
    shown = gestation.weeks_days(found.days)
    return Fact("known", found.days, (Evidence(found.reference, found.reading),),
                f"gestational age {shown} on {at}", shown)


def pregnancy_start(ctx: FactContext, at: dt.date, inputs, params) -> Fact:
    ga = ctx.fact(inputs["gestation"], at)
    if not ga.known:
        return Fact(ga.status, note=ga.note)
    start = at - dt.timedelta(days=ga.value)
    return Fact("known", start, ga.evidence, f"pregnancy began about {start}")


def eligible_date(ctx: FactContext, at: dt.date, inputs, params) -> Fact:
    """The date gestation reaches ``params.days``; the as-of date itself once it is reached."""
    ga = ctx.fact(inputs["gestation"], at)
    target = int(params["days"])
    if not ga.known:
        return Fact(ga.status, note=ga.note)
    if ga.value >= target:
        return Fact("known", at, ga.evidence)
    when = gestation.date_reaching(at, ga.value, target)
    return Fact("known", when, ga.evidence, f"{gestation.weeks_days(target)} on {when}")


def _prepare_counts(params: dict) -> dict:
    return {**params, "counts": tuple((codes, pregnancy.parse_count(n)) for codes, n in params["counts"])}


def _count_of(item, counts):
    """The fetus count a multiple-gestation Condition states (the first set its code is in)."""
    return next((n for codes, n in counts if codes.matches_concept(item.resource.get("code"))), None)


def fetus_count(ctx: FactContext, at: dt.date, inputs, params) -> Fact:
    observations, conditions = ctx.fact(inputs["observations"], at), ctx.fact(inputs["conditions"], at)
    if (unavailable := first_unavailable((observations, conditions))) is not None:
        return unavailable
    obs = [(i.reference, i.date, i.issued, i.value) for i in observations.value or ()]
    cond = [(i.reference, i.code, n) for i in conditions.value or () if not i.refuted
            and (n := _count_of(i, params["counts"])) is not None]
    counted = pregnancy.fetus_count(obs, cond)
    evidence = (Evidence(counted.reference, counted.reading),) if counted.reference else ()
    value = Interval(counted.low, counted.high)
    return Fact("known", value, evidence, counted.reading, str(value))


def _prepare_prior(params: dict) -> dict:
    return {**params, "marker": re.compile(params["marker"])}


def prior_screen(ctx: FactContext, at: dt.date, inputs, params) -> Fact:
    sources = [ctx.fact(inputs[role], ctx.today) for role in ("service_requests", "procedures", "reports")]
    if (unavailable := first_unavailable(sources)) is not None:
        return unavailable
    start = ctx.fact(inputs["start"], at)
    records = [(i.reference, i.date) for s in sources for i in s.value or ()
               if not _unlisted_without_marker(i.resource, params)]
    earlier = [d.reference for d in ctx.record.drafts
               if ctx.order and d.index < ctx.order.index and _is_screen(d.resource, ctx, params)]
    result, hits, note = pregnancy.prior_screen(records, start.value if start.known else None, ctx.today, earlier)
    evidence = tuple(Evidence(ref, "cfDNA screen", when.isoformat() if when else None) for ref, when in hits)
    return Fact("known", result, evidence, note)


def _unlisted_without_marker(resource: dict, params) -> bool:
    code = resource.get("code")
    if not params["unlisted"].matches_concept(code):
        return False
    return orders.text_matches(code, params["marker"]) is None


def _is_screen(resource: dict, ctx: FactContext, params) -> bool:
    if resource.get("resourceType") != "ServiceRequest":
        return False
    code = resource.get("code")
    if params["screens"].matches_concept(code):
        return True
    return bool(params["unlisted"].matches_concept(code)) and orders.text_matches(code, params["marker"]) is not None


# ------------------------------------------------------------------------------- orders
def order_codes(ctx: FactContext, at: dt.date, inputs, params) -> Fact:
    pairs = orders.order_codes(ctx.order.resource, ctx.record)
    if not pairs:
        return Fact("unknown", note="the order carries no code")
    return Fact("known", tuple(pairs), (Evidence(ctx.order.reference, display_codes(pairs)),))


def order_reason_codes(ctx: FactContext, at: dt.date, inputs, params) -> Fact:
    pairs, references = orders.reason_codes(ctx.order.resource, ctx.record)
    if not pairs:  # what the order says is known: it gives no reason
        return Fact("known", (), (Evidence(ctx.order.reference, "no reason stated"),), "the order states no reason")
    evidence = tuple(Evidence(r, "order reason") for r in references) or (
        Evidence(ctx.order.reference, "reasonCode " + display_codes(pairs)),)
    return Fact("known", tuple(pairs), evidence)


def _prepare_marker(params: dict) -> dict:
    return {**params, "pattern": re.compile(params["pattern"])}


def text_marker(ctx: FactContext, at: dt.date, inputs, params) -> Fact:
    """Whether the order's code text/display matches a pattern, or its reasons are in a code set."""
    order = ctx.order.resource
    text = orders.text_matches(orders.order_concepts(order, ctx.record), params["pattern"])
    if text:
        return Fact("known", True, (Evidence(ctx.order.reference, f"ordered as '{text}'"),))
    pairs, _ = orders.reason_codes(order, ctx.record)
    hits = [display_code(s, c) for s, c in pairs if params["reasons"].entry_for(s, c)]
    if hits:
        return Fact("known", True, (Evidence(ctx.order.reference, f"reason {hits[0]}"),))
    return Fact("known", False, note="neither the order text nor its reasons identify it")


def _prepare_pain(params: dict) -> dict:
    return {"sets": pain.PainCodeSets(*(params[k] for k in ("malignant", "nonmalignant", "neutral", "cancer")))}


def _prepare_routes(params: dict) -> dict:
    return {**params, "routes": params["routes"].exact_codes(SNOMED)}


def pain_origin(ctx: FactContext, at: dt.date, inputs, params) -> Fact:
    sets = params["sets"]
    reasons, _ = orders.reason_codes(ctx.order.resource, ctx.record)
    conditions = [r for r in pain.candidates(ctx.record, sets) if r.get("resourceType") == "Condition"]
    active = [(r, pair) for r in conditions if ctx.record.derived("state", r, condition_state, at) == "active"
              for pair in codings(r.get("code"))]
    origin, why = pain.pain_origin(reasons, [pair for _, pair in active], sets)
    if why.startswith("order reason"):
        shown = [written_code(ctx.order.resource.get("reasonCode"), c) for s, c in reasons if pain.relevant(s, c, sets)]
        evidence = (Evidence(ctx.order.reference, "reason " + ", ".join(shown)),)
    else:
        evidence = tuple(Evidence(reference_of(r) or "Condition", written_code(r.get("code"), c))
                         for r, (s, c) in active if pain.relevant(s, c, sets))
    unavailable = data_unavailable(ctx, "Condition")
    if origin == "unknown":
        return unavailable or Fact("unknown", None, evidence, why)
    return Fact("known", origin, evidence, why, origin)


# -------------------------------------------------------------------------------- opioids
def _medication_resolver(ctx: FactContext):
    def resolve(med_request: dict):
        return ctx.record.resolve(med_request.get("medicationReference"), med_request)
    return resolve


def opioid_trial_marker(ctx: FactContext, at: dt.date, inputs, params) -> Fact:
    tables, resolve = ctx.resources["mme"], _medication_resolver(ctx)
    neuraxial, products = params["routes"], params["products"]
    for draft in ctx.record.drafts:
        resource = draft.resource
        marked = products.matches_concept(orders.order_concepts(resource, ctx.record))
        if not marked and resource.get("resourceType") == "MedicationRequest":
            marked = bool(opioid_ingredients_neuraxial(resource, resolve, tables, neuraxial))
        if marked:
            return Fact("known", True, (Evidence(draft.reference, "intrathecal/epidural opioid ordered"),))
    return Fact("known", False, note="no intrathecal or epidural opioid among the draft orders")


def opioid_ingredients_neuraxial(resource, resolve, tables, routes) -> frozenset:
    if not (route_codes(resource) & routes):
        return frozenset()
    return opioid_ingredients(resource, resolve, tables)


def neuraxial_only_ingredient(ctx: FactContext, at: dt.date, inputs, params) -> Fact:
    """BEN-2: a neuraxial order for the ingredient and no neuraxial opioid among the drafts."""
    tables, resolve = ctx.resources["mme"], _medication_resolver(ctx)
    routes, ingredient = params["routes"], params["ingredient"]
    found = None
    for draft in ctx.record.drafts:
        resource = draft.resource
        if resource.get("resourceType") != "MedicationRequest" or not (route_codes(resource) & routes):
            continue
        if opioid_ingredients(resource, resolve, tables):
            return Fact("known", False, note="a neuraxial opioid is ordered too")
        if ingredient.matches_concept(orders.order_concepts(resource, ctx.record)):
            found = draft
    if found:
        return Fact("known", True, (Evidence(found.reference, "neuraxial order for an out-of-scope drug"),))
    return Fact("known", False)


def opioid_wean(ctx: FactContext, at: dt.date, inputs, params) -> Fact:
    unavailable = data_unavailable(ctx, "MedicationRequest") or data_unavailable(ctx, "MedicationStatement")
    requests = medications.history(ctx.record)  # D10: statements count as history too
    result = assess_wean(
        requests, _medication_resolver(ctx), at, ctx.resources["mme"],
        lookback_days=int(setting(ctx, params["lookback_days"])),
        default_supply_days=int(setting(ctx, params["default_supply_days"])),
    )
    if unavailable and result.result != "not-met":
        return unavailable
    evidence = tuple(Evidence(o.reference, o.arithmetic, o.start.isoformat() if o.start else None)
                     for o in result.orders)
    brief = ""
    if result.baseline is not None and result.current is not None:
        brief = f"{_number(result.current)} vs {_number(result.baseline)} MME/day"
    return Fact("known", result.result, evidence, result.note, brief)


def _number(value: float) -> str:
    return f"{round(value, 1):g}"


# --------------------------------------------------------------------------- params
class GestationParams(Params):
    unitless_weeks: ValueSetNames | None = None   # local codes whose readings without a unit are in weeks


class DaysParams(Params):
    days: int = Field(ge=0)


class CountParams(Params):
    counts: dict[str, int | str]   # value set -> fetus count it implies ("2", ">=3")


class PriorScreenParams(Params):
    marker: str                    # regex on an unlisted code's text that makes it a cfDNA screen
    screens: ValueSetNames
    unlisted: ValueSetNames


class MarkerParams(Params):
    pattern: str                   # regex on the order's text or display
    reasons: ValueSetNames


class PainParams(Params):
    malignant: ValueSetNames
    nonmalignant: ValueSetNames
    neutral: ValueSetNames
    cancer: ValueSetNames


class TrialMarkerParams(Params):
    routes: ValueSetNames
    products: ValueSetNames


class NeuraxialParams(Params):
    routes: ValueSetNames
    ingredient: ValueSetNames


class WeanParams(Params):
    lookback_days: SettingInt
    default_supply_days: SettingInt


CALCULATORS = (
    Calculator("patient_age", patient_age, resource_types=frozenset({"Patient"}), params=NoParams),
    Calculator("gestational_age", gestational_age, frozenset({"observations", "edd"}),
               code_params=frozenset({"unitless_weeks"}), quantity_inputs=frozenset({"observations"}),
               params=GestationParams),
    Calculator("pregnancy_start", pregnancy_start, frozenset({"gestation"}), params=NoParams),
    Calculator("date_reaching", eligible_date, frozenset({"gestation"}), params=DaysParams),
    Calculator("fetus_count", fetus_count, frozenset({"observations", "conditions"}), _prepare_counts,
               code_params=frozenset({"counts"}), params=CountParams),
    Calculator("prior_screen", prior_screen,
               frozenset({"service_requests", "procedures", "reports", "start"}), _prepare_prior,
               order_scoped=True, code_params=frozenset({"screens", "unlisted"}), params=PriorScreenParams),
    Calculator("order_codes", order_codes, order_scoped=True, params=NoParams),
    Calculator("order_reason_codes", order_reason_codes, order_scoped=True, params=NoParams),
    Calculator("text_marker", text_marker, prepare=_prepare_marker, order_scoped=True,
               code_params=frozenset({"reasons"}), params=MarkerParams),
    Calculator("pain_origin", pain_origin, prepare=_prepare_pain, order_scoped=True,
               resource_types=frozenset({"Condition"}),
               code_params=frozenset({"malignant", "nonmalignant", "neutral", "cancer"}), params=PainParams),
    Calculator("opioid_trial_marker", opioid_trial_marker, prepare=_prepare_routes, drafts_only=True,
               code_params=frozenset({"routes", "products"}), params=TrialMarkerParams),
    Calculator("neuraxial_only_ingredient", neuraxial_only_ingredient, prepare=_prepare_routes, drafts_only=True,
               code_params=frozenset({"routes", "ingredient"}), params=NeuraxialParams),
    Calculator("opioid_wean", opioid_wean, resource_types=frozenset({"MedicationRequest"}),
               optional_types=frozenset({"MedicationStatement"}), params=WeanParams),
)
