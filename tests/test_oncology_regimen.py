"""The ordered CSF and its history (colony-stimulating-factors §b, A.b.c2, A.e): product
identification, first-dose dates, the last CSF before a complication, the preferred step."""

from __future__ import annotations

import datetime as dt

import pytest

from cdshooks.facts.calculators.oncology import products
from cdshooks.facts.calculators.oncology import regimen
from conftest import mapped_csf_products

PRODUCTS = mapped_csf_products()
HCPCS = "https://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
T = dt.date(2025, 6, 15)


# ------------------------------------------------------------------------- products (§b)
def concept(*codings, text=None):
    value = {"coding": [dict(zip(("system", "code", "display"), c)) for c in codings]}
    if text:
        value["text"] = text
    return value


@pytest.mark.parametrize("value, brand, label", [
    (concept((HCPCS, "Q5111")), "Udenyca", "pegfilgrastim-cbqv"),          # HCPCS names the ingredient
    (concept((RXNORM, "1605067")), "Zarxio", "Zarxio"),                    # an RxNorm brand code names the brand
    (concept((RXNORM, "68442")), "Neupogen", "filgrastim"),                # the ingredient code is not Neupogen
    (concept((HCPCS, "J2506"), text="Udenyca"), "Neulasta", "pegfilgrastim"),  # the code wins over a name
    (concept((HCPCS, "J3590", "Unclassified biologics"), text="Ryzneuta 20 mg"), "Ryzneuta", "Ryzneuta"),
    (concept((HCPCS, "J3590", "Unclassified biologics")), None, None),
    (concept(text="filgrastim 480 MCG/0.8 ML injection"), "Neupogen", "filgrastim"),
    (concept(text="tbo-filgrastim 300 mcg"), "Granix", "tbo-filgrastim"),  # not plain filgrastim
    (concept(text="pegfilgrastim-cbqv 6 mg"), "Udenyca", "pegfilgrastim-cbqv"),
    (concept(text="peg-filgrastim"), "Neulasta", "pegfilgrastim"),
    (concept(text="Fynetra"), "Fylnetra", "Fylnetra"),                    # the policy's spelling
    (concept(text="Neulasta Onpro kit"), "Neulasta", "Neulasta"),
    (concept(text="filgrastimab"), None, None),
    # RxNorm products the drug list does not code (codes and names from the nmdp-ig RxNorm
    # mobilizing-agents value set, S4): identified by the ingredient or [Brand] in the name
    (concept((RXNORM, "1649944", "1 ML filgrastim 0.3 MG/ML Injection")), "Neupogen", "filgrastim"),
    (concept((RXNORM, "1605071", "0.5 ML filgrastim-sndz 0.6 MG/ML Prefilled Syringe [Zarxio]")), "Zarxio", "Zarxio"),
    (concept((RXNORM, "727542", "0.6 ML pegfilgrastim 10 MG/ML Prefilled Syringe [Neulasta]")), "Neulasta", "Neulasta"),
    (concept((RXNORM, "1442679", "filgrastim Prefilled Syringe [Granix]")), "Granix", "Granix"),
    (concept((RXNORM, "2101456", "1 ML tbo-filgrastim 0.3 MG/ML Injection")), "Granix", "tbo-filgrastim"),
    (concept((RXNORM, "70167", "lenograstim")), None, None),                  # not on the policy's list
    (concept(text="sargramostim 0.25 MG Injection"), "Leukine", "sargramostim"),
    (concept(("http://hl7.org/fhir/sid/ndc", "00000-0000-00", "Neulasta 6 MG in 0.6 ML Prefilled Syringe")),
     "Neulasta", "Neulasta"),
])
def test_product_identification_and_label(value, brand, label):
    found = products.identify(value, PRODUCTS)
    assert (found.product.brand if found else None) == brand
    assert (found.label if found else None) == label


