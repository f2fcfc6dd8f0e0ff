"""Which opioid a medication is (D9): by RxNorm product code, ingredient code, else its name."""

from __future__ import annotations

import pytest

from cdshooks.facts.calculators.opioids import products as opioid_products
from cdshooks.facts.calculators.opioids.dose import daily_mme
from cdshooks.facts.calculators.opioids.dose import opioid_ingredients
from cdshooks.facts.calculators.opioids.tables import load_mme_tables
from opioid_orders import NDC
from opioid_orders import RXNORM
from opioid_orders import TABLES
from opioid_orders import coded
from opioid_orders import no_resolve
from opioid_orders import q6h
from opioid_orders import request


def test_hydrocodone_apap_7_5_q6h_from_the_issue_is_30_mme_by_its_code():
    mme, ingredient, arithmetic = daily_mme(request("mr", coded("857005"), q6h()), no_resolve, TABLES)
    assert (mme, ingredient) == (30, "hydrocodone") and "identified from its name" not in arithmetic


@pytest.mark.parametrize("display, expected", [
    # an RxNorm code the table does not list: the normalized name gives ingredient and strength
    ("Acetaminophen 300 MG / HYDROcodone Bitartrate 5 MG [Vicodin]", 20),
    ("Hydrocodone Bitartrate 7.5 MG / Acetaminophen 325 MG Oral Tablet", 30),
    ("oxyCODONE Hydrochloride 10 MG Oral Tablet", 60),
    ("Morphine Sulfate 15 MG Oral Tablet", 60),
    ("Hydromorphone Hydrochloride 2 MG Oral Tablet", 40),
    ("Methadone Hydrochloride 5 MG Oral Tablet", 94),
    ("tramadol hydrochloride 50 MG Oral Tablet", 40),
    ("tapentadol 50 MG Oral Tablet", 80),
    ("Acetaminophen 300 MG / Codeine Phosphate 30 MG Oral Tablet", 18),
    ("Oxymorphone Hydrochloride 5 MG Oral Tablet", 60),
])
def test_unknown_codes_are_read_from_their_rxnorm_names(display, expected):
    mme, _, arithmetic = daily_mme(request("mr", coded("999999999", display), q6h()), no_resolve, TABLES)
    assert mme == pytest.approx(expected)
    assert f"identified from its name '{display}'" in arithmetic


def test_a_fentanyl_patch_named_only_by_its_rxnorm_name_counts_per_microgram_hour():
    patch = {"timing": {"repeat": {"frequency": 1, "period": 72, "periodUnit": "h"}},
             "doseAndRate": [{"doseQuantity": {"value": 1, "unit": "patch"}}]}
    concept = coded("999999998", "72 HR Fentanyl 0.05 MG/HR Transdermal System [Duragesic]")
    assert daily_mme(request("mr", concept, patch), no_resolve, TABLES)[0] == pytest.approx(120)


def test_an_ndc_coding_is_read_by_its_display():
    concept = coded("00000-0000-00", "Oxycodone Hydrochloride 5 MG Oral Tablet", system=NDC)
    assert opioid_ingredients(request("mr", concept), no_resolve, TABLES) == {"7804"}
    assert daily_mme(request("mr", concept, q6h()), no_resolve, TABLES)[0] == 30


def test_a_pharmacy_style_ndc_description_gives_ingredient_and_strength():
    concept = coded("00000-0000-02", "OXYCODONE HCL ER 20 MG TABLET", system=NDC)
    mme, ingredient, arithmetic = daily_mme(request("mr", concept, q6h()), no_resolve, TABLES)
    assert (mme, ingredient) == (120, "oxycodone") and "identified from its name" in arithmetic


def test_a_solution_in_mg_per_ml_dosed_in_ml():
    concept = {"text": "Oxycodone Hydrochloride 1 MG/ML Oral Solution"}
    mme, _, arithmetic = daily_mme(request("mr", concept, q6h(5, "mL")), no_resolve, TABLES)
    assert mme == 30 and "5 mL × 1 mg/mL" in arithmetic


def test_a_name_without_strength_identifies_the_opioid_but_not_the_dose():
    concept = coded("999999997", "Acetaminophen/Hydrocodone")
    mme, ingredient, arithmetic = daily_mme(request("mr", concept, q6h()), no_resolve, TABLES)
    assert (mme, ingredient) == (None, "hydrocodone") and "states no strength" in arithmetic


def test_an_ingredient_code_takes_its_strength_from_the_products_name():
    concept = {"coding": [{"system": RXNORM, "code": "7804", "display": "oxycodone"}],
               "text": "Oxycodone Hydrochloride 5 MG Oral Tablet"}
    assert daily_mme(request("mr", concept, q6h()), no_resolve, TABLES)[0] == 30
    # ...but not from the name of another drug
    other = {"coding": [{"system": RXNORM, "code": "7804"}], "text": "Morphine Sulfate 15 MG Oral Tablet"}
    mme, ingredient, arithmetic = daily_mme(request("mr", other, q6h()), no_resolve, TABLES)
    assert (mme, ingredient) == (None, "oxycodone") and "not convertible to mg" in arithmetic


def test_non_opioid_names_are_not_opioids():
    non_opioids = ("Acetaminophen 325 MG Oral Tablet", "Naloxone Hydrochloride 4 MG/ACTUAT Nasal Spray",
                   "Simvistatin 10 MG")
    for display in non_opioids:
        assert opioid_ingredients(request("mr", coded("1", display)), no_resolve, TABLES) == frozenset()


def test_identification_is_memoised_per_medication():
    tables = load_mme_tables()
    concept = coded("999999996", "Morphine Sulfate 30 MG Oral Tablet")
    first = opioid_products.identify(concept, tables)
    assert opioid_products.identify(dict(concept), tables) is first and len(tables.identified) == 1


def test_name_candidates_put_rxnorm_displays_first_then_ndc_then_text():
    concept = {"coding": [{"system": NDC, "display": "B"}, {"system": "urn:local", "display": "C"},
                          {"system": RXNORM, "display": "A"}], "text": "D"}
    assert opioid_products.name_candidates(concept) == ["A", "B", "C", "D"]
