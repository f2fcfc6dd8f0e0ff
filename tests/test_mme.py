"""Tests for the MME calculator and the systemic-opioid wean test (pump spec §f.1)."""

import pathlib
import shutil
from datetime import date

import pytest
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from cdshooks.facts.calculators.opioids.dose import daily_mme
from cdshooks.facts.calculators.opioids.dose import opioid_ingredients
from cdshooks.facts.calculators.opioids.dose import route_codes
from cdshooks.facts.calculators.opioids.tables import DATA_DIR
from cdshooks.facts.calculators.opioids.tables import load_mme_tables
from cdshooks.facts.calculators.opioids.wean import assess_wean

RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
SNOMED = "http://snomed.info/sct"
HCPCS = "https://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets"
GTS = "http://terminology.hl7.org/CodeSystem/v3-GTSAbbreviation"
INTRATHECAL = "72607000"
EPIDURAL = "404820008"
INTRAVENOUS = "47625008"
R = date(2025, 6, 15)
TABLES = load_mme_tables()


# --- builders ------------------------------------------------------------------------------------


def concept(code, system=RXNORM):
    return {"coding": [{"system": system, "code": code}]}


def dose(value=1, unit="{tbl}", *, every=None, code=None, prn=False, bounds=None, **extra):
    """One Dosage: `value unit`, `every=(frequency, period, periodUnit)` or a timing `code`."""
    repeat = {}
    if every is not None:
        repeat.update(frequency=every[0], period=every[1], periodUnit=every[2])
    if bounds is not None:
        repeat["boundsPeriod"] = {"start": bounds[0], "end": bounds[1]}
    timing = {"repeat": repeat} if repeat else {}
    if code is not None:
        timing["code"] = concept(code, GTS)
    dosage = {"timing": timing} if timing else {}
    if value is not None:
        dosage["doseAndRate"] = [{"doseQuantity": {"value": value, "unit": unit, "code": unit}}]
    if prn:
        dosage["asNeededBoolean"] = True
    return {**dosage, **extra}


def order(rid, code, *dosages, status="active", intent="order", authored=None, **extra):
    request = {
        "resourceType": "MedicationRequest",
        "id": rid,
        "status": status,
        "intent": intent,
        "medicationCodeableConcept": concept(code),
        "dosageInstruction": list(dosages),
    }
    if authored is not None:
        request["authoredOn"] = authored
    return {**request, **extra}


def supply(days, repeats=None, unit="d"):
    dispense = {"expectedSupplyDuration": {"value": days, "unit": unit, "code": unit}}
    if repeats is not None:
        dispense["numberOfRepeatsAllowed"] = repeats
    return dispense


def with_route(dosage, route_code):
    return {**dosage, "route": concept(route_code, SNOMED)}


def no_resolve(request):
    return None


def resolver(*medications):
    """Resolve contained '#id' references and 'Medication/id' ones against a prefetch list."""
    prefetched = {f"Medication/{m['id']}": m for m in medications}

    def resolve(request):
        ref = str(request["medicationReference"].get("reference"))
        if ref.startswith("#"):
            return next((c for c in request.get("contained", []) if c["id"] == ref[1:]), None)
        return prefetched.get(ref)

    return resolve


def assess(*requests, drafts=(), resolve=no_resolve, **options):
    pairs = [(r, False) for r in requests] + [(d, True) for d in drafts]
    return assess_wean(pairs, resolve, R, TABLES, **options)


def computed(request, resolve=no_resolve):
    return daily_mme(request, resolve, TABLES)


def ingredients_of(request, resolve=no_resolve):
    return opioid_ingredients(request, resolve, TABLES)


def mme_of(request, resolve=no_resolve):
    return computed(request, resolve)[0]


def q12h_tab(**extra):
    return dose(every=(1, 12, "h"), **extra)


# --- worked examples (spec §f.1) -----------------------------------------------------------------


