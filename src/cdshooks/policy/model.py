"""The policy-file format (pydantic, ``extra="forbid"``): header, applicability, criteria, outcomes.

A policy reads like the rule it encodes: a When/Then ``description``, applicability rules over
the draft orders, a criteria tree whose nodes carry the spec's ids and a ``cite`` of the source
section, an outcome list (policy-specific outcome codes) and a response table (card and CRD
coverage-information per decision/outcome/setting).
"""

from __future__ import annotations

import datetime as dt
from typing import Any
from typing import Literal

from pydantic import ConfigDict
from pydantic import Field
from pydantic import model_validator

from cdshooks.files.model import FileModel

Result = Literal["met", "not-met", "unknown"]
DateName = Literal["T", "E", "R"]
_FORMS = ("fact", "all", "any", "not_", "node", "doc", "setting", "def_")
_FACT_OPS = ("present", "is_", "in_", "ge", "gt", "le", "lt", "codes_in", "result", "known")


class _Model(FileModel):
    model_config = ConfigDict(populate_by_name=True)   # the file writes "is", "in", "not"; code says is_, in_, not_


class Expr(_Model):
    """A three-valued test: over one fact, a node's result, a documentation answer, or a combination."""

    fact: str | None = Field(None, description="fact name (see mappings/)")
    at: DateName | None = Field(None, description="date the fact is taken at: T (default), E or R")
    present: bool | None = Field(None, description="present → met, refuted → not-met (inverted when false)")
    is_: Any = Field(None, alias="is", description="met when the value equals this")
    in_: list[Any] | None = Field(None, alias="in", description="met when the value is one of these")
    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None
    codes_in: list[str] | None = Field(None, description="met when any code is in these value sets (by name)")
    result: bool | None = Field(None, description="the fact's value is itself met/not-met/unknown")
    known: bool | None = Field(None, description="met when the fact is known")
    otherwise: Result | None = Field(None, description="result when the test fails (default not-met)")
    all: list[Expr] | None = None
    any: list[Expr] | None = None
    not_: Expr | None = Field(None, alias="not")
    node: str | None = Field(None, description="the result of another criterion "
                                               "(or, with is/in, whether it is one of those results)")
    setting: str | None = Field(None, description="a policy setting (with 'is' or 'in')")
    doc: str | None = Field(None, description="the documentation answer for a criterion id")
    def_: str | None = Field(None, alias="def", description="a test the policy defines by name (define:)")

    @model_validator(mode="after")
    def _one_form(self):
        forms = [f for f in _FORMS if getattr(self, f) is not None]
        if len(forms) != 1:
            raise ValueError("an expression is exactly one of fact / all / any / not / node / doc / setting / def")
        ops = [op for op in _FACT_OPS if getattr(self, op) is not None]
        if self.fact is not None and len(ops) != 1:
            raise ValueError(f"a fact test needs exactly one of {', '.join(o.rstrip('_') for o in _FACT_OPS)}")
        if (self.setting or self.node) is not None and ops and (len(ops) != 1 or ops[0] not in ("is_", "in_")):
            raise ValueError("a setting or node test takes exactly one of is / in")
        if self.setting is not None and not ops:
            raise ValueError("a setting test needs is / in")
        if self.fact is None and self.setting is None and self.node is None and (ops or self.at or self.otherwise):
            raise ValueError("only a fact test takes an operator, 'at' or 'otherwise'")
        return self


class AtLeast(_Model):
    """At least ``n`` of some criteria: written here, or a named list (``lists:``) placed here."""

    n: int = Field(ge=1)
    of: list[Node] | str = Field(description="the criteria, or the name of a list of them")
    ids: str | None = Field(None, description=(
        "with a named list: the items' ids, '{1}' numbering them 1, 2, … or '{a}' lettering them a, b, …"))
    cite: str | None = Field(None, description="with a named list: the items' section, e.g. 'Policy A.2 {a})'")

    @model_validator(mode="after")
    def _named_list(self):
        if isinstance(self.of, str):
            for key in ("ids", "cite"):
                value = getattr(self, key)
                if value is None or ("{1}" in value) == ("{a}" in value):
                    raise ValueError(f"a named list needs '{key}' with one of the tokens {{1}} or {{a}}")
        elif not self.of:
            raise ValueError("at_least needs at least one criterion")
        elif self.ids is not None or self.cite is not None:
            raise ValueError("'ids' and 'cite' name the items of a named list only")
        return self


