"""Oncology facts for colony-stimulating-factor orders (policy spec colony-stimulating-factors §b, §f).

The first half is pure logic (unit conversions, Cockcroft–Gault, BMI, the risk-factor rules of
f.2, the FN risk category of f.1, product identification of §b); the second half adapts it to
the fact context.  Nothing here raises on malformed FHIR: a value that cannot be read is skipped
or makes the fact unknown.  Three-valued results are the strings ``met`` / ``not-met`` /
``unknown`` (tested in the policy with ``result: true``).
"""

from __future__ import annotations

import datetime as dt
import math
import re
from dataclasses import dataclass
from dataclasses import field

from cdshooks.facts.calculators import Calculator
from cdshooks.facts.calculators import data_unavailable
from cdshooks.facts.calculators import first_unavailable
from cdshooks.facts.calculators import orders
from cdshooks.facts.calculators import setting
from cdshooks.facts.calculators.csf_products import Product
from cdshooks.facts.calculators.csf_products import identify
from cdshooks.facts.calculators.csf_products import product_table
from cdshooks.facts.facts import UNKNOWN
from cdshooks.facts.facts import Evidence
from cdshooks.facts.facts import Fact
from cdshooks.facts.facts import FactContext
from cdshooks.facts.facts import Interval
from cdshooks.facts.select import written_code
from cdshooks.fhir import medications
from cdshooks.fhir.dates import get_path
from cdshooks.fhir.dates import parse_date
from cdshooks.fhir.record import ICD10CM
from cdshooks.fhir.record import as_list
from cdshooks.fhir.record import codings
from cdshooks.fhir.record import normalize_code
from cdshooks.fhir.record import reference_of
from cdshooks.fhir.units import quantity_unit
from cdshooks.policy.answers import answers_for
from cdshooks.policy.logic import MET
from cdshooks.policy.logic import NOT_MET
from cdshooks.policy.logic import UNKNOWN as UNKNOWN_RESULT


# Unit factors to the unit each rule is written in (spec f.2). UCUM codes compare exactly; any
# other unit makes the reading unusable rather than guessed.
ANC_PER_UL = {"10*3/uL": 1000.0, "10^3/uL": 1000.0, "K/uL": 1000.0, "10*9/L": 1000.0,
              "/uL": 1.0, "/mm3": 1.0, "{cells}/uL": 1.0, "10*6/L": 1.0}
BILIRUBIN_MG_DL = {"mg/dL": 1.0, "umol/L": 1 / 17.1}
CREATININE_MG_DL = {"mg/dL": 1.0, "umol/L": 1 / 88.4}
ALBUMIN_G_DL = {"g/dL": 1.0, "g/L": 0.1}
WEIGHT_KG = {"kg": 1.0, "[lb_av]": 0.45359237}
HEIGHT_M = {"cm": 0.01, "[in_i]": 0.0254, "m": 1.0}
CRCL_ML_MIN = {"mL/min": 1.0, "mL/min/{1.73_m2}": 1.0}   # normalised clearance is taken as is
BMI_KG_M2 = {"kg/m2": 1.0}
PERCENT = {"%": 1.0}
CATEGORIES = ("high", "intermediate", "low")


# =============================================================================== pure logic
def number(value) -> float | None:
    """A finite JSON number (booleans are not numbers here)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def quantity(resource: dict) -> tuple[float, str | None] | None:
    """(value, unit) of an Observation's valueQuantity (UCUM code, else unit) or valueInteger."""
    q = resource.get("valueQuantity")
    if isinstance(q, dict):
        value = number(q.get("value"))
        return (value, quantity_unit(q)) if value is not None else None
    value = number(resource.get("valueInteger"))
    return (value, None) if value is not None else None


def convert(reading: tuple[float, str | None] | None, factors: dict[str, float]) -> float | None:
    """A reading in the rule's unit, or None when its unit is not one the rule accepts."""
    if reading is None or reading[1] not in factors:
        return None
    return reading[0] * factors[reading[1]]


def cockcroft_gault(age: float, weight_kg: float, creatinine_mg_dl: float, sex: str | None) -> float | None:
    """Creatinine clearance in mL/min = (140 − age) × kg / (72 × SCr) × (0.85 if female)."""
    if creatinine_mg_dl <= 0 or weight_kg <= 0 or sex not in ("female", "male"):
        return None
    clearance = (140 - age) * weight_kg / (72 * creatinine_mg_dl)
    return clearance * 0.85 if sex == "female" else clearance


