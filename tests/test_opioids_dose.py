"""Tests for one opioid order's MME/day (CDC 2022 factors, RxNorm products; pump spec §f.1)."""

import pytest

from cdshooks.facts.calculators.opioids.dose import opioid_ingredients
from cdshooks.facts.calculators.opioids.dose import route_codes
from opioid_orders import INTRATHECAL
from opioid_orders import SNOMED
from opioid_orders import TABLES
from opioid_orders import assess
from opioid_orders import computed
from opioid_orders import concept
from opioid_orders import dose
from opioid_orders import ingredients_of
from opioid_orders import mme_of
from opioid_orders import order
from opioid_orders import resolver

# --- CDC 2022 examples ---------------------------------------------------------------------------


def test_cdc_example_hydrocodone_5_mg_apap_qid_is_20_mme():
    assert mme_of(order("h", "857002", dose(code="QID"))) == 20


def test_cdc_example_oxycodone_er_10_mg_bid_is_30_mme():
    assert mme_of(order("o", "1049502", dose(code="BID"))) == 30


def test_cdc_example_fentanyl_25_mcg_per_hour_patch_is_60_mme():
    assert mme_of(order("f", "245134", dose(1, "{patch}", every=(1, 72, "h")))) == 60


# --- daily dose of one order ---------------------------------------------------------------------


def test_dose_range_high_is_the_dose_per_administration():
    dosage = {
        "timing": {"repeat": {"frequency": 1, "period": 4, "periodUnit": "h"}},
        "doseAndRate": [{"doseRange": {"low": {"value": 1}, "high": {"value": 2, "unit": "tab"}}}],
    }
    assert mme_of(order("r", "1049621", dosage)) == 2 * 5 * 6 * 1.5


def test_dose_range_without_high_is_uncomputable():
    dosage = dose(code="QID", doseAndRate=[{"doseRange": {"low": {"value": 1}}}])
    mme, _, arithmetic = computed(order("r", "1049621", dosage))
    assert mme is None
    assert arithmetic == "oxycodone: no computable dose (dose range without high)"


def test_prn_order_is_counted_at_frequency_max():
    dosage = dose(prn=True)
    dosage["timing"] = {
        "repeat": {"frequency": 1, "frequencyMax": 2, "period": 4, "periodUnit": "h"}
    }
    assert mme_of(order("p", "1049621", dosage)) == 5 * 12 * 1.5


def test_max_dose_per_period_caps_the_daily_amount():
    cap = {"numerator": {"value": 20, "code": "mg"}, "denominator": {"value": 1, "code": "d"}}
    request = order("c", "1049621", dose(every=(1, 4, "h"), prn=True, maxDosePerPeriod=cap))
    mme, _, arithmetic = computed(request)
    assert mme == 30
    assert arithmetic == "oxycodone max 20 mg/day × 1.5 = 30"


def test_max_dose_per_period_in_tablets_per_12_hours_is_scaled_to_a_day():
    cap = {"numerator": {"value": 2, "unit": "tablet"}, "denominator": {"value": 12, "unit": "h"}}
    request = order("c", "1049621", dose(every=(1, 2, "h"), maxDosePerPeriod=cap))
    assert mme_of(request) == 4 * 5 * 1.5


def test_max_dose_per_period_above_the_scheduled_amount_changes_nothing():
    cap = {"numerator": {"value": 100, "code": "mg"}, "denominator": {"value": 1, "code": "d"}}
    assert mme_of(order("c", "1049621", dose(code="BID", maxDosePerPeriod=cap))) == 15


def test_max_dose_per_period_alone_is_used_when_there_is_no_timing():
    cap = {"numerator": {"value": 40, "code": "mg"}, "denominator": {"value": 1, "code": "d"}}
    assert mme_of(order("c", "1049621", dose(prn=True, maxDosePerPeriod=cap))) == 60


