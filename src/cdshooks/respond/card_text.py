"""Card detail for a clinician mid-order (policy README §7, CONTRACT §4.1).

First what decides, in plain words with the patient's own evidence; then, only while the decision
can still change, the open questions (most decisive first, at most five); on order-sign what the
result means for coverage; criterion ids only in a trailing reference line. The complete
evaluation stays in the card's ``cdshooks.evaluation`` extension.
"""

from __future__ import annotations

import datetime as dt
from functools import cache

from cdshooks.facts.calculators.orders import order_codes
from cdshooks.policy.applicability import Evaluation
from cdshooks.policy.applicability import result_in
from cdshooks.policy.evaluate import NodeResult
from cdshooks.policy.logic import MET
from cdshooks.policy.logic import NOT_MET
from cdshooks.policy.logic import UNKNOWN
from cdshooks.respond import explain

MAX_MET, MAX_OTHER = 600, 1200
MAX_QUESTIONS = 5
QUESTIONS_HEADING = "**Open questions**"
_MAX_FINDINGS = 12    # the first two as full lines, the rest folded into one line of short notes
_FULL_FINDINGS = 2
_MAX_LINE = 320       # one line; longer evidence is cut (the extension has all of it)
_LEADS = {MET: "Meets {short}", NOT_MET: "Does not meet {short}", UNKNOWN: "Not decided yet",
          "excluded": "Outside the routine {short} route"}
_DOC_PURPOSE = {"withpa": "with the prior-authorization request", "withclaim": "with the claim",
                "withorder": "with the order", "retain-doc": "on file for review"}


def max_length(decision: str) -> int:
    return MAX_MET if decision == MET else MAX_OTHER


def detail(evaluation: Evaluation, row, hook: str) -> str:
    """The card's Markdown detail, within the §7 length for its decision: the most telling choice of
    findings, questions and quote that fits (see :func:`_rank`)."""
    policy, results = evaluation.match.policy, evaluation.results
    questions, findings = open_questions(evaluation), finding_ids(evaluation)
    lead = _lead(evaluation, bool(questions), reschedule_date(evaluation, row))
    limit = max_length(evaluation.decision)
    # the blocks are built only for the choices tried: most texts fit at one of the first choices
    finding_block = cache(lambda n: _findings_block(policy, results, findings[:n]) if n else None)
    question_block = cache(lambda n: _questions(evaluation, questions, n) if n else None)
    coverage = {asks: coverage_sentence(evaluation, row, asks) if hook == "order-sign" else None
                for asks in (False, True)}
    note = explain.data_note(evaluation.context.record) or None
    choices = [(n_findings, n_questions, quote) for n_findings in range(min(len(findings), _MAX_FINDINGS) + 1)
               for n_questions in range(min(len(questions), MAX_QUESTIONS) + 1)
               for quote in dict.fromkeys((row.quote, None))]
    for n_findings, n_questions, quote in sorted(choices, key=_rank, reverse=True):
        ids = list(dict.fromkeys([*findings[:min(n_findings, _FULL_FINDINGS)], *questions[:n_questions]]))
        blocks = [lead, finding_block(n_findings), f"> {quote}" if quote else None,
                  question_block(n_questions), coverage[n_questions > 0], note,
                  f"_{policy.model.short} criteria: {', '.join(ids)}_" if ids else None]
        text = "\n\n".join(b for b in blocks if b)
        if len(text) <= limit:
            return text
    return lead[: limit - 1] + "…"


def _rank(choice: tuple) -> tuple:
    """How telling a choice of (findings, questions, quote) is; no two choices rank alike.

    Preferred: a finding, three questions, a second finding, the facts on record, more questions, the quote.
    """
    n_findings, n_questions, quote = choice
    return (min(n_findings, 1), min(n_questions, 3), min(n_findings, 2), n_findings, n_questions, quote is not None)


