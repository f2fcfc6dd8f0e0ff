"""Explanations of an evaluation: deciding criteria, card text, and the machine-readable result."""

from __future__ import annotations

from cdshooks.policy.engine import Evaluation
from cdshooks.policy.evaluate import NodeResult
from cdshooks.policy.logic import MET
from cdshooks.policy.logic import NOT_MET
from cdshooks.policy.logic import UNKNOWN

_WORDS = {MET: "met", NOT_MET: "not met", UNKNOWN: "unknown", "excluded": "excluded"}
_MAX_EVIDENCE = 6
_MAX_OTHER = 12   # beyond this the card says how many more; the evaluation extension has them all


def _against(evaluation: Evaluation) -> list[str]:
    """Deciding criteria whose result counts against the order, in tree order."""
    policy, results = evaluation.match.policy, evaluation.results
    return [i for i in evaluation.deciding if policy.unfavourable(i, results[i].result)]


def headline(evaluation: Evaluation) -> str:
    """The criterion a summary names: the first deciding leaf with a ``short`` phrase."""
    policy = evaluation.match.policy
    ids = _against(evaluation) if evaluation.decision != MET else evaluation.deciding
    for node_id in ids:
        node, result = policy.nodes[node_id], evaluation.results[node_id]
        if node.short:
            return f"{node.short} ({result.brief})" if result.brief else node.short
    return policy.nodes[ids[0]].text if ids else evaluation.decision


def open_items(evaluation: Evaluation) -> str:
    """What is missing for an unknown decision: documentation items, else the first open criterion."""
    n = len(evaluation.documentation)
    if n:
        return f"{n} documentation item{'s' if n != 1 else ''} needed"
    ids = [i for i in evaluation.deciding if evaluation.results[i].result == UNKNOWN]
    if not ids:
        return "criteria not yet shown"
    node = evaluation.match.policy.nodes[ids[0]]
    return f"{node.short or node.text} not shown"


def open_ids(evaluation: Evaluation) -> list[str]:
    """Deciding criteria that count against the order, then documentation still needed."""
    ids = _against(evaluation)
    return ids + [i for i in evaluation.documentation if i not in ids]


def met_under(evaluation: Evaluation, node_id: str) -> list[str]:
    """Leaves under ``node_id`` whose result is met (e.g. which red flags), in tree order."""
    policy, found = evaluation.match.policy, []
    stack = [policy.nodes[node_id]]
    while stack:
        node = stack.pop()
        result = evaluation.results.get(node.id)
        if node.type is not None and result is not None and result.result == MET:
            found.append(node.id)
        stack.extend(reversed(node.children()))
    return found


def evaluation_json(evaluation: Evaluation) -> dict:
    """The ``cdshooks.evaluation`` card extension (CONTRACT §4.1)."""
    model = evaluation.match.policy.model
    out = {
        "policy": {"id": model.id, "version": model.version, "title": model.title},
        "order": evaluation.match.order.reference,
        "decision": evaluation.decision,
        "criteria": [_criterion_json(r) for r in evaluation.results.values()],
    }
    if evaluation.outcome:
        out["outcome"] = evaluation.outcome
    if evaluation.documentation:
        out["documentation"] = list(evaluation.documentation)
    return out


def _criterion_json(result: NodeResult) -> dict:
    out = {"id": result.id, "result": result.result}
    if result.evidence:
        out["evidence"] = [e.as_json() for e in result.evidence]
    if result.note:
        out["note"] = result.note
    return out


def detail(evaluation: Evaluation, row, base_url: str) -> str:
    """Card detail (Markdown): deciding criteria with evidence, other open criteria, documentation."""
    policy, results = evaluation.match.policy, evaluation.results
    lines = [f"**{_WORDS[evaluation.decision].capitalize()}** — {policy.model.issuer}, "
             f"{policy.model.source.reference} ({policy.model.title}), evaluated on {evaluation.dates['T']}"
             + (f" for a service date of {evaluation.dates['E']}" if evaluation.dates["E"] != evaluation.dates["T"] else "")
             + "."]
    if evaluation.outcome:
        lines.append(f"Outcome: **{evaluation.outcome}**.")
    if row.quote:
        lines += ["", f"> {row.quote}"]
    ids = evaluation.deciding
    lines += ["", "**Deciding criteria**", *(_line(policy, results[i]) for i in ids)]
    others = [r for r in results.values() if r.leaf and r.id not in ids and policy.nodes[r.id].decisive
              and policy.unfavourable(r.id, r.result)]
    if others:
        lines += ["", "**Other criteria not met or not shown**", *(_line(policy, r) for r in others[:_MAX_OTHER])]
        if len(others) > _MAX_OTHER:
            lines.append(f"- and {len(others) - _MAX_OTHER} more (all criteria are in the card's evaluation extension)")
    if evaluation.documentation:
        lines += ["", f"**Documentation needed** (answer yes/no in Questionnaire/{policy.id}): "
                  + ", ".join(evaluation.documentation)]
    note = data_note(evaluation.context.record)
    if note:
        lines += ["", note]
    return "\n".join(lines)


def data_note(record) -> str:
    """What of the sent record was not used: resources of another patient (D11)."""
    left_out = record.other_patients
    if not left_out:
        return ""
    total = sum(left_out.values())
    kinds = ", ".join(f"{kind} {n}" for kind, n in sorted(left_out.items()))
    return (f"_Data note: {total} resource{'s' if total != 1 else ''} of another patient "
            f"{'were' if total != 1 else 'was'} left out ({kinds})._")


def _line(policy, result: NodeResult) -> str:
    """``- **id** result — paraphrase — note · evidence``."""
    node = policy.nodes[result.id]
    text = f"- **{result.id}** {_WORDS[result.result]} — {node.text}"
    if result.note:
        text += f" — {result.note}"
    evidence = [str(e) for e in result.evidence[:_MAX_EVIDENCE]]
    if len(result.evidence) > _MAX_EVIDENCE:
        evidence.append(f"and {len(result.evidence) - _MAX_EVIDENCE} more")
    if evidence:
        text += " · " + "; ".join(evidence)
    elif result.source == "default":
        text += " · no record or documentation"
    return text