def test_unreadable_max_dose_per_period_is_uncomputable():
    cap = {"numerator": {"value": 40, "code": "mg"}, "denominator": {"value": 1, "unit": "fortnit"}}
    assert mme_of(order("c", "1049621", dose(code="BID", maxDosePerPeriod=cap))) is None


@pytest.mark.parametrize(
    ("code", "per_day"),
    [("QD", 1), ("AM", 1), ("PM", 1), ("BID", 2), ("TID", 3), ("QID", 4), ("Q4H", 6), ("Q6H", 4),
     ("Q8H", 3), ("QOD", 0.5)],
)
def test_timing_code_gives_administrations_per_day(code, per_day):
    assert mme_of(order("t", "892582", dose(code=code))) == 15 * per_day


def test_timing_code_without_a_system_is_read():
    dosage = dose(timing={"code": {"coding": [{"code": "TID"}]}})
    assert mme_of(order("t", "892582", dosage)) == 45


def test_unknown_timing_code_is_uncomputable():
    assert mme_of(order("t", "892582", dose(code="Q3H"))) is None


def test_time_of_day_count_gives_administrations_per_day():
    dosage = dose()
    dosage["timing"] = {"repeat": {"timeOfDay": ["08:00:00", "14:00:00", "20:00:00"]}}
    assert mme_of(order("t", "892582", dosage)) == 45


def test_no_timing_at_all_is_uncomputable():
    mme, _, arithmetic = computed(order("t", "892582", dose()))
    assert (mme, arithmetic) == (None, "morphine: no computable dose (no timing)")


@pytest.mark.parametrize(
    ("frequency", "period", "unit", "per_day"),
    [
        (1, 12, "h", 2),
        (3, 1, "d", 3),
        (30, 1, "wk", 30 / 7),
        (60, 1, "mo", 2),
        (730, 1, "a", 2),
        (1, 360, "min", 4),
        (1, 21600, "s", 4),
        (1, 0.5, "d", 2),
    ],
)
def test_period_unit_is_converted_to_a_day(frequency, period, unit, per_day):
    request = order("u", "892582", dose(every=(frequency, period, unit)))
    assert mme_of(request) == pytest.approx(15 * per_day)


def test_period_max_is_ignored_in_favour_of_period():
    dosage = dose()
    dosage["timing"] = {"repeat": {"frequency": 1, "period": 4, "periodMax": 6, "periodUnit": "h"}}
    assert mme_of(order("u", "892582", dosage)) == 90


def test_millilitres_times_mg_per_ml_strength():
    request = order("ml", "892531", dose(0.5, "mL", every=(1, 4, "h")))
    mme, _, arithmetic = computed(request)
    assert mme == 30
    assert arithmetic == "morphine 0.5 mL × 10 mg/mL × 6/day × 1 = 30"


@pytest.mark.parametrize(("value", "unit"), [(500, "ug"), (500, "mcg"), (0.5, "mg"), (0.0005, "g")])
def test_mass_units_are_converted_to_mg(value, unit):
    request = order("ug", "3423", dose(value, unit, every=(1, 4, "h")))
    assert mme_of(request) == pytest.approx(0.5 * 6 * 5)


def test_tablet_count_with_an_ingredient_only_code_is_uncomputable():
    assert mme_of(order("i", "7804", dose(1, "{tbl}", code="BID"))) is None


def test_unknown_dose_unit_is_uncomputable():
    mme, _, arithmetic = computed(order("i", "7804", dose(2, "puff", code="BID")))
    assert mme is None
    assert arithmetic == "oxycodone: no computable dose (2 'puff' not convertible to mg)"


def test_two_tablets_show_the_count_in_the_arithmetic():
    request = order("two", "1049683", dose(2, "TAB", code="BID"))
    assert computed(request) == (60, "oxycodone", "oxycodone 2 × 10 mg × 2/day × 1.5 = 60")


def test_stu3_dose_quantity_is_accepted():
    dosage = dose(None, code="BID", doseQuantity={"value": 1, "unit": "tablet"})
    assert mme_of(order("s", "1049683", dosage)) == 30