def body_mass_index(weight_kg: float, height_m: float) -> float | None:
    return weight_kg / (height_m * height_m) if weight_kg > 0 and height_m > 0 else None


def ecog_score(resource: dict, answers: dict[str, int]) -> int | None:
    """ECOG from valueInteger / valueQuantity.value, or a LOINC answer code (LA9622-7 = 0 …)."""
    reading = quantity(resource)
    if reading is not None:
        score = reading[0]
        return int(score) if score.is_integer() and 0 <= score <= 5 else None
    for _system, code in codings(resource.get("valueCodeableConcept")):
        if code in answers:
            return answers[code]
    return None


def risk_category(resource: dict, system: str) -> str | None:
    """f.1: high / intermediate / low from a coded value, or from a percentage (≥ 20, ≥ 10, < 10)."""
    for coded_system, code in codings(resource.get("valueCodeableConcept")):
        if coded_system == system and code in CATEGORIES:
            return code
    percent = convert(quantity(resource), PERCENT)
    if percent is None or percent < 0:
        return None
    return "high" if percent >= 20 else "intermediate" if percent >= 10 else "low"


def category_from_answers(answers: dict[str, bool]) -> tuple[str | None, str]:
    """f.1 step 2: the one category whose leaf was answered yes; several yes → none (conflict)."""
    chosen = [category for category, value in answers.items() if value]
    if len(chosen) == 1:
        return chosen[0], f"documented as {chosen[0]}"
    if chosen:
        return None, "documentation names several risk categories"
    return None, ""


def stage_result(texts: list[str], advanced: re.Pattern, early: re.Pattern) -> str | None:
    """One staging reading: met (stage IV / M1), not-met (stage 0–III / M0), None (unreadable)."""
    cleaned = [t.strip() for t in texts if t.strip()]
    if any(advanced.search(t) for t in cleaned):
        return MET
    if any(early.search(t) for t in cleaned):
        return NOT_MET
    return None


def icd_categories(codes) -> set[str]:
    """Distinct 3-character ICD-10-CM categories of normalized codes (``E119`` → ``E11``)."""
    return {code[:3] for code in codes if len(code) >= 3}


@dataclass(frozen=True)
class Dated:
    """A dated record (Condition or procedure/request), possibly refuted."""

    reference: str
    date: dt.date | None
    refuted: bool = False
    text: str = ""


def prior_febrile_neutropenia(episodes: list[Dated], neutropenia: list[Dated], fever: list[Dated],
                              cutoff: dt.date, pair_days: int) -> tuple[str | None, list[Dated]]:
    """F-PRIORFN: an FN episode (or neutropenia with fever ≤ pair_days apart) dated on or before cutoff.

    Refuted episodes alone are evidence of absence; a pair with a refuted member says nothing.
    Returns (met / not-met / None for no evidence, the records behind it).
    """
    dated = [e for e in episodes if not e.refuted and e.date and e.date <= cutoff]
    if dated:
        return MET, dated
    for n in neutropenia:
        for f in fever:
            if n.refuted or f.refuted or not (n.date and f.date) or max(n.date, f.date) > cutoff:
                continue
            if abs((n.date - f.date).days) <= pair_days:
                return MET, [n, f]
    refuted = [e for e in episodes if e.refuted]
    return (NOT_MET, refuted) if refuted else (None, [])


def latest_dated(records: list[Dated], cutoff: dt.date) -> Dated | None:
    """The latest non-refuted record dated on or before ``cutoff``."""
    dated = [r for r in records if not r.refuted and r.date and r.date <= cutoff]
    return max(dated, key=lambda r: (r.date, r.reference)) if dated else None


def in_window(when: dt.date | None, start: dt.date, end: dt.date) -> bool:
    return when is not None and start <= when <= end


# ------------------------------------------------------------------------------- products
@dataclass(frozen=True)
class Taken:
    """A CSF MedicationRequest of the record."""

    reference: str
    product: Product
    start: dt.date | None
    status: str
    label: str = ""            # what the record calls it (brand or ingredient, csf_products.Found.label)

    @property
    def name(self) -> str:
        return self.label or self.product.ingredient


def order_start(request: dict) -> dt.date | None:
    """Start of a MedicationRequest: first dosage's boundsPeriod.start, else authoredOn (spec c.2)."""
    dosage = as_list(request.get("dosageInstruction"))
    first = dosage[0] if dosage and isinstance(dosage[0], dict) else {}
    return parse_date(get_path(first, ("timing", "repeat", "boundsPeriod", "start"))) or \
        parse_date(request.get("authoredOn"))


