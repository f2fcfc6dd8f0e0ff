"""The RxNorm name parser on real drug names (tests/data/rxnorm-names.tsv and the product table)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from cdshooks.facts.calculators.opioids.tables import DATA_DIR
from cdshooks.facts.calculators.opioids.tables import load_mme_tables
from cdshooks.fhir.rxnorm import base_ingredient
from cdshooks.fhir.rxnorm import normalize_strength
from cdshooks.fhir.rxnorm import parse_name

NAMES = Path(__file__).resolve().parent / "data" / "rxnorm-names.tsv"
TABLES = load_mme_tables()
DOSE_FORMS = yaml.safe_load((DATA_DIR / "rxnorm-opioid-products.yaml").read_text(encoding="utf-8"))["dose_forms"]


def rows(path: Path) -> list[dict]:
    lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line and not line.startswith("#")]
    return list(csv.DictReader(lines, delimiter="\t"))


def strength(text: str) -> tuple[float, str]:
    value, unit = text.split(" ")
    return float(value), unit


NAMED = rows(NAMES)
PRODUCTS = rows(DATA_DIR / "rxnorm-opioid-products.tsv")


def test_the_test_data_holds_a_few_hundred_real_names():
    assert len(NAMED) + len(PRODUCTS) >= 400
    assert {r["source"] for r in NAMED} == {"corpus", "omtk", "nmdp"}


@pytest.mark.parametrize("row", NAMED, ids=[r["name"][:60] for r in NAMED])
def test_names_give_ingredients_strengths_dose_form_and_brand(row):
    parsed = parse_name(row["name"])
    if row["ingredients"] == "-":
        assert parsed is None
        return
    assert parsed is not None
    assert list(parsed.ingredients) == row["ingredients"].split("+")
    expected = [strength(s) for s in row["strengths"].split("+")] if row["strengths"] else []
    found = [(c.strength, c.unit) for c in parsed.components if c.strength is not None]
    assert [(pytest.approx(v), u) for v, u in expected] == found
    assert (parsed.dose_form or "") == row["dose_form"]
    assert (parsed.brand or "") == row["brand"]


@pytest.mark.parametrize("row", PRODUCTS, ids=[r["code"] for r in PRODUCTS])
def test_every_product_table_name_parses_to_its_own_columns(row):
    # The table's ingredient, strength and dose form come from RxNav (S3), not from the name.
    parsed = parse_name(row["name"])
    opioid = parsed.component(base_ingredient(TABLES.names[row["ingredient"]]))
    assert opioid is not None, parsed
    assert (opioid.strength, opioid.unit) == strength(row["strength"])
    assert parsed.dose_form.lower() == DOSE_FORMS[row["dose_form"]].lower()


@pytest.mark.parametrize("written, base", [
    ("Oxycodone Hydrochloride", "oxycodone"), ("HYDROcodone Bitartrate", "hydrocodone"),
    ("Morphine Sulfate", "morphine"), ("Codeine Phosphate", "codeine"), ("Butorphanol Tartrate", "butorphanol"),
    ("propoxyphene napsylate", "propoxyphene"), ("HYDROCODONE POLISTIREX", "hydrocodone"),
    ("oxycodone terephthalate", "oxycodone"), ("opium tincture", "opium"), ("Pethidine", "meperidine"),
    ("ferrous sulfate", "ferrous sulfate"), ("Magnesium Sulfate", "magnesium sulfate"),
])
def test_salts_name_their_base_ingredient(written, base):
    assert base_ingredient(written) == base


@pytest.mark.parametrize("value, unit, expected", [
    (25, "MCG/HR", (0.025, "MG/HR")), (25, "mcg/h", (0.025, "MG/HR")), (0.5, "G", (500, "MG")),
    (10, "MG/ML", (10, "MG/ML")), (100, "UNT/ML", (100, "UNT/ML")), (5, "mg", (5, "MG")),
])
def test_strengths_are_expressed_in_mg_based_units(value, unit, expected):
    got = normalize_strength(value, unit)
    assert (pytest.approx(got[0]), got[1]) == (pytest.approx(expected[0]), expected[1])


@pytest.mark.parametrize("junk", ["", " ", "28 Day Pack", "5 MG", "[Brand]", "x" * 600, None, 42])
def test_junk_is_not_a_drug_name(junk):
    assert parse_name(junk) is None


def test_parsing_is_memoised():
    assert parse_name("Morphine Sulfate 15 MG Oral Tablet") is parse_name("Morphine Sulfate 15 MG Oral Tablet")


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=80) | st.from_regex(r"[0-9A-Za-z /.\[\]{}()-]{0,60}", fullmatch=True))
def test_any_text_parses_or_gives_none_without_raising(text):
    parsed = parse_name(text)
    assert parsed is None or all(c.base for c in parsed.components)
