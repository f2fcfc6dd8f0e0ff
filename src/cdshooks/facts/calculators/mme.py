"""Daily morphine milligram equivalents (MME) and the systemic-opioid wean test.

Implements spec/policies/intrathecal-pain-pump.md §f.1 (criterion I.A.2.g, facts
``opioids.daily_mme_baseline`` / ``opioids.daily_mme_current``) with the CDC 2022 factors
(``data/mme-factors-cdc-2022.yaml``) and the RxNorm product table
(``data/rxnorm-opioid-products.yaml`` / ``.tsv``):

1. identify the opioid (``opioid_products``): product row, else bare ingredient code, else the
   RxNorm normalized name in a display or text (D9); MedicationStatements arrive as orders (D10,
   ``mapping.medications``);
2. drop excluded orders (buprenorphine, intrathecal/epidural route, Infumorph, non-order intents,
   void statuses);
3. give each order an active interval ``[start, end)`` and an MME/day: dose x administrations/day
   (capped by maxDosePerPeriod) in mg x factor; fentanyl patches in mcg/h x 2.4;
4. baseline B = highest daily total over ``[R - lookback, R]``, current C = total on R;
   met when C <= 0.5 B, unknown whenever missing data could change the answer.

Malformed FHIR makes an order uncomputable; nothing here raises on request data.
"""

from __future__ import annotations

import math
import pathlib
from dataclasses import dataclass
from dataclasses import field
from datetime import date
from datetime import timedelta
from types import MappingProxyType
from typing import Any
from typing import Callable
from typing import Iterable
from typing import Literal
from typing import Mapping

import yaml

from cdshooks.facts.calculators.opioid_products import Drug
from cdshooks.facts.calculators.opioid_products import Product
from cdshooks.facts.calculators.opioid_products import identify
from cdshooks.facts.calculators.opioid_products import load_products
from cdshooks.fhir.record import canonical_system

RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
SNOMED = "http://snomed.info/sct"
GTS_ABBREVIATION = "http://terminology.hl7.org/CodeSystem/v3-GTSAbbreviation"
NEURAXIAL_ROUTES = frozenset({"72607000", "404820008"})  # intrathecal, epidural
DATA_DIR = pathlib.Path(__file__).resolve().parents[2] / "data"
FACTORS_FILE = "mme-factors-cdc-2022.yaml"
PRODUCTS_FILE = "rxnorm-opioid-products.yaml"

Resolver = Callable[[dict], dict | None]

_SECONDS_PER_DAY = 86400
_SECONDS = {"s": 1, "min": 60, "h": 3600, "d": 86400, "wk": 604800, "mo": 2592000, "a": 31536000}
_UNIT_ALIASES = {
    "sec": "s", "second": "s", "seconds": "s", "minute": "min", "minutes": "min",
    "hr": "h", "hour": "h", "hours": "h", "day": "d", "days": "d", "week": "wk", "weeks": "wk",
    "month": "mo", "months": "mo", "year": "a", "years": "a",
}
_SUPPLY_DAYS = {"d": 1, "wk": 7, "mo": 30}
_TIMING_CODES = {
    "QD": 1.0, "AM": 1.0, "PM": 1.0, "BID": 2.0, "TID": 3.0, "QID": 4.0,
    "Q4H": 6.0, "Q6H": 4.0, "Q8H": 3.0, "QOD": 0.5,
}
_MG_PER_UNIT = {"mg": 1.0, "ug": 0.001, "mcg": 0.001, "µg": 0.001, "g": 1000.0}
_COUNT_UNITS = frozenset({
    "", "1", "{tbl}", "{tablet}", "{cap}", "{capsule}", "{patch}", "{pill}", "{each}",
    "tab", "tabs", "tablet", "tablets", "cap", "caps", "capsule", "capsules",
    "patch", "patches", "pill", "pills", "each",
})
_MCG_PER_HOUR_UNITS = frozenset({"ug/h", "mcg/h", "ug/hr", "mcg/hr"})
_VOID_STATUSES = frozenset({"entered-in-error", "cancelled", "unknown"})
_NON_ORDER_INTENTS = frozenset({"proposal", "plan", "directive", "option"})
_BASELINE_STATUSES = frozenset({"active", "completed", "stopped", "on-hold"})
_OPEN_STATUSES = frozenset({"active", "draft"})
_DRAFT_ORDER_STATUSES = frozenset({None, "draft", "active"})
# Relative slack for the 50 % comparison: absorbs binary float noise (0.15 x 120 etc.) only.
_EPS = 1e-9


