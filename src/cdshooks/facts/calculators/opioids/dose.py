"""One opioid order's MME/day: which opioid it is, its dose per day in mg (or mcg/h), times the factor.

A dose that cannot be read makes the order uncomputable, with the reason in its arithmetic text.
"""

from __future__ import annotations

import math
from typing import Callable

from cdshooks.facts.calculators.opioids.products import Drug
from cdshooks.facts.calculators.opioids.products import Product
from cdshooks.facts.calculators.opioids.products import identify
from cdshooks.facts.calculators.opioids.tables import MmeTables
from cdshooks.fhir import units
from cdshooks.fhir.read import as_dict
from cdshooks.fhir.read import as_list
from cdshooks.fhir.read import codes_in
from cdshooks.fhir.read import first
from cdshooks.fhir.read import objects
from cdshooks.fhir.read import positive
from cdshooks.fhir.units import quantity_unit

SNOMED = "http://snomed.info/sct"
GTS_ABBREVIATION = "http://terminology.hl7.org/CodeSystem/v3-GTSAbbreviation"

Resolver = Callable[[dict], dict | None]

_SECONDS_PER_DAY = 86400
_TIMING_CODES = {
    "QD": 1.0, "AM": 1.0, "PM": 1.0, "BID": 2.0, "TID": 3.0, "QID": 4.0,
    "Q4H": 6.0, "Q6H": 4.0, "Q8H": 3.0, "QOD": 0.5,
}
# Doses counted in units of the product (tablets, patches): converted with the product's strength.
_COUNT_UNITS = frozenset({
    "", "1", "{tbl}", "{tablet}", "{cap}", "{capsule}", "{patch}", "{pill}", "{each}",
    "tab", "tabs", "tablet", "tablets", "cap", "caps", "capsule", "capsules",
    "patch", "patches", "pill", "pills", "each",
})
_MCG_PER_HOUR_UNITS = frozenset({"ug/h", "mcg/h", "ug/hr", "mcg/hr"})


class Uncomputable(Exception):
    """Signal that an order has no computable MME/day; the message says why."""


# --- identification ------------------------------------------------------------------------------


def medication_concept(med_request: dict, resolve: Resolver) -> dict:
    """Return the D7 medication code: inline, else the resolved Medication's code."""
    concept = med_request.get("medicationCodeableConcept")
    if isinstance(concept, dict):
        return concept
    if not isinstance(med_request.get("medicationReference"), dict):
        return {}
    medication = resolve(med_request)
    return as_dict(as_dict(medication).get("code"))


def identified(med_request: dict, resolve: Resolver, tables: MmeTables) -> tuple[dict, Drug | None]:
    """The order's medication code (D7) and the opioid it names, if any."""
    concept = medication_concept(med_request, resolve)
    return concept, identify(concept, tables)


def opioid_ingredients(med_request: dict, resolve: Resolver, tables: MmeTables) -> frozenset[str]:
    """RxNorm ingredient codes of the opioids in the order (D7 code); empty if none.

    A product code gives its table row's opioid ingredient, else a bare ingredient code, else the
    product's name (D9).  Buprenorphine is included: callers looking for intrathecal trial markers
    need it.
    """
    if not isinstance(med_request, dict):
        return frozenset()
    _, drug = identified(med_request, resolve, tables)
    return frozenset({drug.ingredient}) if drug is not None else frozenset()


def route_codes(med_request: dict) -> frozenset[str]:
    """SNOMED codes of dosageInstruction[*].route (tolerate missing/odd shapes)."""
    if not isinstance(med_request, dict):
        return frozenset()
    return frozenset(code for d in objects(med_request.get("dosageInstruction"))
                     for code in codes_in(d.get("route"), SNOMED))


# --- one order's MME/day ------------------------------------------------------------------------


def daily_mme(
    med_request: dict, resolve: Resolver, tables: MmeTables
) -> tuple[float | None, str, str]:
    """Return (MME/day or None, ingredient name, arithmetic text) for one MedicationRequest."""
    if not isinstance(med_request, dict):
        return None, "", "not a MedicationRequest"
    _, drug = identified(med_request, resolve, tables)
    if drug is None:
        return None, "", "not an opioid of the product or ingredient table"
    return drug_mme(med_request, drug, tables)


def drug_mme(med_request: dict, drug: Drug, tables: MmeTables) -> tuple[float | None, str, str]:
    """Compute MME/day for an identified opioid, turning failures into an explanation."""
    name = tables.names[drug.ingredient]
    # D9: say when the product was recognised from its name rather than a known code.
    shown = name if drug.from_name is None else f"{name} (identified from its name '{drug.from_name}')"
    try:
        mme, arithmetic = _mme_arithmetic(med_request, drug, tables)
    except Uncomputable as reason:
        return None, name, f"{shown}: {reason}"
    return mme, name, f"{shown} {arithmetic}"