def test_dosage_instructions_with_the_same_or_no_sequence_are_summed():
    morning = dose(1, code="AM", sequence=1)
    evening = dose(2, code="PM", sequence=1)
    night = dose(1, code="QD")
    mme, _, arithmetic = computed(order("seq", "1049621", morning, evening, night))
    assert mme == (5 + 10 + 5) * 1.5
    assert arithmetic == "oxycodone (5 mg × 1/day + 2 × 5 mg × 1/day + 5 mg × 1/day) × 1.5 = 30"


def test_dosage_instructions_with_different_sequences_are_uncomputable():
    first, second = dose(2, code="BID", sequence=1), dose(1, code="BID", sequence=2)
    request = order("seq", "1049621", first, second)
    mme, _, arithmetic = computed(request)
    assert mme is None
    assert "different sequences" in arithmetic


def test_no_factor_ingredient_is_uncomputable():
    assert mme_of(order("lev", "6378", dose(2, "mg", code="QID"))) is None


def test_fentanyl_ingredient_with_mcg_per_hour_dose():
    request = order("fi", "4337", dose(37.5, "ug/h"))
    assert computed(request) == (90, "fentanyl", "fentanyl 37.5 mcg/h × 2.4 = 90")


def test_fentanyl_ingredient_in_mg_is_uncomputable():
    assert mme_of(order("fi", "4337", dose(0.1, "mg", code="QD"))) is None


def test_two_fentanyl_patches_without_timing_ignore_frequency():
    assert mme_of(order("fp", "197696", dose(2, "{patch}"))) == 2 * 75 * 2.4


def test_fentanyl_patch_without_dosage_counts_one_patch():
    assert mme_of(order("fp", "577057")) == pytest.approx(12 * 2.4)


def test_medication_reference_to_prefetched_medication_is_resolved():
    medication = {"resourceType": "Medication", "id": "m1", "code": concept("1049683")}
    request = order("ref", "x", dose(code="BID"))
    del request["medicationCodeableConcept"]
    request["medicationReference"] = {"reference": "Medication/m1"}
    assert mme_of(request, resolver(medication)) == 30
    assert opioid_ingredients(request, resolver(medication), TABLES) == {"7804"}


def test_medication_reference_to_contained_medication_is_resolved():
    request = order("ref", "x", dose(code="TID"))
    del request["medicationCodeableConcept"]
    request["contained"] = [{"resourceType": "Medication", "id": "med", "code": concept("892582")}]
    request["medicationReference"] = {"reference": "#med"}
    result = assess(request, resolve=resolver())
    assert [(o.ingredient, o.mme_per_day) for o in result.orders] == [("morphine", 45)]


def test_unresolved_medication_reference_is_not_an_opioid():
    request = order("ref", "x", dose(code="TID"))
    del request["medicationCodeableConcept"]
    request["medicationReference"] = {"reference": "Medication/missing"}
    assert computed(request, resolver()) == (
        None,
        "",
        "not an opioid of the product or ingredient table",
    )


def test_non_opioid_code_is_ignored():
    assert assess(order("apap", "161", dose(code="QID"), authored="2025-06-01")).orders == ()


# --- identification helpers ----------------------------------------------------------------------


def test_opioid_ingredients_of_products_ingredients_and_buprenorphine():
    assert ingredients_of(order("a", "856999")) == {"5489"}
    assert ingredients_of(order("b", "6754")) == {"6754"}
    assert ingredients_of(order("c", "1010600")) == {"1819"}
    assert ingredients_of(order("d", "161")) == frozenset()


def test_route_codes_reads_lone_objects_and_skips_other_systems():
    request = order("r", "892531", {"route": {"coding": {"system": SNOMED, "code": INTRATHECAL}}})
    request["dosageInstruction"].append({"route": concept("IT", "http://example.org")})
    assert route_codes(request) == {INTRATHECAL}
    assert route_codes({"dosageInstruction": "oral"}) == frozenset()
