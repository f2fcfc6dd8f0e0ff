"""Explanations of an evaluation: deciding criteria, card text, and the machine-readable result."""

from __future__ import annotations

from cdshooks.policy.applicability import Evaluation
from cdshooks.policy.evaluate import NodeResult
from cdshooks.policy.logic import MET
from cdshooks.policy.logic import NOT_MET
from cdshooks.policy.logic import UNKNOWN


def _against(evaluation: Evaluation) -> list[str]:
    """Deciding criteria whose result counts against the order, in tree order."""
    policy, results = evaluation.match.policy, evaluation.results
    return [i for i in evaluation.deciding if policy.unfavourable(i, results[i].result)]


def failed_leaves(evaluation: Evaluation) -> list[str]:
    """The leaves that made the order fail, following only the failed alternatives that came closest."""
    policy = evaluation.match.policy
    return _failed(policy, evaluation.results, policy.model.criteria)


def _failed(policy, results, node) -> list[str]:
    """Leaves that made ``node`` fail; of failed alternatives, those whose gate was passed.

    The gate of an ``all`` alternative is its first criterion (the diagnosis of a branch): a
    non-malignant pain request fails the malignant branch at its gate, so the card explains why
    the non-malignant branch failed. When every alternative failed at its gate, the gates are
    the reason (no non-myeloid malignancy, no complication, no current febrile neutropenia).
    """
    if node.id not in results:
        return []
    if node.ref is not None:
        return _failed(policy, results, policy.nodes[node.ref])
    if node.type is not None:
        return [node.id] if policy.unfavourable(node.id, results[node.id].result) else []
    value = results[node.id].result
    wanted = UNKNOWN if value == UNKNOWN else (MET if node.op == "none" else NOT_MET)
    failed = [c for c in node.decisive_children() if c.id in results and results[c.id].result == wanted]
    if node.op in ("any", "at_least") and value == NOT_MET:
        gates = {c.id: _gate(c) for c in failed}
        passed = [c for c in failed if gates[c.id] is not c and gates[c.id].id in results  # passed or still open
                  and (results[gates[c.id].id].result == UNKNOWN
                       or not policy.unfavourable(gates[c.id].id, results[gates[c.id].id].result))]
        failed = passed or [gates[c.id] for c in failed]
    return [i for child in failed for i in _failed(policy, results, child)]


def _gate(node):
    """The first criterion of an ``all`` alternative (followed down), or the alternative itself."""
    while node.op == "all" and node.decisive_children():
        node = node.decisive_children()[0]
    return node


def headline(evaluation: Evaluation) -> str:
    """The criterion a summary names: the first deciding leaf with a ``short`` phrase."""
    policy = evaluation.match.policy
    if evaluation.decision == MET:
        ids = list(evaluation.deciding)
    else:  # what the card leads with first: the failures of the alternative that got furthest
        failed = failed_leaves(evaluation) if evaluation.decision == NOT_MET else []
        ids = failed + [i for i in _against(evaluation) if i not in failed]
    ids = [i for i in ids if policy.nodes[i].ref is None]  # a reference's own leaves are listed too
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


def data_note(record) -> str:
    """What of the sent record was not used: resources of another patient (D11)."""
    left_out = record.other_patients
    if not left_out:
        return ""
    total = sum(left_out.values())
    kinds = ", ".join(f"{kind} {n}" for kind, n in sorted(left_out.items()))
    return (f"_Data note: {total} resource{'s' if total != 1 else ''} of another patient "
            f"{'were' if total != 1 else 'was'} left out ({kinds})._")