def prophylaxis_gap(complication: dt.date, taken: list[Taken], window_days: int,
                    statuses: frozenset[str]) -> tuple[str, list[Taken]]:
    """A.b.c2: met when no CSF order started in [Dc − window, Dc]; not-met (with them) otherwise."""
    start = complication - dt.timedelta(days=window_days)
    hits = [t for t in taken if t.status in statuses and in_window(t.start, start, complication)]
    return (NOT_MET, hits) if hits else (MET, [])


def preferred_step(preferred: list[str], ordered: Product | None, taken: list[Taken], today: dt.date,
                   lookback_days: int, ordered_label: str = "") -> tuple[str, list[Taken], str]:
    """A.e: met when no preferred list is configured, the product is preferred, or one was tried.

    Otherwise unknown: trial and failure, contraindication or intolerance must be documented.
    """
    wanted = {p.strip().lower() for p in preferred if p.strip()}
    if not wanted:
        return MET, [], "no preferred-product list is configured, so step therapy does not apply"
    if ordered is not None and ordered.tokens & wanted:
        entry = next(p.strip() for p in preferred if p.strip().lower() in ordered.tokens)
        label = ordered_label or ordered.ingredient
        also = "" if label.lower() == entry.lower() else f" (ordered as {label})"
        return MET, [], f"{entry} is a preferred product{also}"
    since = today - dt.timedelta(days=lookback_days)
    tried = [t for t in taken if t.product.tokens & wanted and t.status not in ("entered-in-error", "cancelled")
             and in_window(t.start, since, today)]
    if tried:
        latest = max(tried, key=lambda t: (t.start, t.reference))
        return MET, tried, f"preferred product tried: {latest.name} from {latest.start}"
    return UNKNOWN_RESULT, [], f"no preferred product ({', '.join(preferred)}) ordered in the last {lookback_days} days"


# ============================================================================ adapters
def _inputs(ctx: FactContext, inputs, at: dt.date, *roles: str) -> tuple[list[Fact], Fact | None]:
    """The input facts and, if any of them could not be read, the first unavailable one."""
    facts = [ctx.fact(inputs[role], at) for role in roles]
    return facts, first_unavailable(facts)


def _items(fact: Fact) -> list:
    return list(fact.value or ()) if fact.known else []


@dataclass(frozen=True)
class _Reading:
    reference: str
    date: dt.date
    issued: str
    value: float             # in the rule's unit (for the risk category: its index)
    shown: str               # the value as recorded, for evidence
    resource: dict = field(compare=False, repr=False)   # the Observation itself (ids may be missing)


def _readings(fact: Fact, read, start: dt.date | None, end: dt.date) -> list[_Reading]:
    """Usable readings of a select fact's Observations dated in [start, end] (``read`` converts)."""
    out = []
    for item in _items(fact):
        if item.refuted or item.date is None or item.date > end or (start and item.date < start):
            continue
        resource = item.resource
        try:
            value = read(resource)
        except (TypeError, ValueError, ZeroDivisionError, AttributeError):
            value = None  # junk in a resource is an unusable reading, never an error
        if value is None:
            continue
        raw = quantity(resource)
        shown = f"{raw[0]:g} {raw[1] or ''}".strip() if raw else ""
        out.append(_Reading(item.reference, item.date, str(resource.get("issued", "")), value, shown, resource))
    return out


def _latest(readings: list[_Reading]) -> _Reading | None:
    """D4: greatest date, then later issued, then greater id."""
    return max(readings, key=lambda r: (r.date, r.issued, r.reference)) if readings else None


def _latest_in(fact: Fact, factors: dict[str, float], start: dt.date | None, end: dt.date) -> _Reading | None:
    """The latest usable quantity reading in [start, end], converted to the rule's unit."""
    return _latest(_readings(fact, lambda r: convert(quantity(r), factors), start, end))


def _evidence(reading: _Reading, label: str, value: str) -> Evidence:
    shown = f" ({reading.shown})" if reading.shown and reading.shown != value else ""
    return Evidence(reading.reference, f"{label} {value}{shown}", reading.date.isoformat())


def _fmt(value: float) -> str:
    return f"{round(value, 1):g}"


def _fmt2(value: float) -> str:
    return f"{round(value, 2):g}"


