"""CRD coverage assertions as policies and the deployment declare them: reasons, codes and invariants.

A policy's response table and the deployment's statement for uncovered orders are checked against
these rules when they load, so an assertion that breaks a CRD invariant never reaches a client.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import Field
from pydantic import model_validator

from cdshooks.policy.model import Coverage

CRD_CODES = "http://hl7.org/fhir/us/davinci-crd/CodeSystem/temp"
# The coverageAssertionReasons value set per CRD version: 2.0.1 as in its package
# (ValueSet-coverageAssertionReasons.json); 2.2 adds the problem reasons (IG 2.2, resp-43..45).
REASON_CODES = {
    "2.0": frozenset({"gold-card", "detail-code"}),
    "2.2": frozenset({"gold-card", "no-member-found", "no-active-coverage", "coverage-not-found",
                      "auth-out-network", "technical"}),
}


@dataclass(frozen=True)
class Reason:
    """The ``reason`` of an assertion: readable text, with a coverageAssertionReasons code where one applies."""

    text: str
    code: str | None = None

    def concept(self) -> dict:
        coding = [{"system": CRD_CODES, "code": self.code}] if self.code else []
        return {**({"coding": coding} if coding else {}), "text": self.text}


def invariant_problems(values: dict, version: str = "2.0") -> list[str]:
    """Broken CRD invariants (2.2 q1–q9, read so that 2.0.1 is satisfied as well)."""
    covered, pa, doc = values.get("covered"), values.get("pa-needed"), values.get("doc-needed")
    purpose, info, reason = values.get("doc-purpose"), values.get("info-needed"), values.get("reason")
    problems = []
    if (covered != "not-covered") != (pa is not None):
        problems.append("pa-needed must be present exactly when covered is not 'not-covered' (q2)")
    conditional = "conditional" in (covered, pa, doc)
    if conditional != (info is not None):
        problems.append("info-needed must be present exactly when something is 'conditional' (q3)")
    if purpose == "withpa" and pa != "auth-needed":
        problems.append("doc-purpose 'withpa' needs pa-needed 'auth-needed' (q4)")
    if purpose is not None and doc is None:
        problems.append("doc-purpose needs doc-needed")
    if values.get("questionnaire") and doc is None:
        problems.append("questionnaire needs doc-needed (q1)")
    if (info == "OTH" or purpose is not None) and not reason:
        problems.append("info-needed OTH and doc-purpose need a reason (q6, q8)")
    if isinstance(reason, Reason) and reason.code and reason.code not in REASON_CODES[version]:
        problems.append(f"reason code '{reason.code}' is not in CRD {version} coverageAssertionReasons")
    if version == "2.2" and info == "OTH" and not values.get("detail"):
        problems.append("info-needed OTH needs a detail saying what is needed (CRD 2.2)")
    return problems


class UncoveredStatement(Coverage):
    """What the payer asserts for an order no medical policy of this service covers (per deployment)."""

    covered: Literal["covered", "not-covered", "conditional"] = "conditional"
    pa_needed: Literal["no-auth", "auth-needed", "conditional"] | None = Field("no-auth", alias="pa-needed")
    info_needed: Literal["OTH"] | None = Field("OTH", alias="info-needed")
    reason: str | None = Field(None, min_length=1, description="default: said from the values above")
    detail: str = Field("The member's plan terms decide coverage when the claim is processed.", min_length=1)
    card: bool = Field(True, description="also send one Instructions card naming these orders")

    @model_validator(mode="after")
    def _valid_in_both_versions(self):
        problems = invariant_problems(self.values(), "2.2")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def values(self) -> dict:
        coded = self.model_dump(by_alias=True, exclude_none=True, include=set(Coverage.model_fields))
        return {**coded, "reason": Reason(self.reason or self._said()), "detail": self.detail}

    def _said(self) -> str:
        """The default reason: what the coded values assert, in words."""
        parts = ["No medical policy of this service applies to this order"]
        parts.append({"no-auth": "no prior authorization is needed", "auth-needed": "prior authorization is needed",
                      "conditional": "prior authorization may be needed", None: "it is not covered"}[self.pa_needed])
        if self.doc_needed:
            parts.append("documentation may be needed" if self.doc_needed == "conditional"
                         else f"{self.doc_needed} documentation is needed")
        if self.covered != "not-covered":
            parts.append("coverage follows the member's plan terms")
        return "; ".join(parts) + "."
