"""Which colony-stimulating factor a medication is (CSF spec §b, D9), and how to name it.

A product of the policy's drug list is recognised by code first (HCPCS, RxNorm ingredient or brand
codes), then by what its name says: an RxNorm normalized name (``filgrastim 0.3 MG/ML Injectable
Solution``, ``0.5 ML filgrastim-sndz 0.6 MG/ML Prefilled Syringe [Zarxio]``) gives the ingredient
and any brand, and free text is searched for the policy's brand and ingredient names.

The label says what the record says: the brand only when the record names the brand (an RxNorm
brand code, a ``[Brand]`` name, the brand written in text), otherwise the ingredient — a
filgrastim order is "filgrastim", not "Neupogen".  HCPCS descriptors name the ingredient first, so
an HCPCS code is labelled by its ingredient.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pydantic import Field

from cdshooks.facts.calculators import Params
from cdshooks.facts.calculators import ValueSetNames
from cdshooks.facts.calculators import orders
from cdshooks.facts.calculators.memo import remembered
from cdshooks.fhir.codes import CodeSet
from cdshooks.fhir.read import codings
from cdshooks.fhir.rxnorm import base_ingredient
from cdshooks.fhir.rxnorm import parse_name

# WHO INN stems of G-CSF (-grastim) and GM-CSF (-gramostim): a drug-list name with one of them
# names an ingredient; any other name (Neupogen, Stimufend, ...) is a brand.
_INGREDIENT_STEM = re.compile(r"gra+stim|gramostim", re.IGNORECASE)


@dataclass(frozen=True)
class CsfProduct:
    """One product of the policy's drug list (spec §b)."""

    brand: str
    ingredient: str
    family: str                      # FIL PEG SAR TBO EFL EFB
    codes: CodeSet                   # ingredient-level and HCPCS codes
    names: re.Pattern | None
    tokens: frozenset[str]           # lower-case names, family and codes, for the preferred list
    brand_codes: CodeSet             # RxNorm brand-name (BN) codes
    ingredient_names: frozenset[str]  # lower case: the ingredient and its spellings in the drug list
    brand_names: frozenset[str]       # lower case: the brand and its spellings


class CsfProductRow(Params):
    """A row of the drug list as the mapping writes it (``csf_product_table`` compiles it)."""

    brand: str = Field(min_length=1)
    ingredient: str = Field(min_length=1)
    family: str = Field(min_length=1)
    codes: ValueSetNames = []                 # ingredient-level and HCPCS codes
    brand_codes: ValueSetNames = []           # RxNorm brand-name (BN) codes
    names: list[str] = []                     # whole-word names in text, misspellings included


@dataclass(frozen=True)
class Found:
    """A product found in a medication, what identified it, and how to name it."""

    product: CsfProduct
    via: str                         # the code or the text that identified it
    label: str                       # the brand when the record names it, else the ingredient
    from_name: bool                  # identified from a name, not a code


class CsfProducts(tuple):
    """The drug list's products in order, with what :func:`identify` found per medication (``identified``)."""

    def __new__(cls, products=()):
        table = super().__new__(cls, products)
        table.identified = {}
        return table


def csf_product_table(rows: list[dict]) -> CsfProducts:
    """Compile the mapping's product rows: codes as code sets, names as one whole-word pattern."""
    products = []
    for row in rows:
        names = [str(n) for n in row.get("names", ())]
        # A name must not be part of a longer drug name: "filgrastim" is not "tbo-filgrastim",
        # "pegfilgrastim" or "filgrastim-sndz" (each has its own row).
        pattern = re.compile(r"(?<![a-z0-9-])(?:" + "|".join(re.escape(n) for n in names) + r")(?![a-z0-9-])",
                             re.IGNORECASE) if names else None
        codes, brand_codes = _code_set(row.get("codes")), _code_set(row.get("brand_codes"))
        brand, ingredient = str(row["brand"]), str(row["ingredient"])
        tokens = {brand, ingredient, str(row["family"]), *names, *(c.code for c in codes.include + brand_codes.include)}
        ingredient_names = {ingredient.lower(), *(n.lower() for n in names if _INGREDIENT_STEM.search(n))}
        brand_names = {brand.lower(), *(n.lower() for n in names if not _INGREDIENT_STEM.search(n))}
        products.append(CsfProduct(brand, ingredient, str(row["family"]), codes, pattern,
                                frozenset(t.lower() for t in tokens), brand_codes,
                                frozenset(ingredient_names), frozenset(brand_names)))
    return CsfProducts(products)


def _code_set(codes) -> CodeSet:
    """A row's codes: resolved from value-set names by the loader, or listed (``system|code``) in tests."""
    return codes if isinstance(codes, CodeSet) else CodeSet.of(str(c) for c in codes or ())


def identify(concepts, products: CsfProducts) -> Found | None:
    """The product a medication concept names: by code first (HCPCS, RxNorm), else by name."""
    pairs, texts = tuple(codings(concepts)), tuple(orders.texts(concepts))   # all it reads of them
    return remembered(products.identified, (pairs, texts),
                      lambda: _by_code(pairs, products) or _by_name(texts, products))


def _by_code(pairs, products) -> Found | None:
    for product in products:
        for system, code in pairs:
            if product.brand_codes.entry_for(system, code):
                return Found(product, code, product.brand, False)
            if product.codes.entry_for(system, code):
                return Found(product, code, product.ingredient, False)
    return None


def _by_name(texts: list[str], products) -> Found | None:
    for text in texts:
        found = _from_rxnorm_name(text, products)
        if found is not None:
            return found
    for product in products:
        for text in texts:
            match = product.names.search(text) if product.names is not None else None
            if match:
                named_brand = match.group(0).lower() in product.brand_names
                return Found(product, text, product.brand if named_brand else product.ingredient, True)
    return None


def _from_rxnorm_name(text: str, products) -> Found | None:
    """An RxNorm-style name: a ``[Brand]`` of the drug list decides, else the ingredient with a strength.

    ``filgrastim Prefilled Syringe [Granix]`` is Granix (tbo-filgrastim), not Neupogen.
    """
    parsed = parse_name(text)
    if parsed is None:
        return None
    brand = base_ingredient(parsed.brand) if parsed.brand else None
    if brand is not None:
        for product in products:
            if brand in product.brand_names:
                return Found(product, text, product.brand, True)
    if all(c.strength is None for c in parsed.components):
        return None  # free text ("Neulasta Onpro kit") is left to the name search
    for component in parsed.components:
        for product in products:
            if component.base in product.ingredient_names:
                return Found(product, text, product.ingredient, True)
    return None
