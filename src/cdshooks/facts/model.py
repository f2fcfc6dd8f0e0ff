"""The mapping-file format: where each fact comes from in FHIR (pydantic, ``extra="forbid"``).

Two kinds of fact:

* **select** facts pick resources of one ``source`` type by code, filter them (status, D2 active
  Condition, date window, draft orders), read a value with a JSONPath compiled at start-up, convert
  its unit, and ``pick`` one answer: ``exists`` (present / refuted / no evidence), ``latest``,
  ``max``, ``min``, ``count``, ``distinct`` (how many code-set entries matched) or ``all``.
* **calculator** facts run a named pure function over other facts (``inputs``) and ``params``.
"""

from __future__ import annotations

import re
from typing import Any
from typing import Literal

from pydantic import Field
from pydantic import model_validator

from cdshooks.files.model import FileModel

FACT_NAME = r"^[a-z][a-z0-9_]*(\.[a-z0-9_]+)+$"
DURATION = re.compile(r"^P(\d+)([DWMY])$")

SourceType = Literal[
    "Patient", "Condition", "Observation", "Procedure", "ServiceRequest", "DiagnosticReport",
    "MedicationRequest", "MedicationStatement", "DeviceRequest", "QuestionnaireResponse", "Coverage",
]


class SettingRef(FileModel):
    """A calculator parameter taken from the evaluating policy's settings."""

    setting: str = Field(min_length=1, description="name of a setting in the policy file")
    default: int | float | bool | str | list[str]


class FactMapping(FileModel):
    description: str = Field(min_length=1, description="what the fact means, in one sentence")
    # --- select facts
    source: SourceType | None = Field(None, description="FHIR resource type the fact reads")
    codes: list[str] | None = Field(None, min_length=1, description="names of value sets (valuesets/<name>.json)")
    exclude_codes: list[str] = Field(default_factory=list, description="names of value sets whose codes are left out")
    exclude_pattern: str | None = Field(None, description="regex on the normalized code to exclude")
    element: str | None = Field(None, description="coded element to match (default: the type's main code)")
    status: list[str] | None = Field(None, description="allowed status values (default per type)")
    active: bool | None = Field(None, description="Conditions: only D2-active ones (default true)")
    drafts: Literal["exclude", "include", "only"] = "exclude"
    value: str | None = Field(None, description="JSONPath (jsonpath_ng.ext) read on each match")
    unit: str | None = Field(None, description=(
        "UCUM unit the value is converted to (it becomes a bare number); leave it out when a calculator "
        "reads the Quantity itself, e.g. gestational age"))
    within: str | None = Field(None, pattern=DURATION.pattern, description="window ending at the as-of date")
    ahead: str | None = Field(None, pattern=DURATION.pattern, description="window extends past the as-of date")
    since: str | None = Field(None, pattern=FACT_NAME, description="date fact that starts the window")
    pick: Literal["exists", "latest", "latest_date", "max", "min", "count", "distinct", "all"] | None = None
    # --- calculator facts
    calculator: str | None = None
    inputs: dict[str, str] = Field(default_factory=dict)
    params: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _one_kind(self):
        if (self.source is None) == (self.calculator is None):
            raise ValueError("a fact needs exactly one of 'source' (select) or 'calculator'")
        if self.source is not None and (self.codes is None or self.pick is None):
            raise ValueError("a select fact needs 'codes' and 'pick'")
        if self.calculator is not None and (self.codes or self.pick or self.value):
            raise ValueError("a calculator fact takes 'inputs' and 'params', not codes/pick/value")
        return self


class MappingFile(FileModel):
    description: str = Field(min_length=1)
    overrides: list[str] = Field(
        default_factory=list, description="mapping files whose facts this file may redefine")
    facts: dict[str, FactMapping]

    @model_validator(mode="after")
    def _fact_names(self):
        bad = [name for name in self.facts if not re.match(FACT_NAME, name)]
        if bad:
            raise ValueError(f"fact names must be dotted lower snake case: {', '.join(bad)}")
        return self


class MappingShell(FileModel):
    """The file around the facts, validated first so one bad fact does not hide the others."""

    description: str = Field(min_length=1)
    overrides: list[str] = Field(default_factory=list)
    facts: dict[str, dict]


def duration_days(value: str) -> int:
    """``P30D`` -> 30, ``P2W`` -> 14, ``P6M`` -> 180, ``P1Y`` -> 365 (calendar-day windows)."""
    number, unit = DURATION.match(value).groups()
    return int(number) * {"D": 1, "W": 7, "M": 30, "Y": 365}[unit]