def _window_start(at: dt.date, days) -> dt.date | None:
    return at - dt.timedelta(days=int(days)) if days is not None else None


# ------------------------------------------------------------------------------ products
def _prepare_products(params: dict) -> dict:
    return {**params, "products": product_table(params["products"])}


def product_family(ctx: FactContext, at: dt.date, inputs, params) -> Fact:
    """The ordered product's family (FIL, PEG, SAR, TBO, EFL, EFB); brief = brand or ingredient as ordered."""
    concepts = orders.order_concepts(ctx.order.resource, ctx.record)
    found = identify(concepts, params["products"])
    if found is None:
        return Fact("unknown", note="the order names no product of the policy's drug list")
    evidence = Evidence(ctx.order.reference, _found_text(found))
    return Fact("known", found.product.family, (evidence,), brief=found.label)


def _found_text(found) -> str:
    """'Q5101 → filgrastim-sndz, family FIL' / 'identified from its name '…' → Zarxio (filgrastim-sndz), …'."""
    product = found.product
    named = found.label if found.label == product.ingredient else f"{found.label} ({product.ingredient})"
    via = f"identified from its name '{found.via}'" if found.from_name else found.via
    return f"{via} → {named}, family {product.family}"


def medication_history(ctx: FactContext, at: dt.date, inputs, params) -> Fact:
    """Every CSF MedicationRequest/MedicationStatement of the record (D10; not the draft orders)."""
    unavailable = data_unavailable(ctx, "MedicationRequest") or data_unavailable(ctx, "MedicationStatement")
    if unavailable:
        return unavailable
    taken = []
    for request, _ in medications.history(ctx.record, drafts=False):
        found = identify(orders.order_concepts(request, ctx.record), params["products"])
        if found is not None:
            status = request.get("status") if isinstance(request.get("status"), str) else ""
            reference = reference_of(request) or request["resourceType"]
            taken.append(Taken(reference, found.product, order_start(request), status, found.label))
    return Fact("known", tuple(taken), note=f"{len(taken)} CSF medication(s) on record")


def _taken_evidence(taken: list[Taken]) -> tuple[Evidence, ...]:
    return tuple(Evidence(t.reference, f"{t.name} ({t.status})", t.start.isoformat() if t.start else None)
                 for t in taken)


def preferred(ctx: FactContext, at: dt.date, inputs, params) -> Fact:
    """A.e preferred-product step (setting ``preferredProducts``)."""
    wanted = setting(ctx, params["preferred"])
    wanted = [wanted] if isinstance(wanted, str) else [str(w) for w in wanted or () if isinstance(w, str)]
    found = identify(orders.order_concepts(ctx.order.resource, ctx.record), params["products"])
    history = ctx.fact(inputs["history"], at)
    result, tried, note = preferred_step(wanted, found.product if found else None, _items(history), at,
                                         int(params.get("lookback_days", 365)), found.label if found else "")
    if result != MET and history.status == "unavailable":
        return history
    return Fact("known", result, _taken_evidence(tried), note)


def no_primary_prophylaxis(ctx: FactContext, at: dt.date, inputs, params) -> Fact:
    """A.b.c2: no CSF order started in the 21 days up to the neutropenic complication."""
    (complication, history), unavailable = _inputs(ctx, inputs, at, "complication", "history")
    if not complication.known or not isinstance(complication.value, dt.date):
        return unavailable or Fact("unknown", note="no dated neutropenic complication")
    if unavailable:
        return unavailable
    result, hits = prophylaxis_gap(complication.value, _items(history), int(params["window_days"]),
                                   frozenset(params["statuses"]))
    if hits:
        return Fact("known", result, _taken_evidence(hits), f"CSF ordered within {params['window_days']} days "
                    f"before the complication of {complication.value}")
    return Fact("known", result, complication.evidence,
                f"no CSF order in the {params['window_days']} days before {complication.value}")


# ------------------------------------------------------------------------ FN risk (f.1)
def fn_risk_category(ctx: FactContext, at: dt.date, inputs, params) -> Fact:
    """f.1: the latest risk Observation of the window, else the one category documented as true.

    Documentation is read here because the spec defines the category from either source: a
    "yes" to the intermediate leaf tells the high and low leaves they are not met. Several "yes"
    answers leave the category unknown.
    """
    observations = ctx.fact(inputs["observations"], at)
    # the reading's value is the category's index, so the latest usable Observation decides
    readings = _readings(observations, lambda r: _category_index(risk_category(r, params["system"])), None, at)
    best = _latest(readings)
    if best is not None:
        category = CATEGORIES[int(best.value)]
        return Fact("known", category, (_evidence(best, "regimen FN risk", category),), brief=category)
    answers = answers_for(params["questionnaire"], ctx.record)
    links = {category: answers.get(link) for category, link in params["documentation"].items()}
    category, note = category_from_answers({c: a.value for c, a in links.items() if a is not None})
    if category is not None:
        return Fact("known", category, (links[category].evidence,), note, category)
    if observations.status == "unavailable":
        return observations
    return Fact("unknown", note=note or "no regimen FN risk recorded")