def example_1():
    return (
        order(
            "ex1a",
            "1049563",
            q12h_tab(bounds=("2025-01-01", "2025-03-31")),
            status="completed",
        ),
        order(
            "ex1b",
            "856999",
            dose(every=(1, 6, "h"), prn=True),
            status="completed",
            authored="2025-01-01",
            dispenseRequest=supply(90),
        ),
        order("ex1c", "1049502", q12h_tab(), authored="2025-04-01"),
    )


def test_worked_example_1_is_met_at_70_percent_reduction():
    result = assess(*example_1())
    assert (result.result, result.baseline, result.current) == ("met", 100, 30)
    assert result.baseline_day == date(2025, 1, 1)
    assert result.reduction == pytest.approx(0.7)
    assert [o.arithmetic for o in result.orders] == [
        "oxycodone 20 mg × 2/day × 1.5 = 60",
        "hydrocodone 10 mg × 4/day × 1 = 40",
        "oxycodone 10 mg × 2/day × 1.5 = 30",
    ]
    assert result.orders[1].end == date(2025, 4, 1)
    assert result.note == (
        "baseline 100 MME/day on 2025-01-01, current 30 MME/day (70 % reduction; ≥ 50 % required)"
    )


def example_2():
    return (
        order("ex2a", "891885", q12h_tab(), authored="2025-02-01"),
        order(
            "ex2b",
            "897702",
            dose(every=(1, 6, "h"), prn=True),
            status="completed",
            authored="2025-02-01",
            dispenseRequest=supply(30, repeats=1),
        ),
        order("ex2c", "835603", dose(every=(1, 6, "h"), prn=True), authored="2025-04-15"),
    )


def test_worked_example_2_is_not_met_at_28_6_percent_reduction():
    result = assess(*example_2())
    assert (result.result, result.baseline, result.current) == ("not-met", 140, 100)
    assert result.baseline_day == date(2025, 2, 1)
    assert result.reduction == pytest.approx(1 - 100 / 140)
    assert [o.mme_per_day for o in result.orders] == [60, 80, 40]
    assert result.note == (
        "baseline 140 MME/day on 2025-02-01, current 100 MME/day "
        "(28.6 % reduction; ≥ 50 % required)"
    )


def test_worked_example_2_hydromorphone_is_active_through_2025_04_01():
    hydromorphone = assess(*example_2()).orders[1]
    assert (hydromorphone.start, hydromorphone.end) == (date(2025, 2, 1), date(2025, 4, 2))


def fentanyl_patch_ex3():
    return order(
        "ex3a",
        "245135",
        dose(every=(1, 72, "h"), bounds=("2025-01-10", "2025-04-30")),
        status="completed",
    )


def test_worked_example_3_is_unknown_when_current_methadone_has_text_only():
    methadone = order("ex3b", "864706", {"text": "as directed"}, authored="2025-05-01")
    result = assess(fentanyl_patch_ex3(), methadone)
    assert (result.result, result.baseline, result.current) == ("unknown", 120, 0)
    assert result.baseline_day == date(2025, 1, 10)
    assert result.uncomputable_current == ("MedicationRequest/ex3b",)
    assert result.orders[0].arithmetic == "fentanyl 50 mcg/h × 2.4 = 120"
    assert result.orders[1].arithmetic == "methadone: no computable dose (dosage text only)"
    assert result.reduction is None


def test_worked_example_3_is_not_met_if_methadone_were_one_tab_bid():
    methadone = order("ex3b", "864706", dose(code="BID"), authored="2025-05-01")
    result = assess(fentanyl_patch_ex3(), methadone)
    assert (result.result, result.baseline) == ("not-met", 120)
    assert result.current == pytest.approx(94)


def test_worked_example_4_is_unknown_without_any_opioid_order():
    result = assess()
    assert (result.result, result.baseline, result.current, result.orders) == (
        "unknown",
        None,
        None,
        (),
    )
    assert result.note == (
        "no opioid order is on record between 2024-12-17 and 2025-06-15: "
        "no baseline to compare"
    )