@dataclass(frozen=True)
class MmeTables:
    """Factor and product tables, loaded once at startup."""

    version: str
    source: str
    factors: Mapping[str, float]  # ingredient -> MME per mg/day
    hourly_factors: Mapping[str, tuple[float, str]]  # ingredient -> (MME per mcg/h, dose form)
    names: Mapping[str, str]  # every opioid ingredient code -> name
    no_factor: frozenset[str]
    excluded_ingredients: frozenset[str]
    products: Mapping[str, Product]
    always_excluded: frozenset[str]
    neuraxial_excluded: frozenset[str]
    hcpcs_system: str
    excluded_hcpcs: frozenset[str]
    by_name: Mapping[str, str] = field(default_factory=dict)  # ingredient name -> code
    dose_form_codes: Mapping[str, str] = field(default_factory=dict)  # lower-case name -> code
    # Memo of opioid_products.identify: medication concept signature -> Drug | None.
    identified: dict = field(default_factory=dict, compare=False, hash=False, repr=False)


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


class _Uncomputable(Exception):
    """Signal that an order has no computable MME/day; the message says why."""


# --- loading -------------------------------------------------------------------------------------


def load_mme_tables(data_dir: pathlib.Path | None = None) -> MmeTables:
    """Load the factor table and the RxNorm product table (default: the package's data/ folder)."""
    folder = pathlib.Path(data_dir) if data_dir is not None else DATA_DIR
    factor_path, product_path = folder / FACTORS_FILE, folder / PRODUCTS_FILE
    factor_doc, product_doc = _read_yaml(factor_path), _read_yaml(product_path)
    factors, hourly, names = _parse_factors(factor_doc, factor_path)
    no_factor = _name_map(factor_doc, "no_factor", factor_path)
    excluded = _name_map(factor_doc, "excluded", factor_path)
    names.update(no_factor)
    names.update(excluded)
    table = load_products(product_doc, product_path, names)
    return MmeTables(
        version=str(_required(factor_doc, "version", factor_path)),
        source=str(_required(factor_doc, "source", factor_path)),
        factors=MappingProxyType(factors),
        hourly_factors=MappingProxyType(hourly),
        names=MappingProxyType(names),
        no_factor=frozenset(no_factor),
        excluded_ingredients=frozenset(excluded),
        products=MappingProxyType(dict(table.products)),
        always_excluded=table.always_excluded,
        neuraxial_excluded=table.neuraxial_excluded,
        hcpcs_system=table.hcpcs_system,
        excluded_hcpcs=table.excluded_hcpcs,
        by_name=MappingProxyType({name.lower(): code for code, name in names.items()}),
        dose_form_codes=MappingProxyType({name.lower(): code for code, name in table.dose_forms.items()}),
    )


def _read_yaml(path: pathlib.Path) -> dict:
    """Read one YAML data file that must hold a mapping."""
    with open(path, encoding="utf-8") as handle:
        doc = yaml.safe_load(handle)
    if not isinstance(doc, dict):
        raise ValueError(f"{path}: expected a mapping at the top level")
    return doc


def _required(doc: dict, key: str, path: pathlib.Path) -> Any:
    """Return doc[key] or fail with the file name."""
    if doc.get(key) in (None, ""):
        raise ValueError(f"{path}: missing '{key}'")
    return doc[key]


