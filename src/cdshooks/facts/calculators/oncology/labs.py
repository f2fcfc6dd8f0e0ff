"""Labs and risk category for colony-stimulating-factor orders (spec f.1, f.2): values in the unit
the policy's thresholds are written in — the thresholds themselves are the policy's."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from cdshooks.facts.answers import answers_for
from cdshooks.facts.calculators import Calculator
from cdshooks.facts.calculators.oncology.readings import convert
from cdshooks.facts.calculators.oncology.readings import fmt
from cdshooks.facts.calculators.oncology.readings import fmt2
from cdshooks.facts.calculators.oncology.readings import inputs_of
from cdshooks.facts.calculators.oncology.readings import latest
from cdshooks.facts.calculators.oncology.readings import latest_in
from cdshooks.facts.calculators.oncology.readings import number
from cdshooks.facts.calculators.oncology.readings import quantity
from cdshooks.facts.calculators.oncology.readings import reading_evidence
from cdshooks.facts.calculators.oncology.readings import usable_readings
from cdshooks.facts.calculators.oncology.readings import window_start
from cdshooks.facts.facts import UNKNOWN
from cdshooks.facts.facts import Evidence
from cdshooks.facts.facts import Fact
from cdshooks.facts.facts import FactContext
from cdshooks.facts.facts import Interval
from cdshooks.fhir.record import as_list
from cdshooks.fhir.record import codings
from cdshooks.fhir.units import quantity_unit

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


def fn_risk_category(ctx: FactContext, at: dt.date, inputs, params) -> Fact:
    """f.1: the latest risk Observation of the window, else the one category documented as true.

    Documentation is read here because the spec defines the category from either source: a
    "yes" to the intermediate leaf tells the high and low leaves they are not met. Several "yes"
    answers leave the category unknown.
    """
    observations = ctx.fact(inputs["observations"], at)
    # the reading's value is the category's index, so the latest usable Observation decides
    readings = usable_readings(observations, lambda r: _category_index(risk_category(r, params["system"])), None, at)
    best = latest(readings)
    if best is not None:
        category = CATEGORIES[int(best.value)]
        return Fact("known", category, (reading_evidence(best, "regimen FN risk", category),), brief=category)
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
    best = latest_in(observations, lab.factors, window_start(at, params.get("days")), at)
    if best is None:
        within = f" in the last {params['days']} days" if params.get("days") is not None else ""
        return observations if observations.status == "unavailable" else Fact(
            "unknown", note=f"no usable {lab.label}{within}")
    shown = f"{round(best.value, lab.digits):g}{lab.unit}"
    return Fact("known", best.value, (reading_evidence(best, lab.label, shown),), f"{lab.label} {shown} on {best.date}",
                f"{lab.label} {shown}")


def ecog(ctx: FactContext, at: dt.date, inputs, params) -> Fact:
    """F-ECOG: the latest readable ECOG score of the window."""
    observations = ctx.fact(inputs["observations"], at)
    answers = {str(k): int(v) for k, v in params["answers"].items()}
    best = latest(usable_readings(observations, lambda r: ecog_score(r, answers), None, at))
    if best is None:
        return observations if observations.status == "unavailable" else UNKNOWN
    score = int(best.value)
    return Fact("known", score, (Evidence(best.reference, f"ECOG {score}", best.date.isoformat()),),
                f"ECOG {score} on {best.date}", f"ECOG {score}")


def times_upper_limit(ctx: FactContext, at: dt.date, inputs, params) -> Fact:
    """F-LIVER's enzymes: the latest AST (or ALT) as a multiple of its own referenceRange.high."""
    observations = ctx.fact(inputs["observations"], at)
    enzyme = latest(usable_readings(observations, lambda r: (quantity(r) or (None,))[0], None, at))
    label = params["label"]
    if enzyme is None:
        return observations if observations.status == "unavailable" else Fact("unknown", note=f"no {label}")
    high = _upper_limit(enzyme.resource)
    limit = f" (ULN {high:g})" if high is not None else " (no upper limit of normal)"
    evidence = (Evidence(enzyme.reference, f"{label} {enzyme.shown}{limit}", enzyme.date.isoformat()),)
    if high is None or high <= 0:
        return Fact("known", None, evidence, f"{label} without an upper limit of normal")
    times = enzyme.value / high
    return Fact("known", times, evidence, f"{label} {fmt(times)} × ULN")


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
    (measured, creatinine, weight), unavailable = inputs_of(ctx, inputs, at, "measured", "creatinine", "weight")
    best = latest_in(measured, CRCL_ML_MIN, None, at)
    if best is not None:
        shown = f"{fmt(best.value)} mL/min"
        return Fact("known", best.value, (reading_evidence(best, "creatinine clearance", shown),),
                    f"measured CrCl {shown}", f"CrCl {shown}")
    scr = latest_in(creatinine, CREATININE_MG_DL, None, at)
    kg = latest_in(weight, WEIGHT_KG, None, at)
    age = ctx.fact(inputs["age"], at)
    patient = ctx.record.patient or {}
    sex = patient.get("gender") if isinstance(patient.get("gender"), str) else None
    if scr is None or kg is None or not age.known:
        return unavailable or Fact("unknown", note="no measured clearance; creatinine, weight or age missing")
    low, high = (age.value.low, age.value.high) if isinstance(age.value, Interval) else (age.value, age.value)
    youngest = cockcroft_gault(low, kg.value, scr.value, sex)
    oldest = cockcroft_gault(high, kg.value, scr.value, sex)
    evidence = (reading_evidence(scr, "creatinine", f"{fmt2(scr.value)} mg/dL"),
                reading_evidence(kg, "weight", f"{fmt(kg.value)} kg"))
    if youngest is None or oldest is None:
        return Fact("known", None, evidence, "Cockcroft–Gault needs sex recorded as female or male")
    value = oldest if oldest == youngest else Interval(oldest, youngest)
    shown = f"{value if isinstance(value, Interval) else fmt(value)} mL/min"
    return Fact("known", value, evidence, f"Cockcroft–Gault CrCl {shown} ({sex}, age {age.value})", f"CrCl {shown}")