def test_worked_example_4_is_unknown_with_only_buprenorphine_and_intrathecal_infumorph():
    buprenorphine = order("bup", "351265", dose(code="QD"), authored="2025-03-01")
    infumorph = order(
        "inf", "892652", with_route(dose(1, "mL", code="QD"), INTRATHECAL), status="draft"
    )
    result = assess(buprenorphine, drafts=[infumorph])
    assert (result.result, result.orders) == ("unknown", ())


def test_worked_example_5_is_met_because_an_uncomputable_past_order_cannot_lower_b():
    meperidine = order(
        "ex5a",
        "861467",
        dose(every=(1, 6, "h"), bounds=("2025-01-05", "2025-01-31")),
        status="completed",
    )
    oxy_a, _, oxy_c = example_1()
    result = assess(meperidine, oxy_a, oxy_c)
    assert (result.result, result.baseline, result.current) == ("met", 60, 30)
    assert result.uncomputable_past == ("MedicationRequest/ex5a",)
    assert result.orders[0].arithmetic == "meperidine: no conversion factor in cdc-2022"


def test_uncomputable_past_order_turns_not_met_into_unknown():
    meperidine = order(
        "mep", "861467", q12h_tab(bounds=("2025-02-01", "2025-02-10")), status="completed"
    )
    result = assess(*example_2(), meperidine)
    assert (result.result, result.baseline, result.current) == ("unknown", 140, 100)
    assert result.uncomputable_past == ("MedicationRequest/mep",)
    assert "could raise the baseline" in result.note


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


# --- exclusions -----------------------------------------------------------------------------------


def recent(rid, code, dosage=None, **extra):
    return order(rid, code, dosage or dose(1, "mL", code="QD"), authored="2025-06-01", **extra)


@pytest.mark.parametrize("route", [INTRATHECAL, EPIDURAL])
def test_intrathecal_or_epidural_route_is_excluded(route):
    request = recent("it", "892531", with_route(dose(1, "mL", code="QD"), route))
    assert assess(request).orders == ()


def test_buprenorphine_is_excluded():
    assert assess(recent("bup", "1010600", dose(code="BID"))).orders == ()


def test_infumorph_is_excluded_on_any_route():
    request = recent("inf", "1731999", with_route(dose(1, "mL", code="QD"), INTRAVENOUS))
    assert assess(request, drafts=[recent("inf2", "892652")]).orders == ()


def test_duramorph_counts_when_given_intravenously():
    request = recent("dura", "892489", with_route(dose(4, "mL", code="Q6H"), INTRAVENOUS))
    assert [o.mme_per_day for o in assess(request).orders] == [16]


def test_duramorph_is_excluded_when_given_intrathecally():
    request = recent("dura", "892473", with_route(dose(1, "mL", code="QD"), INTRATHECAL))
    assert assess(request).orders == ()


def test_order_coded_with_hcpcs_j2274_is_excluded():
    request = recent("j", "7052", dose(10, "mg", code="QD"))
    request["medicationCodeableConcept"]["coding"].append({"system": HCPCS, "code": "J2274"})
    assert assess(request).orders == ()


@pytest.mark.parametrize("intent", ["proposal", "plan", "directive", "option"])
def test_non_order_intents_are_excluded_but_kept_on_draft_orders(intent):
    request = recent("i", "892582", dose(code="QD"), intent=intent)
    assert assess(request).orders == ()
    assert len(assess(drafts=[{**request, "status": "draft"}]).orders) == 1


@pytest.mark.parametrize("status", ["entered-in-error", "cancelled", "unknown", "draft"])
def test_void_statuses_are_excluded(status):
    assert assess(recent("s", "892582", dose(code="QD"), status=status)).orders == ()


def test_draft_order_counts_in_the_current_total():
    draft = order("new", "1049621", dose(code="BID"), status="draft")
    result = assess(*example_1(), drafts=[draft])
    assert result.current == 30 + 15
    assert result.orders[-1].draft and result.orders[-1].current_eligible


def test_only_draft_orders_are_no_opioid_history():
    draft = order("new", "1049621", dose(code="BID"), status="draft", authored="2025-06-15")
    result = assess(drafts=[draft])
    assert (result.result, result.baseline, result.current) == ("unknown", None, 15)
    assert result.note.startswith("only this request's opioid orders are on record")