def _category_index(category: str | None) -> int | None:
    return CATEGORIES.index(category) if category in CATEGORIES else None


# --------------------------------------------------------------------- labs (f.2)
@dataclass(frozen=True)
class Lab:
    factors: dict[str, float]     # unit -> factor to the unit the policy's thresholds are written in
    label: str
    unit: str                     # as shown after the value
    digits: int = 1


LABS = {"anc": Lab(ANC_PER_UL, "ANC", "/µL"), "bilirubin": Lab(BILIRUBIN_MG_DL, "bilirubin", " mg/dL", 2),
        "albumin": Lab(ALBUMIN_G_DL, "albumin", " g/dL")}


def latest_lab(ctx: FactContext, at: dt.date, inputs, params) -> Fact:
    """F-NEUT and the labs of F-LIVER, F-NUTR: the latest usable value in [at − days, at] (any date
    up to ``at`` without ``days``) in the unit the policy's threshold is written in."""
    lab = LABS[params["lab"]]
    observations = ctx.fact(inputs["observations"], at)
    best = _latest_in(observations, lab.factors, _window_start(at, params.get("days")), at)
    if best is None:
        within = f" in the last {params['days']} days" if params.get("days") is not None else ""
        return observations if observations.status == "unavailable" else Fact(
            "unknown", note=f"no usable {lab.label}{within}")
    shown = f"{round(best.value, lab.digits):g}{lab.unit}"
    return Fact("known", best.value, (_evidence(best, lab.label, shown),), f"{lab.label} {shown} on {best.date}",
                f"{lab.label} {shown}")


def ecog(ctx: FactContext, at: dt.date, inputs, params) -> Fact:
    """F-ECOG: the latest readable ECOG score of the window."""
    observations = ctx.fact(inputs["observations"], at)
    answers = {str(k): int(v) for k, v in params["answers"].items()}
    best = _latest(_readings(observations, lambda r: ecog_score(r, answers), None, at))
    if best is None:
        return observations if observations.status == "unavailable" else UNKNOWN
    score = int(best.value)
    return Fact("known", score, (Evidence(best.reference, f"ECOG {score}", best.date.isoformat()),),
                f"ECOG {score} on {best.date}", f"ECOG {score}")


def times_upper_limit(ctx: FactContext, at: dt.date, inputs, params) -> Fact:
    """F-LIVER's enzymes: the latest AST (or ALT) as a multiple of its own referenceRange.high."""
    observations = ctx.fact(inputs["observations"], at)
    enzyme = _latest(_readings(observations, lambda r: (quantity(r) or (None,))[0], None, at))
    label = params["label"]
    if enzyme is None:
        return observations if observations.status == "unavailable" else Fact("unknown", note=f"no {label}")
    high = _upper_limit(enzyme.resource)
    limit = f" (ULN {high:g})" if high is not None else " (no upper limit of normal)"
    evidence = (Evidence(enzyme.reference, f"{label} {enzyme.shown}{limit}", enzyme.date.isoformat()),)
    if high is None or high <= 0:
        return Fact("known", None, evidence, f"{label} without an upper limit of normal")
    times = enzyme.value / high
    return Fact("known", times, evidence, f"{label} {_fmt(times)} × ULN")


def _upper_limit(resource: dict) -> float | None:
    """referenceRange[0].high in the value's unit (a high in another unit is not comparable)."""
    ranges = as_list(resource.get("referenceRange"))
    high = ranges[0].get("high") if ranges and isinstance(ranges[0], dict) else None
    if not isinstance(high, dict):
        return None
    value = number(high.get("value"))
    reading = quantity(resource)
    high_unit = quantity_unit(high)
    if value is None or (high_unit and reading and reading[1] and high_unit != reading[1]):
        return None
    return value