def _parse_factors(doc: dict, path: pathlib.Path) -> tuple[dict, dict, dict]:
    """Split the factor rows into per-mg factors, per-mcg/h factors and ingredient names."""
    factors: dict[str, float] = {}
    hourly: dict[str, tuple[float, str]] = {}
    names: dict[str, str] = {}
    rows = _required(doc, "factors", path)
    for code, row in _as_dict(rows).items():
        row = _as_dict(row)
        factor = _positive(row.get("factor"))
        if not isinstance(row.get("name"), str) or factor is None:
            raise ValueError(f"{path}: factors.{code}: needs a name and a positive factor")
        names[str(code)] = row["name"]
        if row.get("per") == "mcg/h":
            if not row.get("dose_form"):
                raise ValueError(f"{path}: factors.{code}: a per-mcg/h factor needs dose_form")
            hourly[str(code)] = (factor, str(row["dose_form"]))
        else:
            factors[str(code)] = factor
    return factors, hourly, names


def _name_map(doc: dict, key: str, path: pathlib.Path) -> dict[str, str]:
    """Read a `code: name` section."""
    section = doc.get(key) or {}
    if not isinstance(section, dict):
        raise ValueError(f"{path}: '{key}' must map ingredient codes to names")
    return {str(code): str(name) for code, name in section.items()}


# --- tolerant readers ----------------------------------------------------------------------------


def _as_list(value: Any) -> list:
    """Read a FHIR array, accepting a lone object for it."""
    if isinstance(value, list):
        return value
    return [value] if isinstance(value, dict) else []


def _as_dict(value: Any) -> dict:
    """Read a FHIR object; anything else counts as empty."""
    return value if isinstance(value, dict) else {}


def _first(value: Any) -> dict:
    """Return element [0] of a FHIR array (or the lone object) if it is an object."""
    items = _as_list(value)
    return items[0] if items and isinstance(items[0], dict) else {}


def _text(value: Any) -> str | None:
    """Return a string field, or None for any other shape (lists are unhashable)."""
    return value if isinstance(value, str) else None


def _positive(value: Any) -> float | None:
    """Return a positive finite JSON number; strings and booleans do not count."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        number = float(value)
    except OverflowError:  # JSON integers have no size limit
        return None
    return number if math.isfinite(number) and number > 0 else None


def _plus_days(day: date, days: float) -> date:
    """Add days to a date, saturating at date.max instead of overflowing."""
    try:
        return day + timedelta(days=days)
    except OverflowError:
        return date.max


def _codes(concept: Any, system: str | None) -> list[str]:
    """Codes of a CodeableConcept's codings in one system (None: codings without a system)."""
    codings = _as_list(_as_dict(concept).get("coding"))
    return [
        c["code"].strip()
        for c in codings
        if isinstance(c, dict) and canonical_system(c.get("system")) == system and isinstance(c.get("code"), str)
    ]


def _parse_date(value: Any) -> date | None:
    """Return the calendar date of a FHIR date/dateTime with day precision."""
    if not isinstance(value, str) or len(value) < 10:
        return None
    try:
        return date.fromisoformat(value[:10])
    except ValueError:
        return None


def _unit(quantity: dict) -> str:
    """Return a Quantity's unit (UCUM code first), lower-cased for comparison."""
    unit = _text(quantity.get("code")) or _text(quantity.get("unit")) or ""
    return unit.strip().lower()


def _time_unit(value: Any) -> str | None:
    """Normalise a UCUM time unit (or its spelled-out form) to s/min/h/d/wk/mo/a."""
    if not isinstance(value, str):
        return None
    unit = value.strip()
    return unit if unit in _SECONDS else _UNIT_ALIASES.get(unit.lower())


def _dosages(med_request: dict) -> list[dict]:
    """Return the dosageInstruction entries that are objects."""
    return [d for d in _as_list(med_request.get("dosageInstruction")) if isinstance(d, dict)]


# --- identification ------------------------------------------------------------------------------


def _medication_concept(med_request: dict, resolve: Resolver) -> dict:
    """Return the D7 medication code: inline, else the resolved Medication's code."""
    concept = med_request.get("medicationCodeableConcept")
    if isinstance(concept, dict):
        return concept
    if not isinstance(med_request.get("medicationReference"), dict):
        return {}
    medication = resolve(med_request)
    return _as_dict(_as_dict(medication).get("code"))