# ------------------------------------------------------------------------------ what decides
def _lead(evaluation: Evaluation, asks: bool, when: dt.date | None = None) -> str:
    policy = evaluation.match.policy
    words = _LEADS[evaluation.decision].format(short=policy.model.short)
    if evaluation.dates["E"] != evaluation.dates["T"]:
        words += f" for a service date of {evaluation.dates['E']}"
    lead = f"**{words}.**"
    outcome = outcome_text(evaluation)
    if outcome:
        lead += f" {outcome}"
    if when is not None:
        lead += f" From {when} this no longer stands in the way; the card's suggestion moves the order to that day."
    elif evaluation.decision == UNKNOWN:
        lead += " The record does not yet answer the questions below." if asks \
            else " The record does not settle every criterion yet."
        if any(r.source == "unavailable" for r in evaluation.results.values()):
            lead += " Some record data was unavailable, so criteria that depend on it are still open."
    return lead


def reschedule_date(evaluation: Evaluation, row):
    """The date a reschedule suggestion moves the order to (the response row names the fact), if known."""
    if row.reschedule is None:
        return None
    fact = evaluation.context.fact(row.reschedule.date_fact, evaluation.dates[row.reschedule.at])
    return fact.value if fact.known and isinstance(fact.value, dt.date) else None


def outcome_text(evaluation: Evaluation) -> str | None:
    """The plain-words text of the outcome that applied (never its code)."""
    outcome = _applied_outcome(evaluation)
    return outcome.text if outcome else None


def _applied_outcome(evaluation: Evaluation):
    """The outcome rule behind ``evaluation.outcome`` (codes may repeat: the first whose results hold)."""
    candidates = [o for o in evaluation.match.policy.model.outcomes if o.code == evaluation.outcome]
    for outcome in candidates:
        if all(result_in(evaluation.results, i, allowed) for i, allowed in outcome.when.results.items()):
            return outcome
    return candidates[0] if candidates else None


def finding_ids(evaluation: Evaluation) -> list[str]:
    """Decided leaves that explain the decision, most telling first, each with record data."""
    return list(evaluation.derived("finding ids", _finding_ids))


def _finding_ids(evaluation: Evaluation) -> list[str]:
    policy, results = evaluation.match.policy, evaluation.results
    ids = _outcome_leaves(evaluation)
    if evaluation.decision == MET:
        ids += [i for i in evaluation.deciding if _is_leaf(policy, i)]
    elif evaluation.decision == UNKNOWN:  # what the record holds but cannot settle, then the record's facts
        ids += [i for i in evaluation.deciding if _is_leaf(policy, i) and results[i].result == UNKNOWN
                and results[i].evidence]
        live = [i for i in _live_decided(evaluation)  # a favourable result without data says little here
                if results[i].evidence or policy.unfavourable(i, results[i].result)]
        ids += sorted(live, key=lambda i: (not results[i].evidence, policy.unfavourable(i, results[i].result)))
    else:
        ids += explain.failed_leaves(evaluation)
    about_order = _about_the_order_only(evaluation)
    ids = [i for i in dict.fromkeys(ids)
           if policy.unfavourable(i, results[i].result) or (policy.nodes[i].type != "rule" and not about_order(i))]
    with_data = [i for i in ids if results[i].source != "default"]
    chosen = with_data if with_data or evaluation.decision == UNKNOWN else ids
    return _distinct(policy, results, chosen)


def _about_the_order_only(evaluation: Evaluation):
    """Whether a result only restates what was ordered (its code, its product): no news to the orderer."""
    order = evaluation.match.order
    codes = {code for _, code in order_codes(order.resource, evaluation.context.record)}

    def check(node_id: str) -> bool:
        evidence = evaluation.results[node_id].evidence
        return bool(evidence) and all(e.reference == order.reference and e.value.split(" ", 1)[0] in codes
                                      for e in evidence)
    return check


def _outcome_leaves(evaluation: Evaluation) -> list[str]:
    """The leaves an applied outcome names (a group stands for its met leaves: which red flags)."""
    outcome = _applied_outcome(evaluation)
    policy, results, out = evaluation.match.policy, evaluation.results, []
    for node_id in outcome.when.results if outcome else ():
        if _is_leaf(policy, node_id):
            out.append(node_id)
        elif node_id in results and results[node_id].result == MET:
            out += explain.met_under(evaluation, node_id)
    return out