def creatinine_clearance(ctx: FactContext, at: dt.date, inputs, params) -> Fact:
    """F-RENAL: latest measured clearance, else Cockcroft–Gault from creatinine, weight, age and sex."""
    (measured, creatinine, weight), unavailable = _inputs(ctx, inputs, at, "measured", "creatinine", "weight")
    best = _latest_in(measured, CRCL_ML_MIN, None, at)
    if best is not None:
        shown = f"{_fmt(best.value)} mL/min"
        return Fact("known", best.value, (_evidence(best, "creatinine clearance", shown),),
                    f"measured CrCl {shown}", f"CrCl {shown}")
    scr = _latest_in(creatinine, CREATININE_MG_DL, None, at)
    kg = _latest_in(weight, WEIGHT_KG, None, at)
    age = ctx.fact(inputs["age"], at)
    patient = ctx.record.patient or {}
    sex = patient.get("gender") if isinstance(patient.get("gender"), str) else None
    if scr is None or kg is None or not age.known:
        return unavailable or Fact("unknown", note="no measured clearance; creatinine, weight or age missing")
    low, high = (age.value.low, age.value.high) if isinstance(age.value, Interval) else (age.value, age.value)
    youngest = cockcroft_gault(low, kg.value, scr.value, sex)
    oldest = cockcroft_gault(high, kg.value, scr.value, sex)
    evidence = (_evidence(scr, "creatinine", f"{_fmt2(scr.value)} mg/dL"),
                _evidence(kg, "weight", f"{_fmt(kg.value)} kg"))
    if youngest is None or oldest is None:
        return Fact("known", None, evidence, "Cockcroft–Gault needs sex recorded as female or male")
    value = oldest if oldest == youngest else Interval(oldest, youngest)
    shown = f"{value if isinstance(value, Interval) else _fmt(value)} mL/min"
    return Fact("known", value, evidence, f"Cockcroft–Gault CrCl {shown} ({sex}, age {age.value})", f"CrCl {shown}")


def bmi(ctx: FactContext, at: dt.date, inputs, params) -> Fact:
    """F-NUTR's BMI: the latest recorded (90 days), else the latest weight / height²."""
    (index, weight, height), unavailable = _inputs(ctx, inputs, at, "bmi", "weight", "height")
    recorded = _latest_in(index, BMI_KG_M2, None, at)
    if recorded is not None:
        value, evidence = recorded.value, (_evidence(recorded, "BMI", f"{_fmt(recorded.value)} kg/m2"),)
    else:
        kg = _latest_in(weight, WEIGHT_KG, None, at)
        metres = _latest_in(height, HEIGHT_M, None, at)
        value = body_mass_index(kg.value, metres.value) if kg and metres else None
        if value is None:
            return unavailable or Fact("unknown", note="no BMI")
        evidence = (_evidence(kg, "weight", f"{_fmt(kg.value)} kg"), _evidence(metres, "height", f"{_fmt2(metres.value)} m"))
    return Fact("known", value, evidence, f"BMI {_fmt(value)}")


# ------------------------------------------------------------------ diagnoses (f.2)
def _dated(fact: Fact) -> list[Dated]:
    return [Dated(i.reference, i.date, i.refuted, " ".join(p for p in (i.code, i.display) if p)) for i in _items(fact)]


def _dated_evidence(records: list[Dated]) -> tuple[Evidence, ...]:
    return tuple(Evidence(r.reference, r.text + (" (refuted)" if r.refuted else ""),
                          r.date.isoformat() if r.date else None) for r in records)


def prior_fn(ctx: FactContext, at: dt.date, inputs, params) -> Fact:
    """F-PRIORFN: a febrile-neutropenia episode dated at least ``before_days`` before T."""
    (episodes, neutropenia, fever), unavailable = _inputs(ctx, inputs, at, "episodes", "neutropenia", "fever")
    cutoff = at - dt.timedelta(days=int(params["before_days"]))
    result, records = prior_febrile_neutropenia(_dated(episodes), _dated(neutropenia), _dated(fever), cutoff,
                                                int(params["pair_days"]))
    if result is None or (unavailable and result != MET):
        return unavailable or UNKNOWN
    note = "prior febrile neutropenia" if result == MET else "febrile neutropenia refuted"
    return Fact("known", result, _dated_evidence(records), note)


def latest_before(ctx: FactContext, at: dt.date, inputs, params) -> Fact:
    """Date of the latest non-refuted matching Condition dated at least ``before_days`` before T."""
    conditions = ctx.fact(inputs["conditions"], at)
    found = latest_dated(_dated(conditions), at - dt.timedelta(days=int(params["before_days"])))
    if found is None:
        return conditions if conditions.status == "unavailable" else UNKNOWN
    return Fact("known", found.date, _dated_evidence([found]), f"latest on {found.date}")