def opioid_ingredients(med_request: dict, resolve: Resolver, tables: MmeTables) -> frozenset[str]:
    """RxNorm ingredient codes of the opioids in the order (D7 code); empty if none.

    A product code gives its table row's opioid ingredient, else a bare ingredient code, else the
    product's name (D9).  Buprenorphine is included: callers looking for intrathecal trial markers
    need it.
    """
    if not isinstance(med_request, dict):
        return frozenset()
    drug = identify(_medication_concept(med_request, resolve), tables)
    return frozenset({drug.ingredient}) if drug is not None else frozenset()


def route_codes(med_request: dict) -> frozenset[str]:
    """SNOMED codes of dosageInstruction[*].route (tolerate missing/odd shapes)."""
    if not isinstance(med_request, dict):
        return frozenset()
    return frozenset(code for d in _dosages(med_request) for code in _codes(d.get("route"), SNOMED))


# --- one order's MME/day ------------------------------------------------------------------------


def daily_mme(
    med_request: dict, resolve: Resolver, tables: MmeTables
) -> tuple[float | None, str, str]:
    """Return (MME/day or None, ingredient name, arithmetic text) for one MedicationRequest."""
    if not isinstance(med_request, dict):
        return None, "", "not a MedicationRequest"
    drug = identify(_medication_concept(med_request, resolve), tables)
    if drug is None:
        return None, "", "not an opioid of the product or ingredient table"
    return _drug_mme(med_request, drug, tables)


def _drug_mme(med_request: dict, drug: Drug, tables: MmeTables) -> tuple[float | None, str, str]:
    """Compute MME/day for an identified opioid, turning failures into an explanation."""
    name = tables.names[drug.ingredient]
    # D9: say when the product was recognised from its name rather than a known code.
    shown = name if drug.from_name is None else f"{name} (identified from its name '{drug.from_name}')"
    try:
        mme, arithmetic = _mme_arithmetic(med_request, drug, tables)
    except _Uncomputable as reason:
        return None, name, f"{shown}: {reason}"
    return mme, name, f"{shown} {arithmetic}"


def _mme_arithmetic(med_request: dict, drug: Drug, tables: MmeTables) -> tuple[float, str]:
    """Return MME/day and its arithmetic (without the ingredient name)."""
    if drug.ingredient in tables.excluded_ingredients:
        raise _Uncomputable("excluded from MME (partial agonist)")
    if drug.ingredient in tables.hourly_factors:
        return _hourly_arithmetic(med_request, drug, tables.hourly_factors[drug.ingredient])
    factor = tables.factors.get(drug.ingredient)
    if factor is None:
        raise _Uncomputable(f"no conversion factor in {tables.version}")
    parts = [_entry_mg_per_day(entry, drug.product) for entry in _dosage_group(med_request)]
    mme = math.fsum(mg for mg, _ in parts) * factor
    return mme, f"{_joined(parts)} × {_num_text(factor)} = {_mme_text(mme)}"


def _hourly_arithmetic(
    med_request: dict, drug: Drug, hourly: tuple[float, str]
) -> tuple[float, str]:
    """Return MME/day of a continuous-release patch order (mcg/h x factor)."""
    factor, dose_form = hourly
    # A name with a per-hour strength but an unknown dose form ("25 MCG/HR patch") is a patch.
    unnamed_patch = drug.product is not None and not drug.product.dose_form and drug.product.strength_unit == "MG/HR"
    if drug.product is not None and drug.product.dose_form != dose_form and not unnamed_patch:
        form = drug.product.dose_form_name or drug.product.dose_form
        raise _Uncomputable(f"no conversion factor for {form}")
    # Patches are worn continuously: with no dosage at all the order still means one patch.
    entries = _dosage_group(med_request) if _dosages(med_request) or drug.product is None else [{}]
    parts = [_entry_mcg_per_hour(entry, drug.product) for entry in entries]
    mme = math.fsum(mcg for mcg, _ in parts) * factor
    return mme, f"{_joined(parts)} × {_num_text(factor)} = {_mme_text(mme)}"