def test_uncomputable_current_order_makes_the_result_unknown_even_when_weaned():
    text_only = order("t", "1049621", {"text": "as needed"}, authored="2025-06-01")
    result = assess(*example_1(), text_only)
    assert result.result == "unknown"
    assert result.uncomputable_current == ("MedicationRequest/t",)
    assert "current unknown" in result.note


def test_all_orders_uncomputable_is_unknown_with_zero_baseline():
    past = order("p", "861467", dose(code="QID"), status="completed", authored="2025-03-01")
    result = assess(past)
    assert (result.result, result.baseline, result.uncomputable_past) == (
        "unknown",
        None,
        ("MedicationRequest/p",),
    )


def test_stopped_and_on_hold_count_for_the_baseline_only():
    stopped = order("s", "892672", dose(code="BID"), status="stopped", authored="2025-03-01")
    on_hold = order("h", "892672", dose(code="QD"), status="on-hold", authored="2025-06-01")
    result = assess(stopped, on_hold)
    assert (result.result, result.baseline, result.current) == ("met", 60, 0)


def test_same_order_in_prefetch_and_draft_orders_counts_once():
    request = order("dup", "1049621", dose(code="BID"), authored="2025-06-15")
    result = assess(*example_1(), request, drafts=[{**request, "status": "draft"}])
    assert result.current == 30 + 15
    assert [o.reference for o in result.orders].count("MedicationRequest/dup") == 1


# --- active interval -----------------------------------------------------------------------------


def bid_oxy(**fields):
    """Oxycodone 5 mg BID = 15 MME/day, with the date fields given."""
    request = order("iv", "1049621", dose(code="BID"), status="completed")
    return {**request, **fields}


def interval(request, **options):
    orders = assess(request, **options).orders
    return (orders[0].start, orders[0].end) if orders else None


def test_bounds_period_end_is_inclusive():
    dosage = dose(code="BID", bounds=("2025-06-01", "2025-06-14"))
    result = assess(order("b", "1049621", dosage, status="completed"))
    assert result.orders[0].end == date(2025, 6, 15)
    assert (result.baseline, result.current) == (15, 0)


def test_bounds_period_start_wins_over_authored_on():
    dosage = dose(code="BID", bounds=("2025-03-01T08:00:00Z", None))
    request = order("b", "1049621", dosage, authored="2025-02-01", dispenseRequest=supply(10))
    assert interval(request) == (date(2025, 3, 1), date(2025, 3, 11))


@pytest.mark.parametrize(
    ("dispense", "end"),
    [
        (supply(30), date(2025, 3, 31)),
        (supply(30, repeats=2), date(2025, 5, 30)),
        (supply(2, unit="wk"), date(2025, 3, 15)),
        (supply(1, repeats=1, unit="mo"), date(2025, 4, 30)),
    ],
)
def test_expected_supply_duration_times_fills_sets_the_end(dispense, end):
    assert interval(bid_oxy(authoredOn="2025-03-01", dispenseRequest=dispense)) == (
        date(2025, 3, 1),
        end,
    )


def test_bounds_duration_sets_the_end():
    request = bid_oxy(authoredOn="2025-03-01")
    repeat = {"boundsDuration": {"value": 10, "code": "d"}}
    request["dosageInstruction"][0]["timing"]["repeat"] = repeat
    assert interval(request) == (date(2025, 3, 1), date(2025, 3, 11))


def test_validity_period_gives_start_and_end():
    dispense = {"validityPeriod": {"start": "2025-03-01", "end": "2025-04-15"}}
    assert interval(bid_oxy(dispenseRequest=dispense)) == (date(2025, 3, 1), date(2025, 4, 16))


def test_active_order_without_end_is_open_ended():
    assert interval(bid_oxy(status="active", authoredOn="2024-01-01")) == (date(2024, 1, 1), None)


def test_completed_order_without_end_lasts_the_default_30_days():
    assert interval(bid_oxy(authoredOn="2025-03-01")) == (date(2025, 3, 1), date(2025, 3, 31))


