"""A policy as a readable document (the target of every card's policy link)."""

from __future__ import annotations

from cdshooks.jsonio import prune


def build(policy) -> dict:
    """Header, When/Then description and every criterion with its citation, in tree order."""
    model = policy.model
    criteria = []

    def visit(node, parent):
        entry = {"id": node.id, "text": node.text, "cite": node.cite, "parent": parent,
                 "kind": node.op or node.type or "reference", "refersTo": node.ref}
        criteria.append({k: v for k, v in entry.items() if v is not None})
        for child in node.children():
            visit(child, node.id)

    visit(model.criteria, None)
    return prune({  # an empty setting (no preferred products configured) is left out, as is an empty map
        "id": model.id, "version": model.version, "title": model.title, "issuer": model.issuer,
        "reference": model.source.reference, "effective": model.effective.isoformat(),
        "jurisdiction": model.jurisdiction, "description": model.description.strip(),
        "settings": dict(policy.settings), "criteria": criteria,
    })
