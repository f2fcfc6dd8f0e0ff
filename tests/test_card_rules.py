"""The README §7 card rules as a checker: each rule flags the old card style and passes the new."""

from __future__ import annotations

from pathlib import Path

import pytest

from cdshooks.policy.loader import load_policy_set
from cdshooks.respond import card_rules
from cdshooks.respond.card_text import QUESTIONS_HEADING

ROOT = Path(__file__).resolve().parents[1]
LOADED = load_policy_set(ROOT / "policies", ROOT / "mappings")


def _card(detail: str, decision: str = "unknown", summary: str = "IT pump trial: documentation needed") -> dict:
    return {"summary": summary, "detail": detail, "extension": {"cdshooks.evaluation": {"decision": decision}}}


PUMP = LOADED.by_id["intrathecal-pain-pump"]
CFDNA = LOADED.by_id["prenatal-cfdna-screening"]


def test_the_old_card_style_breaks_every_rule():
    old = ("**Not met** — evaluated on 2026-11-21.\nOutcome: **too-early**.\n\n**Deciding criteria**\n"
           "- **NMN-2** not met — Fetal demise · no record or documentation\n\n**Documentation needed**: MN-1, MN-3")
    found = card_rules.problems(_card(old, "not-met"), CFDNA, "order-sign")
    text = "\n".join(found)
    assert "criterion ids ['NMN-2']" in text and "'not met —'" in text and "'Outcome:'" in text
    assert "'too-early'" in text and "prior authorization" in text


def test_open_items_must_be_questions_at_most_five_asked_once_and_only_while_undecided():
    statements = f"**Not decided yet.**\n\n{QUESTIONS_HEADING}:\n1. Life expectancy is more than 3 months"
    assert "open item is not a question" in card_rules.problems(_card(statements), PUMP, "order-select")[0]
    six = "\n".join(f"{n}. Question {n}?" for n in range(1, 7))
    assert "6 open questions" in card_rules.problems(_card(f"{QUESTIONS_HEADING}:\n{six}"), PUMP,
                                                          "order-select")[0]
    twice = f"{QUESTIONS_HEADING}:\n1. Is life expectancy more than 3 months?\n2. Is life expectancy " \
            "more than 3 months?\n…and 3 more in the questionnaire."
    assert card_rules.problems(_card(twice), PUMP, "order-select") == ["an open question is asked twice"]
    on_met = f"**Meets LHCC LA.CP.MP.173.**\n\n{QUESTIONS_HEADING}:\n1. Is life expectancy more than 3 months?"
    assert "open questions on a met card" in card_rules.problems(_card(on_met, "met"), PUMP, "order-select")[0]


@pytest.mark.parametrize("decision, limit", [("met", 600), ("not-met", 1200), ("unknown", 1200), ("excluded", 1200)])
def test_lengths_are_checked_per_decision(decision, limit):
    assert card_rules.problems(_card("x" * limit, decision), PUMP, "order-select") == []
    assert "characters" in card_rules.problems(_card("x" * (limit + 1), decision), PUMP, "order-select")[0]


def test_ids_are_allowed_only_in_the_trailing_reference_line():
    fine = "**Does not meet LHCC LA.CP.MP.173.**\n\n_LHCC LA.CP.MP.173 criteria: I.A.2.g_"
    assert card_rules.problems(_card(fine, "not-met"), PUMP, "order-select") == []
    in_summary = _card(fine, "not-met", summary="IT pump trial: I.A.2.g failed")
    assert "outside the trailing reference" in card_rules.problems(in_summary, PUMP, "order-select")[0]


def test_every_leaf_of_every_policy_has_a_question_in_yes_means_met_form():
    for policy in LOADED.by_id.values():
        for node in policy.nodes.values():
            if node.type is not None:
                assert node.question and node.question.endswith("?"), (policy.id, node.id)
                assert not node.question.startswith(("Is it not", "Was it not", "Not ")), (policy.id, node.id)
