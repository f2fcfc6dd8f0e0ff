"""The README §7 rules for card text, checked on a card (every policy case runs them on its card)."""

from __future__ import annotations

import re

from cdshooks.policy.logic import UNKNOWN
from cdshooks.respond.card_text import MAX_QUESTIONS
from cdshooks.respond.card_text import QUESTIONS_HEADING
from cdshooks.respond.card_text import max_length

_COVERAGE_WORDS = ("Prior authorization required", "No prior authorization needed", "Not covered as ordered",
                   "Prior authorization may be required")
_QUESTION_LINE = re.compile(r"^\d+\. .+\?$")
_MORE_LINE = re.compile(r"^…and \d+ more( in the questionnaire)?\.$")


def problems(card: dict, policy, hook: str) -> list[str]:
    """What breaks README §7 in a card of ``policy`` (every policy case checks its card)."""
    summary, detail = card["summary"], card.get("detail", "")
    decision = card["extension"]["cdshooks.evaluation"]["decision"]
    found = []
    if len(detail) > max_length(decision):
        found.append(f"detail is {len(detail)} characters (≤ {max_length(decision)} when {decision})")
    found += _question_problems(detail, decision)
    lines = detail.split("\n")
    for text in (summary, *lines[:-1]):
        if ids := [i for i in _id_like(policy) if re.search(rf"(?<![\w.-]){re.escape(i)}(?![\w.-])", text)]:
            found.append(f"criterion ids {ids} outside the trailing reference: {text[:80]!r}")
    codes = {o.code for o in policy.model.outcomes if "-" in o.code}  # one-word codes are plain words
    for word in ("not met —", "not-met", "Outcome:", *sorted(codes)):
        if word in summary or word in detail:
            found.append(f"internal wording {word!r} in the card")
    if hook == "order-sign" and policy.model.jurisdiction == "US" and not any(w in detail for w in _COVERAGE_WORDS):
        found.append("an order-sign card does not say what the result means for prior authorization")
    return found


def _question_problems(detail: str, decision: str) -> list[str]:
    if QUESTIONS_HEADING not in detail:
        return []
    if decision != UNKNOWN:
        return [f"open questions on a {decision} card, whose decision no answer can change"]
    block = detail.split(QUESTIONS_HEADING, 1)[1].split("\n\n", 1)[0].split("\n")[1:]
    asked = [line for line in block if not _MORE_LINE.match(line)]
    found = [f"open item is not a question: {line!r}" for line in asked if not _QUESTION_LINE.match(line)]
    if len(asked) > MAX_QUESTIONS:
        found.append(f"{len(asked)} open questions (at most {MAX_QUESTIONS})")
    if len(set(asked)) != len(asked) or len({a.split(". ", 1)[1] for a in asked}) != len(asked):
        found.append("an open question is asked twice")
    return found


def _id_like(policy) -> list[str]:
    """Criterion ids that cannot be mistaken for words (they contain '-' or '.')."""
    return [i for i in policy.nodes if len(i) >= 3 and ("-" in i or "." in i)]