def bmi(ctx: FactContext, at: dt.date, inputs, params) -> Fact:
    """F-NUTR's BMI: the latest recorded (90 days), else the latest weight / height²."""
    (index, weight, height), unavailable = inputs_of(ctx, inputs, at, "bmi", "weight", "height")
    recorded = latest_in(index, BMI_KG_M2, None, at)
    if recorded is not None:
        value, evidence = recorded.value, (reading_evidence(recorded, "BMI", f"{fmt(recorded.value)} kg/m2"),)
    else:
        kg = latest_in(weight, WEIGHT_KG, None, at)
        metres = latest_in(height, HEIGHT_M, None, at)
        value = body_mass_index(kg.value, metres.value) if kg and metres else None
        if value is None:
            return unavailable or Fact("unknown", note="no BMI")
        evidence = (reading_evidence(kg, "weight", f"{fmt(kg.value)} kg"),
                    reading_evidence(metres, "height", f"{fmt2(metres.value)} m"))
    return Fact("known", value, evidence, f"BMI {fmt(value)}")


CALCULATORS = (
    Calculator("csf_fn_risk_category", fn_risk_category, frozenset({"observations"}),
               resource_types=frozenset({"QuestionnaireResponse"}), reads_answers="documentation"),
    Calculator("csf_latest_lab", latest_lab, frozenset({"observations"})),
    Calculator("csf_ecog", ecog, frozenset({"observations"})),
    Calculator("csf_times_upper_limit", times_upper_limit, frozenset({"observations"})),
    Calculator("csf_creatinine_clearance", creatinine_clearance, frozenset({"measured", "creatinine", "weight", "age"}),
               resource_types=frozenset({"Patient"})),
    Calculator("csf_bmi", bmi, frozenset({"bmi", "weight", "height"})),
)
