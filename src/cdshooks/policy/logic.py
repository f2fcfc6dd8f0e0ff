"""Kleene three-valued logic over ``met`` / ``not-met`` / ``unknown``."""

from __future__ import annotations

from cdshooks.facts.facts import MET
from cdshooks.facts.facts import NOT_MET
from cdshooks.facts.facts import UNDECIDED as UNKNOWN


def all_of(values) -> str:
    values = list(values)
    if NOT_MET in values:
        return NOT_MET
    return UNKNOWN if UNKNOWN in values else MET


def any_of(values) -> str:
    values = list(values)
    if MET in values:
        return MET
    return UNKNOWN if UNKNOWN in values else NOT_MET


def none_of(values) -> str:
    return negate(any_of(values))


def at_least(n: int, values) -> str:
    values = list(values)
    met = values.count(MET)
    if met >= n:
        return MET
    return NOT_MET if met + values.count(UNKNOWN) < n else UNKNOWN


def negate(value: str) -> str:
    return {MET: NOT_MET, NOT_MET: MET}.get(value, UNKNOWN)


def combine(op: str, values, n: int | None = None) -> str:
    """The value of a group ``op`` (all / any / none / at_least) over its children's values."""
    if op == "at_least":
        return at_least(n, values)
    return {"all": all_of, "any": any_of, "none": none_of}[op](values)
