"""CRD coverage-information: the invariants of 2.0.1 and 2.2 are checked before anything is sent."""

from __future__ import annotations

import datetime as dt

import pytest

from cdshooks import coverage

VALID = [
    {"covered": "covered", "pa-needed": "auth-needed", "doc-needed": "clinical", "doc-purpose": "withpa",
     "reason": "r", "questionnaire": "q"},
    {"covered": "covered", "pa-needed": "no-auth"},
    {"covered": "conditional", "pa-needed": "no-auth", "doc-needed": "clinical", "doc-purpose": "withclaim",
     "info-needed": "OTH", "reason": "r", "questionnaire": "q"},
    {"covered": "not-covered", "reason": "r"},
]
INVALID = [
    ({"covered": "not-covered", "pa-needed": "no-auth"}, "q2"),
    ({"covered": "covered"}, "q2"),
    ({"covered": "conditional", "pa-needed": "auth-needed"}, "q3"),
    ({"covered": "covered", "pa-needed": "no-auth", "info-needed": "OTH", "reason": "r"}, "q3"),
    ({"covered": "covered", "pa-needed": "no-auth", "doc-needed": "clinical", "doc-purpose": "withpa", "reason": "r"}, "q4"),
    ({"covered": "covered", "pa-needed": "auth-needed", "questionnaire": "q"}, "q1"),
    ({"covered": "conditional", "pa-needed": "auth-needed", "info-needed": "OTH"}, "q6"),
]


@pytest.mark.parametrize("values", VALID)
def test_valid_values_pass(values):
    assert coverage.invariant_problems(values) == []


@pytest.mark.parametrize("values, invariant", INVALID)
def test_invalid_values_are_caught(values, invariant):
    assert any(invariant in problem for problem in coverage.invariant_problems(values))


def test_extension_carries_coverage_date_and_a_fresh_assertion_id():
    ext = coverage.extension(VALID[0], "Coverage/c-1", dt.date(2025, 6, 15))
    parts = {p["url"]: p for p in ext["extension"]}
    assert ext["url"] == coverage.COVERAGE_INFORMATION
    assert parts["coverage"]["valueReference"] == {"reference": "Coverage/c-1"}
    assert parts["date"]["valueDate"] == "2025-06-15" and parts["coverage-assertion-id"]["valueString"]
    assert parts["questionnaire"]["valueCanonical"] == "q"


def test_invalid_values_are_never_turned_into_an_extension():
    with pytest.raises(coverage.CoverageInvariantError):
        coverage.extension({"covered": "covered"}, "Coverage/c-1", dt.date(2025, 6, 15))


def test_the_update_keeps_the_draft_and_replaces_an_earlier_coverage_extension():
    draft = {"resourceType": "ServiceRequest", "id": "sr", "category": {"text": "x"},
             "extension": [{"url": "http://other", "valueString": "keep"},
                           {"url": coverage.COVERAGE_INFORMATION, "extension": []}]}
    updated = coverage.with_extension(draft, {"url": coverage.COVERAGE_INFORMATION, "extension": [{"url": "covered"}]})
    assert updated["category"] == [{"text": "x"}]  # the sandbox's object-for-array slip repaired
    assert [e["url"] for e in updated["extension"]] == ["http://other", coverage.COVERAGE_INFORMATION]
    assert draft["category"] == {"text": "x"}       # the request is not modified


def test_only_an_active_coverage_is_used():
    assert coverage.active_coverage([{"id": "old", "status": "cancelled"}, {"id": "c", "status": "active"}]) == "Coverage/c"
    assert coverage.active_coverage([]) is None