def _dosage_group(med_request: dict) -> list[dict]:
    """Return the dosage entries to sum; different sequence values cannot be summed."""
    entries = _dosages(med_request)
    if not entries:
        raise _Uncomputable("no computable dose (no dosageInstruction)")
    sequences = {s for s in (e.get("sequence") for e in entries) if isinstance(s, (int, str))}
    if len(sequences) > 1:
        raise _Uncomputable("no computable dose (dosage instructions in different sequences)")
    return entries


def _dose_quantity(entry: dict) -> dict | None:
    """Return the dose per administration (doseRange: its high end); None if no dose given."""
    first = _first(entry.get("doseAndRate"))
    if first.get("doseQuantity") is not None:
        return _as_dict(first["doseQuantity"])
    if first.get("doseRange") is not None:
        high = _as_dict(first["doseRange"]).get("high")
        if high is None:
            raise _Uncomputable("no computable dose (dose range without high)")
        return _as_dict(high)
    if entry.get("doseQuantity") is not None:  # STU3 Dosage shape
        return _as_dict(entry["doseQuantity"])
    return None


def _entry_mg_per_day(entry: dict, product: Product | None) -> tuple[float, str]:
    """Return mg/day of one dosage entry: dose x administrations/day, capped by maxDosePerPeriod."""
    quantity = _dose_quantity(entry)
    per_day = _administrations_per_day(_as_dict(entry.get("timing")))
    cap = _cap_mg_per_day(entry.get("maxDosePerPeriod"), product)
    if quantity is None or per_day is None:
        if cap is None:
            raise _Uncomputable(f"no computable dose ({_missing(entry, quantity, per_day)})")
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
    value = _positive(quantity.get("value"))
    if value is None:
        raise _Uncomputable("no computable dose (dose value is not a positive number)")
    unit = _unit(quantity)
    if unit in _MG_PER_UNIT:
        mg = value * _MG_PER_UNIT[unit]
        return mg, f"{_num_text(mg)} mg"
    if product is not None and product.strength is None and (unit in _COUNT_UNITS or unit == "ml"):
        raise _Uncomputable(f"no computable dose ({_num_text(value)} '{unit}'; the product states no strength)")
    if unit in _COUNT_UNITS and product is not None and product.strength_unit == "MG":
        return value * product.strength, _times(value, f"{_num_text(product.strength)} mg")
    if unit == "ml" and product is not None and product.strength_unit == "MG/ML":
        mg_text = f"{_num_text(value)} mL × {_num_text(product.strength)} mg/mL"
        return value * product.strength, mg_text
    raise _Uncomputable(f"no computable dose ({_num_text(value)} '{unit}' not convertible to mg)")


def _administrations_per_day(timing: dict) -> float | None:
    """Return administrations/day from timing.repeat, timeOfDay or timing.code; None if absent."""
    repeat = _as_dict(timing.get("repeat"))
    if repeat.get("period") is not None:
        return _repeat_per_day(repeat)
    times_of_day = [t for t in _as_list_of_any(repeat.get("timeOfDay")) if isinstance(t, str)]
    if times_of_day:
        return float(len(times_of_day))
    # Sandboxes often send "BID" without a system; the abbreviations are unambiguous.
    codes = _codes(timing.get("code"), GTS_ABBREVIATION) + _codes(timing.get("code"), None)
    for code in codes:
        if code.upper() in _TIMING_CODES:
            return _TIMING_CODES[code.upper()]
    return None


def _as_list_of_any(value: Any) -> list:
    """Read a FHIR array of primitives, accepting a lone value for it."""
    if isinstance(value, list):
        return value
    return [] if value is None else [value]