def _prepare_malignancy(params: dict) -> dict:
    return {key: params[key] for key in ("cancer", "myeloid", "ambiguous")}


def malignancy(ctx: FactContext, at: dt.date, inputs, params) -> Fact:
    """A.a.i: met for a non-myeloid malignancy; not-met when every active malignancy is myeloid.

    C95 (leukaemia of unspecified cell type) decides nothing; only refuted cancers are evidence
    of absence.
    """
    conditions, reasons = ctx.fact(inputs["conditions"], at), ctx.fact(inputs["reasons"], at)
    found = {"non-myeloid": [], "myeloid": [], "ambiguous": [], "refuted": []}
    entries = [(i.refuted, i.entry.system if i.entry else "", i.code, i.evidence()) for i in _items(conditions)]
    reason_concept = ctx.order.resource.get("reasonCode")
    entries += [(False, s, c, Evidence(ctx.order.reference, f"order reason {written_code(reason_concept, c, s)}"))
                for s, c in (reasons.value if reasons.known else ())]
    for refuted, system, code, evidence in entries:
        kind = _malignancy_kind(system, normalize_code(system, code), params)
        if kind:
            found["refuted" if refuted else kind].append(evidence)
    if found["non-myeloid"]:
        return Fact("known", MET, tuple(found["non-myeloid"]), "non-myeloid malignancy", "non-myeloid")
    if found["ambiguous"]:
        return Fact("known", UNKNOWN_RESULT, tuple(found["ambiguous"] + found["myeloid"]),
                    "leukaemia of unspecified cell type")
    if found["myeloid"]:
        codes = ", ".join(e.value.split(" ")[0] for e in found["myeloid"])
        return Fact("known", NOT_MET, tuple(found["myeloid"]), "myeloid malignancy only", f"myeloid only: {codes}")
    if found["refuted"]:
        return Fact("known", NOT_MET, tuple(found["refuted"]), "malignancy refuted", "refuted")
    return conditions if conditions.status == "unavailable" else Fact("unknown", note="no malignancy recorded")


def _malignancy_kind(system: str, code: str, sets) -> str | None:
    if sets["myeloid"].entry_for(system, code):
        return "myeloid"
    if sets["ambiguous"].entry_for(system, code):
        return "ambiguous"
    return "non-myeloid" if sets["cancer"].entry_for(system, code) else None


def _prepare_advanced(params: dict) -> dict:
    return {**params, "advanced": re.compile(params["advanced"], re.IGNORECASE),
            "early": re.compile(params["early"], re.IGNORECASE)}


def advanced_cancer(ctx: FactContext, at: dt.date, inputs, params) -> Fact:
    """F-ADV: distant metastasis (C78, C79, C7B), else the latest stage group and M class.

    Stage IV or M1 → met; stage 0–III or M0 → not-met; a refuted metastasis alone → not-met.
    """
    (metastases, staging), unavailable = _inputs(ctx, inputs, at, "metastases", "staging")
    spread = _dated(metastases)
    live = [m for m in spread if not m.refuted]
    if live:
        return Fact("known", MET, _dated_evidence(live), "distant metastasis recorded", "metastatic")
    results, evidence = [], []
    for is_group in (True, False):  # latest stage group and latest M class, each on its own
        items = [i for i in _items(staging) if i.date and i.date <= at and
                 bool(params["stage_groups"].matches_concept(i.resource.get("code"))) == is_group]
        readings = [(i, stage_result(orders.texts(i.resource.get("valueCodeableConcept")) +
                                     [c for _, c in codings(i.resource.get("valueCodeableConcept"))],
                                     params["advanced"], params["early"])) for i in items]
        readings = [(i, r) for i, r in readings if r is not None]
        if readings:
            item, result = max(readings, key=lambda p: (p[0].date, str(p[0].resource.get("issued", "")),
                                                         p[0].reference))
            results.append(result)
            text = (orders.texts(item.resource.get("valueCodeableConcept")) or ["staged"])[0]
            evidence.append(Evidence(item.reference, f"{'stage' if is_group else 'M class'} {text}",
                                     item.date.isoformat()))
    if MET in results:
        return Fact("known", MET, tuple(evidence), "stage IV / M1", "stage IV")
    if results:
        return Fact("known", NOT_MET, tuple(evidence), "not stage IV / M1")
    if spread:
        return Fact("known", NOT_MET, _dated_evidence(spread), "metastasis refuted")
    return unavailable or UNKNOWN


