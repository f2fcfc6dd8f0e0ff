"""Kleene three-valued logic of the criteria groups (policy README §5)."""

from __future__ import annotations

import itertools

import pytest

from cdshooks.policy import logic

M, N, U = logic.MET, logic.NOT_MET, logic.UNKNOWN


@pytest.mark.parametrize("values, all_, any_, none_", [
    ([M, M], M, M, N),
    ([M, N], N, M, N),
    ([M, U], U, M, N),
    ([N, U], N, U, U),
    ([U, U], U, U, U),
    ([N, N], N, N, M),
])
def test_groups(values, all_, any_, none_):
    assert (logic.all_of(values), logic.any_of(values), logic.none_of(values)) == (all_, any_, none_)


@pytest.mark.parametrize("values, n, expected", [
    ([M, M, U], 2, M),      # met as soon as N are met
    ([M, U, U], 2, U),
    ([M, N, N], 2, N),      # not-met only when too few can possibly be met
    ([M, N, U], 2, U),
    ([U, U, N], 3, N),
])
def test_at_least(values, n, expected):
    assert logic.at_least(n, values) == expected


def test_a_decided_group_stays_decided_whatever_its_unknown_children_turn_out_to_be():
    """Kleene monotonicity: learning an unknown child never flips a met/not-met group."""
    for values in itertools.product([M, N, U], repeat=3):
        unknowns = [i for i, v in enumerate(values) if v == U]
        for op, n in (("all", None), ("any", None), ("none", None), ("at_least", 2)):
            decided = logic.combine(op, values, n)
            if decided == U:
                continue
            for filling in itertools.product([M, N], repeat=len(unknowns)):
                known = list(values)
                for i, v in zip(unknowns, filling):
                    known[i] = v
                assert logic.combine(op, known, n) == decided


def test_negation():
    assert [logic.negate(v) for v in (M, N, U)] == [N, M, U]
