"""CRD coverage-information: the invariants of 2.0.1 and 2.2 are checked before anything is sent."""

from __future__ import annotations

import datetime as dt

import pytest

from cdshooks.policy import assertions
from cdshooks.policy.assertions import Reason
from cdshooks.respond import coverage

R = Reason("r")
VALID = [
    {"covered": "covered", "pa-needed": "auth-needed", "doc-needed": "clinical", "doc-purpose": "withpa",
     "reason": R, "questionnaire": "q"},
    {"covered": "covered", "pa-needed": "no-auth"},
    {"covered": "conditional", "pa-needed": "no-auth", "doc-needed": "clinical", "doc-purpose": "withclaim",
     "info-needed": "OTH", "reason": R, "questionnaire": "q"},
    {"covered": "not-covered", "reason": R},
]
INVALID = [
    ({"covered": "not-covered", "pa-needed": "no-auth"}, "q2"),
    ({"covered": "covered"}, "q2"),
    ({"covered": "conditional", "pa-needed": "auth-needed"}, "q3"),
    ({"covered": "covered", "pa-needed": "no-auth", "info-needed": "OTH", "reason": R}, "q3"),
    ({"covered": "covered", "pa-needed": "no-auth", "doc-needed": "clinical", "doc-purpose": "withpa",
      "reason": R}, "q4"),
    ({"covered": "covered", "pa-needed": "auth-needed", "questionnaire": "q"}, "q1"),
    ({"covered": "conditional", "pa-needed": "auth-needed", "info-needed": "OTH"}, "q6"),
]


@pytest.mark.parametrize("values", VALID)
def test_valid_values_pass(values):
    assert assertions.invariant_problems(values) == []


@pytest.mark.parametrize("values, invariant", INVALID)
def test_invalid_values_are_caught(values, invariant):
    assert any(invariant in problem for problem in assertions.invariant_problems(values))


def test_extension_carries_coverage_date_and_the_assertion_id():
    ext = coverage.extension(VALID[0], "Coverage/c-1", dt.date(2025, 6, 15), "a-1")
    parts = {p["url"]: p for p in ext["extension"]}
    assert ext["url"] == coverage.COVERAGE_INFORMATION
    assert parts["coverage"]["valueReference"] == {"reference": "Coverage/c-1"}
    assert parts["date"]["valueDate"] == "2025-06-15" and parts["coverage-assertion-id"]["valueString"] == "a-1"
    assert parts["questionnaire"]["valueCanonical"] == "q"


def test_invalid_values_are_never_turned_into_an_extension():
    with pytest.raises(coverage.CoverageInvariantError):
        coverage.extension({"covered": "covered"}, "Coverage/c-1", dt.date(2025, 6, 15), "a-1")


def test_reason_is_readable_text_with_a_crd_coding_only_where_one_applies():
    assert Reason("No policy applies").concept() == {"text": "No policy applies"}
    assert Reason("Data unreadable", "technical").concept() == {
        "coding": [{"system": assertions.CRD_CODES, "code": "technical"}], "text": "Data unreadable"}


def test_a_reason_code_outside_the_versions_value_set_is_caught():
    values = {"covered": "not-covered", "reason": Reason("t", "technical")}
    assert any("coverageAssertionReasons" in p for p in assertions.invariant_problems(values, "2.0"))
    assert assertions.invariant_problems(values, "2.2") == []


def test_under_2_2_info_needed_oth_comes_with_a_detail():
    values = dict(VALID[2])
    assert any("detail" in p for p in assertions.invariant_problems(values, "2.2"))
    ext = coverage.extension({**values, "detail": "Document MN-3"}, "Coverage/c", dt.date(2025, 6, 15), "a", "2.2")
    detail = next(p for p in ext["extension"] if p["url"] == "detail")
    assert {"url": "value", "valueString": "Document MN-3"} in detail["extension"]
    assert not any(p["url"] == "detail" for p in coverage.extension(
        {**values, "detail": "Document MN-3"}, "Coverage/c", dt.date(2025, 6, 15), "a")["extension"])


def test_the_update_keeps_the_draft_and_replaces_earlier_coverage_information_for_the_same_coverage():
    ours = coverage.extension(VALID[1], "Coverage/c", dt.date(2025, 6, 15), "a")
    earlier = coverage.extension(VALID[3], "Coverage/c", dt.date(2025, 6, 1), "b")
    other_payer = coverage.extension(VALID[3], "Coverage/other", dt.date(2025, 6, 1), "c")
    draft = {"resourceType": "ServiceRequest", "id": "sr", "category": {"text": "x"},
             "extension": [{"url": "http://other", "valueString": "keep"}, earlier, other_payer]}
    updated = coverage.with_extensions(draft, [ours])
    assert updated["category"] == [{"text": "x"}]  # the sandbox's object-for-array slip repaired
    assert updated["extension"] == [{"url": "http://other", "valueString": "keep"}, other_payer, ours]
    assert draft["category"] == {"text": "x"}       # the request is not modified


def test_a_single_extension_object_from_the_sandbox_is_kept_as_an_array_item():
    ours = coverage.extension(VALID[1], "Coverage/c", dt.date(2025, 6, 15), "a")
    draft = {"resourceType": "ServiceRequest", "id": "sr", "extension": {"url": "http://other", "valueString": "keep"}}
    assert coverage.with_extensions(draft, [ours])["extension"] == [{"url": "http://other", "valueString": "keep"},
                                                                     ours]


def test_the_same_assertions_for_the_same_coverage_are_no_news():
    sent = coverage.extension(VALID[1], "Coverage/c", dt.date(2025, 6, 1), "old-id")
    again = coverage.extension(VALID[1], "Coverage/c", dt.date(2025, 6, 15), "new-id")
    changed = coverage.extension(VALID[3], "Coverage/c", dt.date(2025, 6, 15), "new-id")
    draft = {"resourceType": "ServiceRequest", "id": "sr", "extension": [sent]}
    assert not coverage.is_news(draft, [again])
    assert coverage.is_news(draft, [changed])
    assert coverage.is_news({"resourceType": "ServiceRequest", "id": "sr"}, [again])
    assert coverage.is_news({**draft,
                             "extension": [coverage.extension(VALID[1], "Coverage/x", dt.date(2025, 6, 1), "i")]},
                            [again])


def test_only_an_active_coverage_is_used():
    found = coverage.active_coverage([{"id": "old", "status": "cancelled"}, {"id": "c", "status": "active"}])
    assert coverage.reference(found) == "Coverage/c"
    assert coverage.active_coverage([]) is None


def test_a_payer_identifier_is_read_on_the_reference_or_the_payer_resource():
    org = {"resourceType": "Organization", "id": "o", "identifier": [{"system": "urn:x", "value": "P1"}]}
    resolve = lambda ref, container: org if ref.get("reference") == "Organization/o" else None  # noqa: E731
    assert coverage.has_payer_identifier({"payor": [{"identifier": {"value": "P1"}}]}, resolve)
    assert coverage.has_payer_identifier({"payor": [{"reference": "Organization/o"}]}, resolve)
    assert not coverage.has_payer_identifier({"payor": [{"reference": "Organization/org1234"}]}, resolve)
    assert not coverage.has_payer_identifier({"payor": [{"display": "Plan"}]}, resolve)
