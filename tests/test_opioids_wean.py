"""Tests for the systemic-opioid wean test (pump spec §f.1): worked examples, exclusions, tolerance."""

from datetime import date

import pytest
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from cdshooks.facts.calculators.opioids.dose import daily_mme
from cdshooks.facts.calculators.opioids.dose import opioid_ingredients
from cdshooks.facts.calculators.opioids.dose import route_codes
from cdshooks.facts.calculators.opioids.wean import assess_wean
from opioid_orders import EPIDURAL
from opioid_orders import HCPCS
from opioid_orders import INTRATHECAL
from opioid_orders import INTRAVENOUS
from opioid_orders import RXNORM
from opioid_orders import TABLES
from opioid_orders import R
from opioid_orders import assess
from opioid_orders import computed
from opioid_orders import dose
from opioid_orders import example_1
from opioid_orders import no_resolve
from opioid_orders import order
from opioid_orders import q12h_tab
from opioid_orders import resolver
from opioid_orders import supply
from opioid_orders import with_route

# --- worked examples (spec §f.1) -----------------------------------------------------------------



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


def test_order_coded_with_j2274_under_the_blue_button_hcpcs_uri_is_excluded():
    request = recent("j", "7052", dose(10, "mg", code="QD"))
    request["medicationCodeableConcept"]["coding"].append(
        {"system": "https://bluebutton.cms.gov/resources/codesystem/hcpcs", "code": "J2274"})
    assert assess(request).orders == ()