def _mme_arithmetic(med_request: dict, drug: Drug, tables: MmeTables) -> tuple[float, str]:
    """Return MME/day and its arithmetic (without the ingredient name)."""
    if drug.ingredient in tables.excluded_ingredients:
        raise Uncomputable("excluded from MME (partial agonist)")
    if drug.ingredient in tables.hourly_factors:
        return _hourly_arithmetic(med_request, drug, tables.hourly_factors[drug.ingredient])
    factor = tables.factors.get(drug.ingredient)
    if factor is None:
        raise Uncomputable(f"no conversion factor in {tables.version}")
    parts = [_entry_mg_per_day(entry, drug.product) for entry in _dosage_group(med_request)]
    mme = math.fsum(mg for mg, _ in parts) * factor
    return mme, f"{_joined(parts)} × {_num_text(factor)} = {mme_text(mme)}"


def _hourly_arithmetic(
    med_request: dict, drug: Drug, hourly: tuple[float, str]
) -> tuple[float, str]:
    """Return MME/day of a continuous-release patch order (mcg/h x factor)."""
    factor, dose_form = hourly
    # A name with a per-hour strength but an unknown dose form ("25 MCG/HR patch") is a patch.
    unnamed_patch = drug.product is not None and not drug.product.dose_form and drug.product.strength_unit == "MG/HR"
    if drug.product is not None and drug.product.dose_form != dose_form and not unnamed_patch:
        form = drug.product.dose_form_name or drug.product.dose_form
        raise Uncomputable(f"no conversion factor for {form}")
    # Patches are worn continuously: with no dosage at all the order still means one patch.
    dosed = objects(med_request.get("dosageInstruction")) or drug.product is None
    entries = _dosage_group(med_request) if dosed else [{}]
    parts = [_entry_mcg_per_hour(entry, drug.product) for entry in entries]
    mme = math.fsum(mcg for mcg, _ in parts) * factor
    return mme, f"{_joined(parts)} × {_num_text(factor)} = {mme_text(mme)}"


def _dosage_group(med_request: dict) -> list[dict]:
    """Return the dosage entries to sum; different sequence values cannot be summed."""
    entries = objects(med_request.get("dosageInstruction"))
    if not entries:
        raise Uncomputable("no computable dose (no dosageInstruction)")
    sequences = {s for s in (e.get("sequence") for e in entries) if isinstance(s, (int, str))}
    if len(sequences) > 1:
        raise Uncomputable("no computable dose (dosage instructions in different sequences)")
    return entries


def _dose_quantity(entry: dict) -> dict | None:
    """Return the dose per administration (doseRange: its high end); None if no dose given."""
    dose_and_rate = first(entry.get("doseAndRate"))
    if dose_and_rate.get("doseQuantity") is not None:
        return as_dict(dose_and_rate["doseQuantity"])
    if dose_and_rate.get("doseRange") is not None:
        high = as_dict(dose_and_rate["doseRange"]).get("high")
        if high is None:
            raise Uncomputable("no computable dose (dose range without high)")
        return as_dict(high)
    if entry.get("doseQuantity") is not None:  # STU3 Dosage shape
        return as_dict(entry["doseQuantity"])
    return None


def _unit(quantity: dict) -> str:
    """A Quantity's unit (UCUM code first), lower-cased for comparison; '' when it has none."""
    return (quantity_unit(quantity) or "").lower()


def _entry_mg_per_day(entry: dict, product: Product | None) -> tuple[float, str]:
    """Return mg/day of one dosage entry: dose x administrations/day, capped by maxDosePerPeriod."""
    quantity = _dose_quantity(entry)
    per_day = _administrations_per_day(as_dict(entry.get("timing")))
    cap = _cap_mg_per_day(entry.get("maxDosePerPeriod"), product)
    if quantity is None or per_day is None:
        if cap is None:
            raise Uncomputable(f"no computable dose ({_missing(entry, quantity, per_day)})")
        # Without dose or timing the stated maximum is the most the order allows.
        return cap, f"max {_num_text(cap)} mg/day"
    dose_mg, dose_text = _dose_mg(quantity, product)
    if cap is not None and cap < dose_mg * per_day:
        return cap, f"max {_num_text(cap)} mg/day"
    return dose_mg * per_day, f"{dose_text} × {_num_text(per_day)}/day"


def _missing(entry: dict, quantity: dict | None, per_day: float | None) -> str:
    """Say which part of a dosage entry is missing."""
    if quantity is None and per_day is None:
        return "dosage text only" if entry.get("text") else "no dose and no timing"
    return "no dose quantity" if quantity is None else "no timing"