def test_default_supply_days_is_configurable():
    request = bid_oxy(authoredOn="2025-03-01")
    assert interval(request, default_supply_days=14) == (date(2025, 3, 1), date(2025, 3, 15))


def test_active_order_without_any_start_is_active_every_day():
    result = assess(bid_oxy(status="active"))
    assert (result.orders[0].start, result.orders[0].end) == (None, None)
    assert (result.baseline, result.baseline_day, result.current) == (15, date(2024, 12, 17), 15)


def test_completed_order_without_any_start_is_ignored():
    assert assess(bid_oxy()).orders == ()


def test_lookback_window_is_configurable():
    old = order("old", "892672", dose(code="QID"), status="completed", authored="2024-10-01")
    assert assess(old).result == "unknown"
    result = assess(old, lookback_days=365)
    assert (result.result, result.baseline, result.baseline_day) == ("met", 120, date(2024, 10, 1))


def test_order_starting_after_the_reference_date_is_not_counted():
    future = order("f", "892672", dose(code="QID"), authored="2025-07-01")
    assert assess(*example_1(), future).current == 30


# --- tolerance ------------------------------------------------------------------------------------


JUNK_REQUESTS = [
    None,
    "MedicationRequest",
    [],
    {},
    {"medicationCodeableConcept": "oxycodone"},
    {"medicationCodeableConcept": {"coding": "1049621"}},
    {"medicationCodeableConcept": {"coding": {"system": RXNORM, "code": "1049621"}}},
    order("j1", "1049621", "take one"),
    order("j2", "1049621", dose("10", "mg", code="BID")),
    order("j3", "1049621", dose(True, code="BID")),
    order("j4", "1049621", dose(10**400, "mg", code="BID")),
    order("j5", "1049621", dose(1, ["mg"], code=["BID"])),
    order("j6", "1049621", {"timing": "BID", "doseAndRate": "1 tab"}),
    order("j7", "1049621", dose(None, every=(1, "12", "h"), doseQuantity={"value": 1})),
    order("j8", "1049621", dose(code="BID", sequence=[1]), dose(code="BID", sequence={"a": 1})),
    order("j9", "1049621", dose(code="BID", maxDosePerPeriod=[{"numerator": "x"}])),
    order("j10", "1049621", dose(code="BID"), status=["active"], intent={"x": 1}, authoredOn=1),
    order("j11", "1049621", dose(code="BID"), authored="2025-13-45", dispenseRequest="30 days"),
    order("j12", "1049621", dose(code="BID"), authored="9999-12-31", dispenseRequest=supply(1e9)),
    order("j13", "1049621", dose(code="BID", bounds=("2025-01-01", "9999-12-31"))),
    order("j14", "4337", dose("25", "ug/h")),
    order("j15", "245134", dose(None), dispenseRequest={"numberOfRepeatsAllowed": "two"}),
    {"medicationReference": "Medication/1", "dosageInstruction": [None, 3, "x"]},
]


@pytest.mark.parametrize("request_json", JUNK_REQUESTS)
def test_malformed_input_never_raises(request_json):
    daily_mme(request_json, resolver(), TABLES)
    opioid_ingredients(request_json, resolver(), TABLES)
    route_codes(request_json)
    assess_wean([(request_json, False), (request_json, True)], resolver(), R, TABLES)


def test_malformed_number_makes_the_order_uncomputable():
    mme, name, arithmetic = computed(order("j", "1049621", dose("10", "mg", code="BID")))
    assert (mme, name) == (None, "oxycodone")
    assert "not a positive number" in arithmetic


def test_malformed_pairs_are_skipped():
    pairs = [None, ("x",), (example_1()[2], False, "extra"), "junk"]
    result = assess_wean(pairs, no_resolve, R, TABLES)
    assert (result.result, result.orders) == ("unknown", ())


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda children: st.lists(children, max_size=3)
    | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=10,
)
FIELDS = [
    "status", "intent", "authoredOn", "dispenseRequest", "dosageInstruction", "medicationReference",
    "medicationCodeableConcept",
]
DOSAGE_FIELDS = ["timing", "doseAndRate", "maxDosePerPeriod", "route", "sequence", "doseQuantity"]