def category_count(ctx: FactContext, at: dt.date, inputs, params) -> Fact:
    """F-CHRONIC: distinct ICD-10-CM categories among active chronic-condition Conditions."""
    conditions = ctx.fact(inputs["conditions"], at)
    if conditions.status == "unavailable":
        return conditions
    live = [i for i in _items(conditions) if not i.refuted]
    categories = icd_categories(normalize_code(ICD10CM, i.code) for i in live)
    evidence = tuple(Evidence(i.reference, " ".join(p for p in (i.code, i.display) if p)) for i in live)
    return Fact("known", len(categories), evidence, f"{len(categories)} chronic condition categories"
                + (f": {', '.join(sorted(categories))}" if categories else ""))


# ------------------------------------------------------------- procedures (spec c.4)
def _prepare_windows(params: dict) -> dict:
    return {key: (int(params[key][0]), int(params[key][1])) for key in ("done_days", "planned_days")}


def planned_or_done(ctx: FactContext, at: dt.date, inputs, params) -> Fact:
    """A procedure performed in its window, or a draft/active request planned in its window.

    A request's date is its occurrence; a request without one is planned now (it counts).
    """
    (procedures, requests), unavailable = _inputs(ctx, inputs, at, "procedures", "requests")
    done_from, done_to = (at + dt.timedelta(days=d) for d in params["done_days"])
    plan_from, plan_to = (at + dt.timedelta(days=d) for d in params["planned_days"])
    hits = [i.evidence() for i in _items(procedures) if in_window(i.date, done_from, done_to)]
    for item in _items(requests):
        when = _occurrence(item.resource)
        if when is None or plan_from <= when <= plan_to:
            hits.append(Evidence(item.reference, f"{item.code} {item.display}".strip() + " ordered",
                                 when.isoformat() if when else None))
    if hits:
        return Fact("known", True, tuple(hits))
    return unavailable or UNKNOWN


def _occurrence(request: dict) -> dt.date | None:
    value = request.get("occurrenceDateTime")
    if value is None:
        value = get_path(request, ("occurrencePeriod", "start"))
    return parse_date(value)


CALCULATORS = (
    Calculator("csf_product_family", product_family, prepare=_prepare_products, order_scoped=True,
               code_params=frozenset({"products"})),
    Calculator("csf_medication_history", medication_history, prepare=_prepare_products,
               resource_types=frozenset({"MedicationRequest"}), optional_types=frozenset({"MedicationStatement"}),
               code_params=frozenset({"products"})),
    Calculator("csf_preferred_step", preferred, frozenset({"history"}), _prepare_products, order_scoped=True,
               code_params=frozenset({"products"})),
    Calculator("csf_no_primary_prophylaxis", no_primary_prophylaxis, frozenset({"complication", "history"})),
    Calculator("csf_fn_risk_category", fn_risk_category, frozenset({"observations"}),
               resource_types=frozenset({"QuestionnaireResponse"})),
    Calculator("csf_latest_lab", latest_lab, frozenset({"observations"})),
    Calculator("csf_ecog", ecog, frozenset({"observations"})),
    Calculator("csf_times_upper_limit", times_upper_limit, frozenset({"observations"})),
    Calculator("csf_creatinine_clearance", creatinine_clearance, frozenset({"measured", "creatinine", "weight", "age"}),
               resource_types=frozenset({"Patient"})),
    Calculator("csf_bmi", bmi, frozenset({"bmi", "weight", "height"})),
    Calculator("csf_prior_fn", prior_fn, frozenset({"episodes", "neutropenia", "fever"})),
    Calculator("csf_latest_before", latest_before, frozenset({"conditions"})),
    Calculator("csf_malignancy", malignancy, frozenset({"conditions", "reasons"}), _prepare_malignancy,
               code_params=frozenset({"cancer", "myeloid", "ambiguous"})),
    Calculator("csf_advanced_cancer", advanced_cancer, frozenset({"metastases", "staging"}), _prepare_advanced,
               code_params=frozenset({"stage_groups"})),
    Calculator("csf_category_count", category_count, frozenset({"conditions"})),
    Calculator("csf_planned_or_done", planned_or_done, frozenset({"procedures", "requests"}), _prepare_windows),
)