def _dose_mg(quantity: dict, product: Product | None) -> tuple[float, str]:
    """Convert an amount to mg using its unit and, for counts and mL, the product strength."""
    value = positive(quantity.get("value"))
    if value is None:
        raise Uncomputable("no computable dose (dose value is not a positive number)")
    unit = _unit(quantity)
    mg = units.convert(value, unit, "mg")
    if mg is not None:
        return mg, f"{_num_text(mg)} mg"
    if product is not None and product.strength is None and (unit in _COUNT_UNITS or unit == "ml"):
        raise Uncomputable(f"no computable dose ({_num_text(value)} '{unit}'; the product states no strength)")
    if unit in _COUNT_UNITS and product is not None and product.strength_unit == "MG":
        return value * product.strength, _times(value, f"{_num_text(product.strength)} mg")
    if unit == "ml" and product is not None and product.strength_unit == "MG/ML":
        mg_text = f"{_num_text(value)} mL × {_num_text(product.strength)} mg/mL"
        return value * product.strength, mg_text
    raise Uncomputable(f"no computable dose ({_num_text(value)} '{unit}' not convertible to mg)")


def _administrations_per_day(timing: dict) -> float | None:
    """Return administrations/day from timing.repeat, timeOfDay or timing.code; None if absent."""
    repeat = as_dict(timing.get("repeat"))
    if repeat.get("period") is not None:
        return _repeat_per_day(repeat)
    times_of_day = [t for t in as_list(repeat.get("timeOfDay")) if isinstance(t, str)]
    if times_of_day:
        return float(len(times_of_day))
    # Sandboxes often send "BID" without a system; the abbreviations are unambiguous.
    codes = codes_in(timing.get("code"), GTS_ABBREVIATION) + codes_in(timing.get("code"), None)
    for code in codes:
        if code.upper() in _TIMING_CODES:
            return _TIMING_CODES[code.upper()]
    return None


def _repeat_per_day(repeat: dict) -> float:
    """Return (frequencyMax ?? frequency ?? 1) per period, scaled to one day."""
    period = positive(repeat.get("period"))
    seconds = units.seconds(repeat.get("periodUnit"))
    raw_frequency = next(
        (f for f in (repeat.get("frequencyMax"), repeat.get("frequency")) if f is not None), 1
    )
    frequency = positive(raw_frequency)
    if period is None or seconds is None or frequency is None:
        raise Uncomputable("no computable dose (unreadable timing.repeat)")
    return frequency * _SECONDS_PER_DAY / (period * seconds)


def _cap_mg_per_day(ratio, product: Product | None) -> float | None:
    """Return maxDosePerPeriod scaled to mg/day; None when absent."""
    if ratio is None:
        return None
    ratio = first(ratio)  # R5 made it an array
    denominator = as_dict(ratio.get("denominator"))
    length = positive(denominator.get("value"))
    seconds = units.seconds(denominator.get("code") or denominator.get("unit"))
    try:
        amount_mg, _ = _dose_mg(as_dict(ratio.get("numerator")), product)
    except Uncomputable:
        amount_mg = None
    if amount_mg is None or length is None or seconds is None:
        raise Uncomputable("no computable dose (unreadable maxDosePerPeriod)")
    return amount_mg * _SECONDS_PER_DAY / (length * seconds)


def _entry_mcg_per_hour(entry: dict, product: Product | None) -> tuple[float, str]:
    """Return mcg/h of one patch entry: strength x patches, or a dose given directly in mcg/h."""
    quantity = _dose_quantity(entry)
    if quantity is None and product is not None:
        quantity = {"value": 1}
    value = positive(as_dict(quantity).get("value"))
    if value is None:
        raise Uncomputable("no computable dose (no patch count or mcg/h dose)")
    unit = _unit(as_dict(quantity))
    if unit in _MCG_PER_HOUR_UNITS:
        return value, f"{_num_text(value)} mcg/h"
    if unit in _COUNT_UNITS and product is not None and product.strength_unit == "MG/HR" and product.strength:
        mcg = product.strength * 1000
        return value * mcg, _times(value, f"{_num_text(mcg)} mcg/h")
    raise Uncomputable(f"no computable dose ({_num_text(value)} '{unit}' is not mcg/h or patches)")


# --- text ----------------------------------------------------------------------------------------


def _joined(parts: list[tuple[float, str]]) -> str:
    """Join per-entry arithmetic, bracketing a sum."""
    texts = [text for _, text in parts]
    return texts[0] if len(texts) == 1 else f"({' + '.join(texts)})"


def _times(count: float, text: str) -> str:
    """Prefix a per-unit amount with its count unless the count is 1."""
    return text if count == 1 else f"{_num_text(count)} × {text}"


def _num_text(value: float) -> str:
    """Format an intermediate number with up to 4 decimals, no trailing zeros."""
    return f"{value:.4f}".rstrip("0").rstrip(".")


def mme_text(value: float) -> str:
    """Format an MME value to 0.1, dropping a trailing .0."""
    text = f"{value:.1f}"
    return text[:-2] if text.endswith(".0") else text
