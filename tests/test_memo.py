"""The bounded memo of start-up tables' answers per medication (facts/calculators/memo)."""

from __future__ import annotations

from cdshooks.facts.calculators import memo


def test_a_key_is_computed_once_while_the_memo_holds_it():
    kept, calls = {}, []
    assert memo.remembered(kept, "k", lambda: calls.append(1) or "first") == "first"
    assert memo.remembered(kept, "k", lambda: calls.append(1) or "second") == "first"
    assert calls == [1]


def test_a_remembered_none_is_not_computed_again():
    kept, calls = {}, []
    memo.remembered(kept, "k", lambda: calls.append(1))
    memo.remembered(kept, "k", lambda: calls.append(1))
    assert calls == [1]


def test_past_its_limit_the_memo_starts_over(monkeypatch):
    monkeypatch.setattr(memo, "LIMIT", 2)
    kept = {}
    for key in "abc":
        memo.remembered(kept, key, lambda: key)
    assert memo.remembered(kept, "d", lambda: "d") == "d" and kept == {"d": "d"}
