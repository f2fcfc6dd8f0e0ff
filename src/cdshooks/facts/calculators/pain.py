"""Origin of the pain a pump is requested for (policy spec intrathecal-pain-pump §f.2)."""

from __future__ import annotations

from dataclasses import dataclass

from cdshooks.fhir.codes import CodeSet


@dataclass(frozen=True)
class PainCodeSets:
    malignant: CodeSet             # MALIGNANT-PAIN
    nonmalignant: CodeSet          # NONMALIGNANT-SPECIFIC
    neutral: CodeSet               # CHRONIC-NEUTRAL (chronic pain, origin not stated)
    cancer: CodeSet                # active malignancy

    @property
    def every(self) -> tuple[CodeSet, ...]:
        return (self.malignant, self.nonmalignant, self.neutral, self.cancer)


def candidates(record, sets: PainCodeSets) -> list[dict]:
    """Resources whose codes may bear on the pain origin (index lookups, not a scan)."""
    seen: dict[int, dict] = {}
    for code_set in sets.every:
        for resource in code_set.candidates(record):
            seen.setdefault(id(resource), resource)
    return list(seen.values())


def relevant(system: str, code: str, sets: PainCodeSets) -> bool:
    """Whether a code is one of the pain or cancer codes the origin is read from."""
    return any(cs.entry_for(system, code) for cs in sets.every)


def _classify(pairs, sets: PainCodeSets) -> tuple[bool, bool, bool]:
    def has(code_set):
        return any(code_set.entry_for(system, code) for system, code in pairs)
    return has(sets.malignant), has(sets.nonmalignant), has(sets.neutral)


def pain_origin(reasons, conditions, sets: PainCodeSets) -> tuple[str, str]:
    """(``malignant`` | ``non-malignant`` | ``unknown``, why) from order reasons first, then Conditions.

    ``reasons`` and ``conditions`` are ``(system, normalized code)`` pairs (conditions: active only).
    ``why`` starts with "order reason" when the order's reasons decided.
    """
    malignant, specific, neutral = _classify(reasons, sets)
    decided = _decide(malignant, specific, "order reason")
    if decided:
        return decided
    c_malignant, c_specific, c_neutral = _classify(conditions, sets)
    decided = _decide(c_malignant, c_specific, "active Condition")
    if decided:
        return decided
    if neutral or c_neutral:
        if any(sets.cancer.entry_for(system, code) for system, code in conditions):
            return "unknown", "chronic pain without stated origin in a patient with active cancer"
        return "non-malignant", "chronic pain without stated origin and no active cancer"
    return "unknown", "no pain diagnosis that states its origin"


def _decide(malignant: bool, specific: bool, where: str) -> tuple[str, str] | None:
    if malignant and specific:
        return "unknown", f"{where} codes name both malignant and non-malignant pain"
    if malignant:
        return "malignant", f"{where}: neoplasm-related pain"
    if specific:
        return "non-malignant", f"{where}: non-malignant pain syndrome"
    return None