class Node(_Model):
    """A criterion: a group (all/any/none/at_least), a leaf, or a reference to another subtree."""

    id: str = Field(min_length=1, description="criterion id exactly as in the policy spec")
    text: str = Field(min_length=1, description="short paraphrase of the criterion")
    question: str | None = Field(None, pattern=r"\?$", description=(
        "the criterion as a yes/no question a clinician can answer, 'yes' meaning met (every leaf has one)"))
    cite: str = Field(min_length=1, description="the source document section this comes from")
    all: list[Node] | None = None
    any: list[Node] | None = None
    none: list[Node] | None = None
    at_least: AtLeast | None = None
    type: Literal["structured", "structured+doc", "documentation", "rule"] | None = None
    when: Expr | None = None
    default: Result | None = None
    short: str | None = Field(None, description="phrase for a card summary when this decides")
    ask: bool = Field(True, description="list this leaf in 'documentation' while unknown")
    ask_when: Expr | None = Field(None, description=(
        "ask the documentation questions of this criterion (of every leaf below it) only when this holds"))
    decisive: bool = Field(True, description="false: evaluated and reported, but not part of the group's value")
    ref: str | None = Field(None, description="evaluate the subtree with this id here")
    at: DateName | None = Field(None, description="date the referenced subtree is evaluated at")

    @model_validator(mode="after")
    def _one_kind(self):
        groups = [g for g in ("all", "any", "none", "at_least") if getattr(self, g) is not None]
        kinds = len(groups) + (self.type is not None) + (self.ref is not None)
        if kinds != 1:
            raise ValueError("a node is exactly one of: a group (all/any/none/at_least), a leaf (type), a ref")
        if self.type is not None:
            if self.default is None:
                raise ValueError("a leaf needs a default (its result when there is no evidence)")
            if self.type in ("structured", "rule") and self.when is None:
                raise ValueError(f"a {self.type} leaf needs 'when'")
            if self.type == "documentation" and self.when is not None:
                raise ValueError("a documentation leaf is answered by documentation only: no 'when'")
        elif self.when is not None or self.default is not None:
            raise ValueError("only leaves take 'when' and 'default'")
        return self

    def children(self) -> list[Node]:
        if self.at_least is not None:  # a named list is placed in the tree when the policy loads
            return self.at_least.of if isinstance(self.at_least.of, list) else []
        return self.all or self.any or self.none or []

    def decisive_children(self) -> list[Node]:
        return [child for child in self.children() if child.decisive]

    @property
    def op(self) -> str | None:
        for op in ("all", "any", "none", "at_least"):
            if getattr(self, op) is not None:
                return op
        return None


class Applicability(_Model):
    name: str = Field(min_length=1)
    label: str = Field(min_length=1, description="how cards name the order, e.g. 'IT pump trial'")
    resource: list[Literal["MedicationRequest", "ServiceRequest", "DeviceRequest"]] = Field(min_length=1)
    codes: list[str] | None = Field(None, min_length=1, description=(
        "value sets (by name) of the ordered item; may be left out when 'requires' identifies the order"))
    requires: Expr | None = Field(None, description="further condition over draft-order facts")
    confirm: Expr | None = Field(None, description=(
        "condition checked once the record is in (may read it); the policy applies only when met"))
    sections: list[str] | None = Field(None, description="children of the root evaluated for these orders")
    cite: str = Field(min_length=1)

    @model_validator(mode="after")
    def _identifies_the_order(self):
        if self.codes is None and self.requires is None:
            raise ValueError("an applicability rule needs 'codes', 'requires', or both")
        return self


class DateRule(_Model):
    fact: str
    cite: str = Field(min_length=1)