def _live_decided(evaluation: Evaluation) -> list[str]:
    """Decided leaves whose groups are all still open: the facts the open questions build on."""
    policy, results = evaluation.match.policy, evaluation.results
    leaves, ancestors = policy.tree.leaves, policy.tree.ancestors
    out = []
    for node_id, result in results.items():
        if node_id not in leaves or result.result == UNKNOWN or not policy.nodes[node_id].decisive:
            continue
        above = ancestors[node_id]
        if above and all(a in results and results[a].result == UNKNOWN for a in above):
            out.append(node_id)
    return out


def _distinct(policy, results, ids: list[str]) -> list[str]:
    """One finding per piece of evidence (MN-3 and NMN-6 both read the gestational age)."""
    seen, out = set(), []
    for node_id in ids:
        evidence = "; ".join(_evidence_parts(results[node_id]))
        key = evidence if evidence and not evidence.startswith("answered") else _question(policy.nodes[node_id])
        if key not in seen:
            seen.add(key)
            out.append(node_id)
    return out


def _findings_block(policy, results, ids: list[str]) -> str:
    lines = [_finding(policy, results[i]) for i in ids[:_FULL_FINDINGS]]
    folded = [i for i in ids[_FULL_FINDINGS:] if _brief(policy, results[i])]
    for label, group in (("Also on record", [i for i in folded if not policy.unfavourable(i, results[i].result)
                                             and results[i].result == MET]),
                         ("On record, not qualifying",
                          [i for i in folded if policy.unfavourable(i, results[i].result)])):
        if group:
            line = f"- **{label}:** " + "; ".join(dict.fromkeys(_brief(policy, results[i]) for i in group))
            lines.append(line if len(line) <= _MAX_LINE else line[: _MAX_LINE - 1].rstrip() + "…")
    return "\n".join(lines)


def _brief(policy, result: NodeResult) -> str:
    """A few words of evidence without references: the note, else the first evidence value."""
    first = result.evidence[0] if result.evidence else None
    if first and first.reference.startswith("QuestionnaireResponse/"):
        return f"{_question(policy.nodes[result.id])} {'Yes' if result.result == MET else 'No'} (questionnaire)"
    value = first.value if first else ""
    if result.note and value and value.split(" ", 1)[0] not in result.note:
        return f"{result.note} ({value})"
    return result.note or value


def _finding(policy, result: NodeResult) -> str:
    """``- <question> **Yes|No|Not decided** — <note>; <evidence>…`` within one line's budget."""
    question = _question(policy.nodes[result.id])
    answer = {MET: "Yes", NOT_MET: "No"}.get(result.result, "Not decided")
    line = f"- {question} **{answer}** — "
    parts = _evidence_parts(result, question)
    if not parts:
        return line + "nothing in the record or the questionnaire says so"
    shown = 0
    while shown < len(parts) and len(line) + len("; ".join(parts[: shown + 1])) + 12 <= _MAX_LINE:
        shown += 1
    if shown == 0:  # even the first part is too long: cut it
        return (line + parts[0])[: _MAX_LINE - 1].rstrip() + "…"
    rest = len(parts) - shown
    return line + "; ".join(parts[:shown]) + (f"; and {rest} more" if rest else "")


def _evidence_parts(result: NodeResult, question: str = "") -> list[str]:
    """The result's note (unless the question already says it), then each piece of evidence."""
    parts = [result.note] if result.note and result.note.lower() not in question.lower() else []
    for evidence in result.evidence:
        if evidence.reference.startswith("QuestionnaireResponse/"):
            answered = evidence.value.rsplit(" answered ", 1)[-1]
            when = f", {evidence.date}" if evidence.date else ""
            parts.append(f"answered {answered} in the questionnaire ({evidence.reference}{when})")
        elif evidence.value not in result.note:
            parts.append(str(evidence))
    return parts