def _repeat_per_day(repeat: dict) -> float:
    """Return (frequencyMax ?? frequency ?? 1) per period, scaled to one day."""
    period = _positive(repeat.get("period"))
    seconds = _SECONDS.get(_time_unit(repeat.get("periodUnit")) or "")
    raw_frequency = next(
        (f for f in (repeat.get("frequencyMax"), repeat.get("frequency")) if f is not None), 1
    )
    frequency = _positive(raw_frequency)
    if period is None or seconds is None or frequency is None:
        raise _Uncomputable("no computable dose (unreadable timing.repeat)")
    return frequency * _SECONDS_PER_DAY / (period * seconds)


def _cap_mg_per_day(ratio: Any, product: Product | None) -> float | None:
    """Return maxDosePerPeriod scaled to mg/day; None when absent."""
    if ratio is None:
        return None
    ratio = _first(ratio)  # R5 made it an array
    denominator = _as_dict(ratio.get("denominator"))
    length = _positive(denominator.get("value"))
    seconds = _SECONDS.get(_time_unit(denominator.get("code") or denominator.get("unit")) or "")
    try:
        amount_mg, _ = _dose_mg(_as_dict(ratio.get("numerator")), product)
    except _Uncomputable:
        amount_mg = None
    if amount_mg is None or length is None or seconds is None:
        raise _Uncomputable("no computable dose (unreadable maxDosePerPeriod)")
    return amount_mg * _SECONDS_PER_DAY / (length * seconds)


def _entry_mcg_per_hour(entry: dict, product: Product | None) -> tuple[float, str]:
    """Return mcg/h of one patch entry: strength x patches, or a dose given directly in mcg/h."""
    quantity = _dose_quantity(entry)
    if quantity is None and product is not None:
        quantity = {"value": 1}
    value = _positive(_as_dict(quantity).get("value"))
    if value is None:
        raise _Uncomputable("no computable dose (no patch count or mcg/h dose)")
    unit = _unit(_as_dict(quantity))
    if unit in _MCG_PER_HOUR_UNITS:
        return value, f"{_num_text(value)} mcg/h"
    if unit in _COUNT_UNITS and product is not None and product.strength_unit == "MG/HR" and product.strength:
        mcg = product.strength * 1000
        return value * mcg, _times(value, f"{_num_text(mcg)} mcg/h")
    raise _Uncomputable(f"no computable dose ({_num_text(value)} '{unit}' is not mcg/h or patches)")


# --- active interval -----------------------------------------------------------------------------


def _period_parts(med_request: dict) -> tuple[dict, dict, dict, dict]:
    """Return boundsPeriod, timing.repeat, dispenseRequest and validityPeriod as objects."""
    timing = _as_dict(_first(med_request.get("dosageInstruction")).get("timing"))
    repeat = _as_dict(timing.get("repeat"))
    dispense = _as_dict(med_request.get("dispenseRequest"))
    validity = _as_dict(dispense.get("validityPeriod"))
    return _as_dict(repeat.get("boundsPeriod")), repeat, dispense, validity


def active_interval(
    med_request: dict, open_ended: bool, default_supply_days: int
) -> tuple[date | None, date | None] | None:
    """Return [start, end) of the order; (None, None) = every day; None = ignored."""
    bounds, _, _, validity = _period_parts(med_request)
    candidates = (bounds.get("start"), med_request.get("authoredOn"), validity.get("start"))
    start = next((d for d in map(_parse_date, candidates) if d is not None), None)
    if start is None:
        return (None, None) if open_ended else None
    end = _explicit_end(start, med_request)
    if end is None and not open_ended:
        end = _plus_days(start, default_supply_days)
    return start, end


def _explicit_end(start: date, med_request: dict) -> date | None:
    """Return the first stated end: bounds end, supply x fills, boundsDuration, validity end."""
    bounds, repeat, dispense, validity = _period_parts(med_request)
    end = _parse_date(bounds.get("end"))
    if end is not None:
        return _plus_days(end, 1)
    supply = _duration_days(dispense.get("expectedSupplyDuration"))
    if supply is not None:
        fills = 1 + _repeats(dispense.get("numberOfRepeatsAllowed"))
        return _plus_days(start, supply * fills)
    duration = _duration_days(repeat.get("boundsDuration"))
    if duration is not None:
        return _plus_days(start, duration)
    end = _parse_date(validity.get("end"))
    return _plus_days(end, 1) if end is not None else None


