"""The FHIR R4 Questionnaire of a policy: one boolean item per documentation-answerable leaf."""

from __future__ import annotations

from cdshooks.policy.model import Node


def documentation_leaves(root: Node) -> list[Node]:
    """Leaves of type ``documentation`` or ``structured+doc``, in tree order (a loaded policy keeps
    its own as ``doc_leaves``: read that instead of walking the tree again)."""
    out = []
    stack = [root]
    while stack:
        node = stack.pop()
        if node.type in ("documentation", "structured+doc"):
            out.append(node)
        stack.extend(reversed(node.children()))
    return out


def build(policy, base_url: str) -> dict:
    """Return the Questionnaire resource for ``policy``; linkIds are the criterion ids."""
    model = policy.model
    return {
        "resourceType": "Questionnaire",
        "id": model.id,
        "url": f"{base_url}/fhir/Questionnaire/{model.id}",
        "version": model.version,
        "name": "".join(part.capitalize() for part in model.id.split("-")),
        "title": f"Documentation for {model.short}: {model.title}",
        "status": "active",
        "subjectType": ["Patient"],
        "publisher": model.issuer,
        "description": (
            f"Answer each question for this patient (yes = the criterion is met). Answers are read "
            f"by the CDS service as documentation for the criteria of {model.short}."
        ),
        "item": [
            {"linkId": node.id, "text": node.question or node.text, "type": "boolean", "required": False}
            for node in policy.doc_leaves
        ],
    }
