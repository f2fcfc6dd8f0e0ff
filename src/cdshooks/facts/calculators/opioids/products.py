"""Which opioid a medication is (D9): by RxNorm product code, by ingredient code, else by its name.

The product table (``data/rxnorm-opioid-products.tsv``) answers the commonest products without
reading any text.  Any other product — an RxNorm SCD/SBD/GPCK/BPCK we do not list, an NDC, a
local code — is identified from the RxNorm normalized name in ``coding.display`` / ``text``
(:mod:`cdshooks.fhir.rxnorm`): the opioid ingredient, its strength and the dose form, with the
name kept so the evidence can say the product was identified from it.  Results are memoised per
medication concept (the same concept is asked about by several facts in one call and in the next).
"""

from __future__ import annotations

import csv
import pathlib
import re
from dataclasses import dataclass
from typing import Any
from typing import Mapping

from cdshooks.facts.calculators.memo import remembered
from cdshooks.fhir.read import as_dict
from cdshooks.fhir.read import canonical_system
from cdshooks.fhir.read import codes_in
from cdshooks.fhir.read import objects
from cdshooks.fhir.rxnorm import DrugName
from cdshooks.fhir.rxnorm import normalize_strength
from cdshooks.fhir.rxnorm import parse_name

RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
NDC = "http://hl7.org/fhir/sid/ndc"
_COLUMNS = ("code", "ingredient", "strength", "dose_form", "name")
_STRENGTH = re.compile(r"^\s*(\d+(?:\.\d+)?|\.\d+)\s*(MG|MG/ML|MG/HR)\s*$")


@dataclass(frozen=True)
class OpioidProduct:
    """An opioid drug product: a row of the table, or what a drug name says."""

    code: str                    # RxNorm code ("" when read from a name without one)
    name: str
    ingredient: str              # RxNorm IN code of the opioid
    strength: float | None       # None when the name states none
    strength_unit: str           # "MG" (per unit), "MG/ML", "MG/HR" (or another unit read from a name)
    dose_form: str               # RxNorm dose form code ("" when unknown)
    dose_form_name: str


@dataclass(frozen=True)
class Drug:
    """The opioid of a medication, and the name it was identified from (None: by code)."""

    ingredient: str
    product: OpioidProduct | None
    from_name: str | None = None


@dataclass(frozen=True)
class OpioidProductTable:
    """The product rows, the dose forms, and the policy's flagged products."""

    products: Mapping[str, OpioidProduct]
    dose_forms: Mapping[str, str]          # code -> name
    always_excluded: frozenset[str]
    neuraxial_excluded: frozenset[str]
    hcpcs_system: str
    excluded_hcpcs: frozenset[str]


# --- loading -------------------------------------------------------------------------------------


def load_products(doc: dict, path: pathlib.Path, names: Mapping[str, str]) -> OpioidProductTable:
    """Build the table from the YAML document at ``path`` and the TSV it names."""
    dose_forms = {str(k): str(v) for k, v in _mapping(doc.get("dose_forms"), "dose_forms", path).items()}
    rows_file = doc.get("products_file")
    if not isinstance(rows_file, str) or not rows_file:
        raise ValueError(f"{path}: missing 'products_file'")
    products = _read_rows(path.parent / rows_file, names, dose_forms)
    hcpcs = as_dict(doc.get("excluded_hcpcs"))
    return OpioidProductTable(
        products=products,
        dose_forms=dose_forms,
        always_excluded=_flagged(doc, "always_excluded", products, path),
        neuraxial_excluded=_flagged(doc, "excluded_with_neuraxial_route", products, path),
        hcpcs_system=str(hcpcs.get("system", "")),
        excluded_hcpcs=frozenset(str(code) for code in hcpcs.get("codes") or ()),
    )


def _mapping(value: Any, key: str, path: pathlib.Path) -> dict:
    if not isinstance(value, dict) or not value:
        raise ValueError(f"{path}: '{key}' must map codes to names")
    return value