def _duration_days(value: Any) -> int | None:
    """Return a Duration in whole days (d, wk = 7, mo = 30; part days count as a day)."""
    quantity = _as_dict(value)
    amount = _positive(quantity.get("value"))
    unit = _time_unit(quantity.get("code") or quantity.get("unit"))
    if amount is None or unit not in _SUPPLY_DAYS:
        return None
    return math.ceil(amount * _SUPPLY_DAYS[unit])


def _repeats(value: Any) -> int:
    """Return numberOfRepeatsAllowed, 0 when absent or malformed."""
    number = _positive(value)
    return int(number) if number is not None else 0


# --- the wean test -------------------------------------------------------------------------------


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
    concept = _medication_concept(med_request, resolve)
    drug = identify(concept, tables)
    if drug is None or _excluded(med_request, draft, drug, concept, tables):
        return None
    status = _text(med_request.get("status"))
    interval = active_interval(med_request, status in _OPEN_STATUSES or draft, default_supply_days)
    if interval is None or not _overlaps(interval, window):
        return None
    mme, name, arithmetic = _drug_mme(med_request, drug, tables)
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
    status = _text(med_request.get("status"))
    intent = _text(med_request.get("intent"))
    product = drug.product.code if drug.product is not None else None
    return (
        drug.ingredient in tables.excluded_ingredients
        or product in tables.always_excluded
        or bool(route_codes(med_request) & NEURAXIAL_ROUTES)
        or bool(tables.excluded_hcpcs.intersection(_codes(concept, tables.hcpcs_system)))
        or status in _VOID_STATUSES
        or (status == "draft" and not draft)
        or (intent in _NON_ORDER_INTENTS and not draft)
    )


def _reference(med_request: dict, position: int) -> str:
    """Return 'MedicationRequest/<id>' (or MedicationStatement), or a positional stand-in."""
    resource_id = _text(med_request.get("id"))
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
    text = f"baseline {_mme_text(baseline)} MME/day on {day}"
    if u_r or reduction is None:
        missing = "; ".join(f"{o.reference} ({o.arithmetic})" for o in orders if o.reference in u_r)
        return f"{text}; current unknown: {_mme_text(current)} MME/day computable, plus {missing}"
    text += f", current {_mme_text(current)} MME/day"
    if reduction < 0:
        text += f" ({_mme_text(-reduction * 100)} % increase; ≥ 50 % reduction required)"
    else:
        text += f" ({_mme_text(reduction * 100)} % reduction; ≥ 50 % required)"
    if u_past and current > 0.5 * baseline * (1 + _EPS):
        past = _count(len(u_past), "earlier order")
        text += f"; {past} with no computable dose could raise the baseline"
    return text


# --- text ----------------------------------------------------------------------------------------


def _joined(parts: list[tuple[float, str]]) -> str:
    """Join per-entry arithmetic, bracketing a sum."""
    texts = [text for _, text in parts]
    return texts[0] if len(texts) == 1 else f"({' + '.join(texts)})"


def _count(number: int, noun: str) -> str:
    """Write '1 order' / '2 orders'."""
    return f"{number} {noun}{'' if number == 1 else 's'}"


def _times(count: float, text: str) -> str:
    """Prefix a per-unit amount with its count unless the count is 1."""
    return text if count == 1 else f"{_num_text(count)} × {text}"


def _num_text(value: float) -> str:
    """Format an intermediate number with up to 4 decimals, no trailing zeros."""
    return f"{value:.4f}".rstrip("0").rstrip(".")


def _mme_text(value: float) -> str:
    """Format an MME value to 0.1, dropping a trailing .0."""
    text = f"{value:.1f}"
    return text[:-2] if text.endswith(".0") else text
