"""RxNorm normalized drug names read as data (D9): ingredients, strengths, dose form, brand.

RxNorm names its clinical and branded drugs by one grammar, and EHRs put those names in
``coding.display`` / ``text`` even when the code is one we do not know (or an NDC)::

    [quantity] [qualifier] [duration] ingredient strength unit [/ ingredient strength unit ...]
        dose form [Brand]                                   (SCD, SBD)
    {n (SCD) / m (SCD)} Pack [Brand]                        (GPCK, BPCK)

e.g. ``Hydrocodone Bitartrate 7.5 MG / Acetaminophen 325 MG Oral Tablet``,
``72 HR Fentanyl 0.025 MG/HR Transdermal System``, ``0.5 ML filgrastim-sndz 0.6 MG/ML Prefilled
Syringe [Zarxio]``.  Salts name the base ingredient (``Oxycodone Hydrochloride`` -> oxycodone);
tall-man lettering (``oxyCODONE``) and upper case are read case-insensitively.  Names outside the
grammar still give what can be read: ``Acetaminophen/Hydrocodone`` gives two ingredients without
strengths; a string with no ingredient-like part gives None.  Pure and memoised: the same
display string is parsed once per process.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

_NUMBER = r"(?:\d+(?:\.\d+)?|\.\d+)"
# Units RxNorm writes (and the MCG/UG spellings other systems use); a closed list keeps words
# such as "28 Day Pack" from being read as strengths.
_UNIT = (r"(?:MG|MCG|UG|µG|G|ML|UNT|UNITS?|MEQ|MMOL|NG|IU|%|ACTUAT|CELLS|BAU|PNU|AU)"
         r"(?:/(?:ML|HR|H|ACTUAT|MG|G|L|UNT|SQCM|24HR|DAY|D))?")
_COMPONENT = re.compile(
    rf"^(?P<name>.*?\S)\s*(?<![\d./])(?P<value>{_NUMBER})\s*(?P<unit>{_UNIT})(?=\s|$)\s*(?P<rest>.*)$",
    re.IGNORECASE)
_PREFIX = re.compile(
    rf"^(?:(?P<amount>{_NUMBER})\s*(?P<amount_unit>ML|ACTUAT|HR|MG|G|L)\b|(?P<qualifier>"
    r"Abuse-Deterrent|Matrix Delivery|Chewable|N?DA\d+|BLA\d+|ANDA\d+))\s+", re.IGNORECASE)
_BRAND = re.compile(r"\s*\[(?P<brand>[^\[\]]+)\]\s*$")
_SEGMENTS = re.compile(r"\s+/\s+")
_PACK = re.compile(r"^\{(?P<inner>.*)\}\s*Pack$", re.IGNORECASE | re.DOTALL)
_SPACES = re.compile(r"\s+")

# Salt and form words RxNorm appends to the base ingredient (precise ingredient names).
SALT_WORDS = frozenset({
    "hydrochloride", "hcl", "bitartrate", "sulfate", "phosphate", "tartrate", "citrate", "acetate",
    "maleate", "sodium", "potassium", "calcium", "magnesium", "succinate", "napsylate", "polistirex",
    "tannate", "terephthalate", "hydrobromide", "mesylate", "besylate", "fumarate", "hyclate",
    "methylbromide", "bromide", "nitrate", "lactate", "gluconate", "monohydrate", "dihydrate",
    "trihydrate", "anhydrous", "tincture", "propionate", "dipropionate", "furoate", "hcl.",
})
# Release and form abbreviations of pharmacy (NDC) descriptions: "OXYCODONE HCL ER 20 MG TABLET".
RELEASE_WORDS = frozenset({"er", "sr", "cr", "xr", "ir", "xl", "la", "dr", "ec", "odt"})
# Words that are the ingredient together with their anion (ferrous sulfate, lithium carbonate).
_CATIONS = frozenset({"ferrous", "ferric", "sodium", "potassium", "calcium", "magnesium", "lithium", "zinc",
                      "cupric", "aluminum", "ammonium", "silver"})
# Other names of the same ingredient (INN vs USAN).
ALIASES = {"pethidine": "meperidine", "paracetamol": "acetaminophen", "apap": "acetaminophen"}
# Strength units converted to the mg-based units the MME rules are written in.
_TO_MG = {"MCG": 0.001, "UG": 0.001, "µG": 0.001, "G": 1000.0, "MG": 1.0}


@dataclass(frozen=True)
class Component:
    """One ingredient of a drug name: as written, its base ingredient, and its strength."""

    written: str                 # "Oxycodone Hydrochloride"
    base: str                    # "oxycodone"
    strength: float | None       # in ``unit``; None when the name gives none
    unit: str | None             # upper case, mg-based when convertible: "MG", "MG/ML", "MG/HR", "UNT/ML"


@dataclass(frozen=True)
class DrugName:
    """What a drug name says."""

    text: str
    components: tuple[Component, ...]
    dose_form: str | None        # "Oral Tablet" as written (None when the name has none)
    brand: str | None            # "Zarxio" from a trailing "[Zarxio]"
    quantity: str | None         # "10 ML" / "120 ACTUAT" (the amount of a pre-filled unit)
    duration: str | None         # "72 HR" / "12 HR"
    qualifiers: tuple[str, ...]  # "Abuse-Deterrent", ...

    @property
    def ingredients(self) -> tuple[str, ...]:
        return tuple(c.base for c in self.components)

    def component(self, base: str) -> Component | None:
        return next((c for c in self.components if c.base == base), None)


def base_ingredient(written: str) -> str:
    """``Oxycodone Hydrochloride`` -> ``oxycodone``; ``HYDROcodone Bitartrate`` -> ``hydrocodone``."""
    whole = _SPACES.sub(" ", written.strip().lower().rstrip(",")).split(" ")
    words = list(whole)
    while len(words) > 1 and words[-1].rstrip(",") in SALT_WORDS | RELEASE_WORDS:
        words.pop()
    if len(words) == 1 and words[0] in _CATIONS:
        words = whole  # "ferrous sulfate" is itself the ingredient
    base = " ".join(words).rstrip(",")
    return ALIASES.get(base, base)


@lru_cache(maxsize=8192)
def parse_name(text: str) -> DrugName | None:
    """Read an RxNorm-style drug name; None when it names no ingredient at all."""
    if not isinstance(text, str):
        return None
    cleaned = _SPACES.sub(" ", text).strip()
    if not cleaned or len(cleaned) > 500:
        return None
    body, brand = _split_brand(cleaned)
    pack = _PACK.match(body)
    if pack:
        return _parse_pack(cleaned, pack.group("inner"), brand)
    body, quantity, duration, qualifiers = _strip_prefixes(body)
    parsed = _parse_components(body)
    if parsed is None:
        return None
    components, dose_form = parsed
    return DrugName(cleaned, components, dose_form, brand, quantity, duration, qualifiers)


def _split_brand(text: str) -> tuple[str, str | None]:
    match = _BRAND.search(text)
    if match is None or match.start() == 0:
        return text, None
    return text[:match.start()].strip(), match.group("brand").strip()


def _strip_prefixes(text: str) -> tuple[str, str | None, str | None, tuple[str, ...]]:
    """Remove leading quantity ("10 ML"), duration ("72 HR") and qualifiers ("Abuse-Deterrent")."""
    quantity = duration = None
    qualifiers: list[str] = []
    while True:
        match = _PREFIX.match(text)
        if match is None or not _has_letters(text[match.end():]):
            break
        if match.group("qualifier"):
            qualifiers.append(match.group("qualifier"))
        elif match.group("amount_unit").upper() == "HR":
            duration = f"{match.group('amount')} HR"
        else:
            quantity = f"{match.group('amount')} {match.group('amount_unit').upper()}"
        text = text[match.end():]
    return text, quantity, duration, tuple(qualifiers)


def _has_letters(text: str) -> bool:
    return any(ch.isalpha() for ch in text)


def _parse_components(body: str) -> tuple[tuple[Component, ...], str | None] | None:
    """Split ``a 1 MG / b 2 MG Oral Tablet`` into components and the dose form."""
    segments = _SEGMENTS.split(body)
    components: list[Component] = []
    dose_form = None
    for position, segment in enumerate(segments):
        match = _COMPONENT.match(segment)
        last = position == len(segments) - 1
        if match is None or (match.group("rest") and not last):
            return _names_only(body)
        components.append(_component(match.group("name"), match.group("value"), match.group("unit")))
        if last and match.group("rest"):
            dose_form = match.group("rest").strip()
    return tuple(components), dose_form


def _names_only(body: str) -> tuple[tuple[Component, ...], None] | None:
    """A name without strengths (``Acetaminophen/Hydrocodone``): ingredient names only."""
    if any(ch.isdigit() for ch in body):
        return None
    names = [part.strip() for part in re.split(r"\s*/\s*|\s+and\s+|,\s*", body) if part.strip()]
    if not names or any(len(n) < 3 or not n[0].isalpha() for n in names):
        return None
    return tuple(Component(n, base_ingredient(n), None, None) for n in names), None


def _component(written: str, value: str, unit: str) -> Component:
    strength, unit = normalize_strength(float(value), unit)
    return Component(written.strip(), base_ingredient(written), strength, unit)


def normalize_strength(value: float, unit: str) -> tuple[float, str]:
    """Express a strength in mg-based units where it has a mass (``25 MCG/HR`` -> 0.025 MG/HR)."""
    unit = unit.upper().replace("UNITS", "UNT").replace("UNIT", "UNT")
    numerator, slash, denominator = unit.partition("/")
    if denominator == "H":
        denominator = "HR"
    factor = _TO_MG.get(numerator)
    if factor is not None:
        value, numerator = value * factor, "MG"
    return value, numerator + (slash + denominator if slash else "")


def _parse_pack(text: str, inner: str, brand: str | None) -> DrugName | None:
    """``{21 (A 0.1 MG Oral Tablet) / 7 (Inert Ingredients 1 MG Oral Tablet) } Pack``."""
    components: list[Component] = []
    for part in _parenthesised(inner):
        parsed = parse_name(part)
        if parsed is None:
            continue
        brand = brand or parsed.brand
        components.extend(c for c in parsed.components if c.base not in {x.base for x in components})
    if not components:
        return None
    return DrugName(text, tuple(components), "Pack", brand, None, None, ())


def _parenthesised(text: str) -> list[str]:
    """Top-level ``(...)`` groups of a pack's contents."""
    groups, depth, start = [], 0, 0
    for index, char in enumerate(text):
        if char == "(":
            if depth == 0:
                start = index + 1
            depth += 1
        elif char == ")" and depth:
            depth -= 1
            if depth == 0:
                groups.append(text[start:index])
    return groups