class ResultsWhen(_Model):
    results: dict[str, Result | list[Result]] = Field(default_factory=dict)
    counterfactual: Counterfactual | None = None


class Counterfactual(_Model):
    set: dict[str, Result] = Field(min_length=1)
    node: str
    in_: list[Result] = Field(alias="in", min_length=1)


class Outcome(_Model):
    code: str = Field(min_length=1)
    when: ResultsWhen
    decision: Literal["met", "not-met", "unknown", "excluded"] | None = Field(
        None, description="the decision this outcome imposes (e.g. excluded); default: the root's value")
    text: str = Field(min_length=1, description="what the outcome means, in plain words, for the card detail")
    cite: str = Field(min_length=1)


class Coverage(_Model):
    covered: Literal["covered", "not-covered", "conditional"]
    pa_needed: Literal["no-auth", "auth-needed", "conditional"] | None = Field(None, alias="pa-needed")
    doc_needed: Literal["clinical", "admin", "conditional"] | None = Field(None, alias="doc-needed")
    doc_purpose: Literal["withpa", "withclaim", "withorder", "retain-doc", "OTH"] | None = Field(
        None, alias="doc-purpose")
    info_needed: Literal["OTH"] | None = Field(None, alias="info-needed")


class Reschedule(_Model):
    label: str = Field(min_length=1, description="button text; {date} is the new date")
    date_fact: str = Field(description="fact whose date value becomes occurrenceDateTime")
    at: DateName = "E"


class RowWhen(_Model):
    decision: list[Literal["met", "not-met", "unknown", "excluded"]] | None = None
    outcome: list[str] | None = Field(None, description="outcome codes; 'none' = no outcome")
    results: dict[str, Result | list[Result]] = Field(default_factory=dict, description="criterion results")
    settings: dict[str, bool | int | float | str] = Field(default_factory=dict)


class Response(_Model):
    when: RowWhen
    indicator: Literal["info", "warning", "critical"]
    summary: str = Field(min_length=1, description=(
        "template: {order} {policy} {deciding} {open} {fact:NAME} {brief:ID} {met:ID} {date:T|E|R}"))
    coverage: Coverage | None = None
    reschedule: Reschedule | None = None
    quote: str | None = Field(None, description="policy text quoted in the card detail")


class OverrideReason(_Model):
    code: str = Field(min_length=1)
    display: str = Field(min_length=1)


class PolicySource(_Model):
    """Where the policy comes from: the source document and the issuer's reference."""

    document: str = Field(min_length=1, description="file in policy-sources/")
    reference: str = Field(min_length=1, description="the issuer's policy number")
    url: str | None = Field(None, description="public URL of the policy")


class Policy(_Model):
    id: str = Field(pattern=r"^[a-z0-9]+(-[a-z0-9]+)*$")
    version: str = Field(min_length=1)
    title: str = Field(min_length=1)
    issuer: str = Field(min_length=1, description="source.label of the cards")
    short: str = Field(min_length=1, description="short name for summaries, e.g. 'LHCC LA.CP.MP.173'")
    description: str = Field(min_length=1, description="When … Then … in prose")
    source: PolicySource
    effective: dt.date
    jurisdiction: Literal["US", "NHS"]
    topic: Literal["guideline", "off-guideline", "coverage-info", "appropriate-use"] = "guideline"
    settings: dict[str, bool | int | float | str | list[str]] = Field(default_factory=dict)
    define: dict[str, Expr] = Field(default_factory=dict, description=(
        "named tests, used in any test as {def: NAME} (as CQL 'define')"))
    lists: dict[str, list[Node]] = Field(default_factory=dict, description=(
        "named lists of criteria, written once and counted where used (at_least: {n, of: NAME, ids, cite})"))
    dates: dict[Literal["R"], DateRule] = Field(default_factory=dict)
    applicability: list[Applicability] = Field(min_length=1)
    criteria: Node
    outcomes: list[Outcome] = Field(default_factory=list)
    responses: list[Response] = Field(min_length=1)
    override_reasons: list[OverrideReason] = Field(min_length=1)