# ------------------------------------------------------------------------------ open questions
def open_questions(evaluation: Evaluation) -> list[str]:
    """Open leaves that can still change an undecided result, most decisive first, one per question.

    Only an unknown decision can change: a met or not-met root under three-valued logic stays as it
    is whatever the unknown leaves turn out to be, and so do decided groups (the malignant branch
    for non-malignant pain). Documentation leaves the policy does not want asked are left out.
    """
    return list(evaluation.derived("open questions", _open_questions))


def _open_questions(evaluation: Evaluation) -> list[str]:
    if evaluation.decision != UNKNOWN:
        return []
    policy, results = evaluation.match.policy, evaluation.results
    asked = set(evaluation.documentation)
    ids = [i for i in evaluation.deciding if _is_leaf(policy, i) and results[i].result == UNKNOWN
           and (not results[i].doc_leaf or i in asked)]
    ids += [i for i in evaluation.documentation if not policy.nodes[i].decisive and i not in ids]
    ranked = sorted(ids, key=lambda i: (_waiting(policy, results, i), policy.order[i]))
    seen, out = set(), []
    for node_id in ranked:
        question = _question(policy.nodes[node_id])
        if question not in seen:
            seen.add(question)
            out.append(node_id)
    return out


def _questions(evaluation: Evaluation, ids: list[str], shown: int) -> str:
    policy, results = evaluation.match.policy, evaluation.results
    in_form = all(results[i].doc_leaf for i in ids)
    heading = QUESTIONS_HEADING + (" — answer them in the documentation questionnaire:" if in_form else ":")
    lines = [heading, *(f"{n}. {_question(policy.nodes[i])}" for n, i in enumerate(ids[:shown], 1))]
    rest = len(ids) - shown
    if rest:
        more = [i for i in ids[shown:]]
        where = " in the questionnaire" if all(results[i].doc_leaf for i in more) else ""
        lines.append(f"…and {rest} more{where}.")
    return "\n".join(lines)


def _waiting(policy, results, leaf_id: str) -> int:
    """How many open questions come before this one in the groups it belongs to.

    In an ``all`` group the first open child is the gate (is the regimen's FN risk intermediate?);
    the children after it (which risk factor?) matter only once the gate is answered.
    A non-decisive leaf (asked to qualify another, like IND-2) comes after the decisive ones.
    """
    waiting = 0 if policy.nodes[leaf_id].decisive else 1
    return waiting + sum(1 for gate in policy.tree.gated_by[leaf_id] if gate in results
                         and results[gate].result == UNKNOWN)


# ------------------------------------------------------------------------------ coverage
def coverage_sentence(evaluation: Evaluation, row, asks: bool = False) -> str | None:
    """What the order-sign result means for coverage, as the CRD coverage-information says it."""
    if evaluation.match.policy.model.jurisdiction != "US" or row.coverage is None:
        return None
    values = row.coverage
    if values.covered == "not-covered":
        return "**Not covered as ordered.**"
    purpose = _DOC_PURPOSE.get(values.doc_purpose or "", "")
    if values.pa_needed == "auth-needed":
        text = "**Prior authorization required** — send the clinical documentation " \
               + (purpose if values.doc_purpose == "withpa" else "with the request")
        text += " (with the answers to the open questions)." if asks else "."
    elif values.pa_needed == "conditional":
        text = "**Prior authorization may be required**, depending on " \
               + ("the answers to the open questions." if asks else "review.")
    else:
        text = "**No prior authorization needed.**"
        if values.doc_needed and purpose:
            text += f" Keep the clinical documentation {purpose}." if values.doc_purpose == "retain-doc" \
                else f" Send the clinical documentation {purpose}."
    if values.covered == "conditional" and values.pa_needed != "conditional":
        text += " Coverage depends on the answers." if asks else " Coverage is decided on review."
    return text


# ------------------------------------------------------------------------------ tree helpers
def _question(node) -> str:
    """The leaf's question (policy files always have one; ``cdshooks check`` says so)."""
    return node.question or f"{node.text}?"


def _is_leaf(policy, node_id: str) -> bool:
    return node_id in policy.tree.leaves