@settings(max_examples=300, deadline=None)
@given(
    field=st.sampled_from(FIELDS),
    value=json_values,
    dosage_field=st.sampled_from(DOSAGE_FIELDS),
    dosage_value=json_values,
)
def test_random_json_in_any_field_never_raises(field, value, dosage_field, dosage_value):
    request = order("fuzz", "1049621", dose(code="BID"), authored="2025-06-01")
    request["dosageInstruction"][0][dosage_field] = dosage_value
    request[field] = value
    for is_draft in (False, True):
        assess_wean([(request, is_draft)], lambda r: value, R, TABLES)


# --- loading -------------------------------------------------------------------------------------


def test_tables_carry_the_cdc_2022_factors_and_the_curated_products():
    assert TABLES.version == "cdc-2022"
    assert "MMWR Recomm Rep 2022;71(No. RR-3)" in TABLES.source
    assert TABLES.factors["3423"] == 5 and TABLES.factors["6813"] == 4.7
    assert TABLES.hourly_factors["4337"] == (2.4, "316987")
    # Every product row of spec/TERMINOLOGY.md §1 is in the table, with its ingredient.
    section_1 = {"1049621": "7804", "1049683": "7804", "1049611": "7804", "1049618": "7804",
                 "1049502": "7804", "1049563": "7804", "857002": "5489", "856999": "5489",
                 "891878": "7052", "891885": "7052", "892582": "7052", "892672": "7052",
                 "897696": "3423", "897702": "3423", "835603": "10689", "864718": "6813",
                 "864706": "6813", "577057": "4337", "245134": "4337", "245135": "4337",
                 "197696": "4337", "993781": "2670", "825411": "787390", "977939": "7814",
                 "861467": "6754", "351265": "1819", "1010600": "1819", "892531": "7052",
                 "897745": "3423", "892473": "7052", "892489": "7052", "892652": "7052", "1731999": "7052"}
    assert {code: TABLES.products[code].ingredient for code in section_1} == section_1
    assert len(TABLES.products) > 250
    assert TABLES.always_excluded == {"892652", "1731999"}
    assert TABLES.neuraxial_excluded == {"892473", "892489"}


def test_load_from_another_folder_reads_its_version(tmp_path: pathlib.Path):
    shutil.copy(DATA_DIR / "rxnorm-opioid-products.yaml", tmp_path)
    shutil.copy(DATA_DIR / "rxnorm-opioid-products.tsv", tmp_path)
    text = (DATA_DIR / "mme-factors-cdc-2022.yaml").read_text(encoding="utf-8")
    (tmp_path / "mme-factors-cdc-2022.yaml").write_text(
        text.replace("version: cdc-2022", "version: payer-x"), encoding="utf-8"
    )
    assert load_mme_tables(tmp_path).version == "payer-x"


def test_product_with_unknown_ingredient_fails_at_load(tmp_path: pathlib.Path):
    shutil.copy(DATA_DIR / "mme-factors-cdc-2022.yaml", tmp_path)
    shutil.copy(DATA_DIR / "rxnorm-opioid-products.yaml", tmp_path)
    text = (DATA_DIR / "rxnorm-opioid-products.tsv").read_text(encoding="utf-8")
    (tmp_path / "rxnorm-opioid-products.tsv").write_text(
        text.replace("1049621\t7804\t", "1049621\t99999\t", 1), encoding="utf-8"
    )
    with pytest.raises(ValueError, match=r"row 2: ingredient 99999"):
        load_mme_tables(tmp_path)


def test_order_coded_with_j2274_under_the_blue_button_hcpcs_uri_is_excluded():
    request = recent("j", "7052", dose(10, "mg", code="QD"))
    request["medicationCodeableConcept"]["coding"].append(
        {"system": "https://bluebutton.cms.gov/resources/codesystem/hcpcs", "code": "J2274"})
    assert assess(request).orders == ()