def test_a_product_read_from_its_name_says_so():
    found = products.identify(concept((RXNORM, "1649944", "1 ML filgrastim 0.3 MG/ML Injection")), PRODUCTS)
    assert found.from_name and found.via == "1 ML filgrastim 0.3 MG/ML Injection"
    assert not products.identify(concept((RXNORM, "68442")), PRODUCTS).from_name


def test_identification_is_memoised_per_medication_on_the_table():
    table = products.csf_product_table([{"brand": "Neupogen", "ingredient": "filgrastim", "family": "FIL",
                                         "codes": ["rxnorm|68442"], "names": ["Neupogen"]}])
    first = products.identify(concept((RXNORM, "68442")), table)
    assert products.identify([concept((RXNORM, "68442"))], table) is first and len(table.identified) == 1
    assert products.identify(concept(text="Neupogen 300 MCG"), table).from_name and len(table.identified) == 2


def test_every_product_of_the_policy_has_a_family():
    families = {p.brand: p.family for p in PRODUCTS}
    assert families == {"Neupogen": "FIL", "Zarxio": "FIL", "Nivestym": "FIL", "Releuko": "FIL", "Granix": "TBO",
                        "Leukine": "SAR", "Neulasta": "PEG", "Fulphila": "PEG", "Fylnetra": "PEG", "Nyvepria": "PEG",
                        "Stimufend": "PEG", "Udenyca": "PEG", "Ziextenzo": "PEG", "Rolvedon": "EFL",
                        "Ryzneuta": "EFB"}


def test_order_start_prefers_the_first_dose():
    first_dose = {"timing": {"repeat": {"boundsPeriod": {"start": "2025-04-20"}}}}
    assert regimen.order_start({"dosageInstruction": [first_dose], "authoredOn": "2025-04-18"}) == dt.date(2025, 4, 20)
    assert regimen.order_start({"authoredOn": "2025-04-18"}) == dt.date(2025, 4, 18)
    assert regimen.order_start({"dosageInstruction": "junk"}) is None


# -------------------------------------------------------------------- A.b.c2 and A.e
def taken(brand, start, status="completed"):
    product = next(p for p in PRODUCTS if p.brand == brand)
    return regimen.Taken(f"MedicationRequest/{brand.lower()}", product, dt.date.fromisoformat(start), status)


def test_the_last_csf_start_before_the_complication_counts_only_started_orders():
    """The 21-day window is the policy's (A.b.c2); the fact finds the last start on or before Dc."""
    complication = dt.date(2025, 5, 1)
    statuses = frozenset({"active", "completed", "stopped"})
    orders = [taken("Neulasta", "2025-04-09"), taken("Neulasta", "2025-04-20", "cancelled"),
              taken("Udenyca", "2025-04-10"), taken("Zarxio", "2025-05-02")]
    last = regimen.last_start_before(complication, orders, statuses)
    assert (last.product.brand, last.start) == ("Udenyca", dt.date(2025, 4, 10))    # 21 days before Dc
    assert regimen.last_start_before(complication, orders[1:2] + orders[3:], statuses) is None


def test_preferred_step():
    udenyca = next(p for p in PRODUCTS if p.brand == "Udenyca")
    assert regimen.preferred_step([], udenyca, [], T, 365) == (
        "met", [], "no preferred-product list is configured, so step therapy does not apply")
    assert regimen.preferred_step(["udenyca"], udenyca, [], T, 365)[0] == "met"
    assert regimen.preferred_step(["Q5111"], udenyca, [], T, 365)[0] == "met"
    assert regimen.preferred_step(["FIL"], udenyca, [taken("Zarxio", "2024-12-01")], T, 365)[0] == "met"
    assert regimen.preferred_step(["FIL"], udenyca, [taken("Zarxio", "2024-06-14")], T, 365)[0] == "unknown"
    assert regimen.preferred_step(["Zarxio"], udenyca, [taken("Zarxio", "2025-01-01", "entered-in-error")], T,
                              365)[0] == "unknown"