def _read_rows(path: pathlib.Path, names: Mapping[str, str], dose_forms: Mapping[str, str]) -> dict:
    """code -> OpioidProduct; every row must name a known opioid, a strength and a known dose form."""
    with open(path, encoding="utf-8", newline="") as handle:
        lines = [line for line in handle if line.strip() and not line.startswith("#")]
    reader = csv.DictReader(lines, delimiter="\t")
    if tuple(reader.fieldnames or ()) != _COLUMNS:
        raise ValueError(f"{path}: header must be {' '.join(_COLUMNS)}")
    products: dict[str, OpioidProduct] = {}
    for number, row in enumerate(reader, start=2):
        where = f"{path}: row {number}"
        match = _STRENGTH.match(row["strength"] or "")
        if match is None:
            raise ValueError(f"{where}: strength '{row['strength']}' is not like '5 MG', '1 MG/ML'")
        if row["ingredient"] not in names:
            raise ValueError(f"{where}: ingredient {row['ingredient']} has no MME factor entry")
        if row["dose_form"] not in dose_forms:
            raise ValueError(f"{where}: dose form {row['dose_form']} is not in dose_forms")
        if row["code"] in products:
            raise ValueError(f"{where}: code {row['code']} is listed twice")
        products[row["code"]] = OpioidProduct(row["code"], row["name"], row["ingredient"], float(match.group(1)),
                                        match.group(2), row["dose_form"], dose_forms[row["dose_form"]])
    return products


def _flagged(doc: dict, key: str, products: Mapping[str, OpioidProduct], path: pathlib.Path) -> frozenset:
    """A list of flagged product codes; each must be a row of the table."""
    value = doc.get(key)
    codes = frozenset(str(code) for code in (value if isinstance(value, list) else ()))
    unknown = sorted(codes - set(products))
    if unknown:
        raise ValueError(f"{path}: {key}: {', '.join(unknown)} not in products")
    return codes


# --- identification ------------------------------------------------------------------------------


def identify(concept: Any, tables) -> Drug | None:
    """The opioid a medication concept names: product code, ingredient code, else its name.

    ``tables`` is the MME tables object (products, ingredient names); results are memoised on it.
    """
    if not isinstance(concept, dict):
        return None
    return remembered(tables.identified, _signature(concept), lambda: _identify(concept, tables))


def _signature(concept: dict) -> tuple:
    parts = tuple((c.get("system"), c.get("code"), c.get("display")) for c in objects(concept.get("coding")))
    text = concept.get("text")
    return parts + ((text,) if isinstance(text, str) else ())


def _identify(concept: dict, tables) -> Drug | None:
    codes = rxnorm_codes(concept)
    for code in codes:
        if code in tables.products:
            return Drug(tables.products[code].ingredient, tables.products[code])
    ingredient = next((code for code in codes if code in tables.names), None)
    without_strength = None
    for text in name_candidates(concept):
        parsed = parse_name(text)
        drug = _from_name(parsed, text, codes, tables) if parsed is not None else None
        # A bare ingredient code says nothing of strength: a name of that ingredient can.
        if drug is None or ingredient not in (None, drug.ingredient):
            continue
        if drug.product.strength is not None:
            return drug
        without_strength = without_strength or drug
    if ingredient is not None:
        return Drug(ingredient, None)
    return without_strength


def rxnorm_codes(concept: dict) -> list[str]:
    return codes_in(concept, RXNORM)


def name_candidates(concept: dict) -> list[str]:
    """Names to read, most trustworthy first: RxNorm displays, NDC displays, other displays, text."""
    codings = objects(concept.get("coding"))
    ranked = sorted(codings, key=lambda c: {RXNORM: 0, NDC: 1}.get(canonical_system(c.get("system")), 2))
    names = [c["display"] for c in ranked if isinstance(c.get("display"), str) and c["display"].strip()]
    if isinstance(concept.get("text"), str) and concept["text"].strip():
        names.append(concept["text"])
    return list(dict.fromkeys(names))


def _from_name(parsed: DrugName, text: str, codes: list[str], tables) -> Drug | None:
    """The opioid of a parsed name; several components of one opioid (two salts) add up."""
    opioids = [c for c in parsed.components if c.base in tables.by_name]
    if not opioids:
        return None
    ingredients = {tables.by_name[c.base] for c in opioids}
    ingredient = sorted(ingredients)[0]
    # Two salts of one opioid add up; two different opioids in one product have no single strength.
    strength, unit = _strength(opioids) if len(ingredients) == 1 else (None, "")
    form_name = parsed.dose_form or ""
    dose_form = tables.dose_form_codes.get(form_name.lower(), "")
    product = OpioidProduct(codes[0] if codes else "", text, ingredient, strength, unit, dose_form, form_name)
    return Drug(ingredient, product, text)


def _strength(components) -> tuple[float | None, str]:
    units = {c.unit for c in components}
    if len(units) != 1 or any(c.strength is None for c in components):
        return None, ""
    total = sum(c.strength for c in components)
    return normalize_strength(total, units.pop())
