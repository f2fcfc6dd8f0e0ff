"""What a policy names once and uses by name — ``define`` (tests) and ``lists`` (criteria) — and
the walks over its criteria and tests that loading, checking and linting share.

A named list is expanded into the tree where an ``at_least`` counts it: each item takes its id
from the use's ``ids`` template (``A.a.ii.3.b.{1}`` numbers the items 1, 2, …; ``{a}`` letters
them a, b, …), its children are named below it (``A.a.ii.3.b.11.or2``), and every cite is the
use's ``cite`` template, a dash and the item's own quote. The expansions of one item are twins: a
documentation answer to one answers the others (the latest answer wins).
"""

from __future__ import annotations

import string
from typing import Iterator
from typing import Mapping

from cdshooks.policy.model import AtLeast
from cdshooks.policy.model import Expr
from cdshooks.policy.model import Node
from cdshooks.policy.model import Policy

TOKENS = {"{1}": lambda i: str(i + 1), "{a}": lambda i: string.ascii_lowercase[i]}


def expand(model: Policy) -> tuple[Policy, dict[str, tuple[str, ...]], dict[str, tuple]]:
    """The policy with its named lists placed in the tree; twins (id → the other expansions'
    ids); and, for every criterion, the path of the text that wrote it (for problems)."""
    twins: dict[tuple, list[str]] = {}
    paths: dict[str, tuple] = {}

    def place(node: Node, path: tuple) -> Node:
        paths.setdefault(node.id, path)
        at_least = node.at_least
        if at_least is not None and isinstance(at_least.of, str):
            items = model.lists.get(at_least.of)
            if not items:
                return node  # list_problems names the missing list
            of = [place_item(item, _fill(at_least.ids, i), _fill(at_least.cite, i), ("lists", at_least.of, i))
                  for i, item in enumerate(items)]
            return node.model_copy(update={"at_least": AtLeast(n=at_least.n, of=of)})
        key = node.op
        if key is None:
            return node
        base = path + (key, "of") if key == "at_least" else path + (key,)
        children = [place(child, base + (i,)) for i, child in enumerate(node.children())]
        return _with_children(node, children)

    def place_item(item: Node, new_id: str, cite: str, path: tuple) -> Node:
        twins.setdefault(path, []).append(new_id)
        paths.setdefault(new_id, path)
        key = item.op
        update = {"id": new_id, "cite": f"{cite} — {item.cite}"}
        if key is None:
            return item.model_copy(update=update)
        base = path + (key, "of") if key == "at_least" else path + (key,)
        children = [place_item(child, f"{new_id}.{child.id}", cite, base + (i,))
                    for i, child in enumerate(item.children())]
        return _with_children(item.model_copy(update=update), children)

    root = place(model.criteria, ("criteria",))
    pairs = {i: tuple(t for t in ids if t != i) for ids in twins.values() for i in ids if len(ids) > 1}
    return model.model_copy(update={"criteria": root}), pairs, paths


def _fill(template: str, i: int) -> str:
    for token, number in TOKENS.items():
        template = template.replace(token, number(i))
    return template


def _with_children(node: Node, children: list[Node]) -> Node:
    if node.at_least is not None:
        return node.model_copy(update={"at_least": AtLeast(n=node.at_least.n, of=children)})
    return node.model_copy(update={node.op: children})


def list_problems(model: Policy) -> Iterator[tuple[tuple, str]]:
    """(path, detail) for named lists that are used wrongly or not at all."""
    used = set()
    for node, path in _uses(model.criteria, ("criteria",)):
        name = node.at_least.of
        used.add(name)
        if name not in model.lists:
            yield path + ("at_least", "of"), f"no list '{name}'"
        elif len(model.lists[name]) > len(string.ascii_lowercase) and "{a}" in node.at_least.ids:
            yield path + ("at_least", "ids"), "more items than letters: number them with {1}"
        elif node.at_least.n > len(model.lists[name]):
            yield path + ("at_least", "n"), f"at least {node.at_least.n} of {len(model.lists[name])} items"
    for name in model.lists:
        if name not in used:
            yield ("lists", name), f"list '{name}' is never used"


def _uses(node: Node, path: tuple) -> Iterator[tuple[Node, tuple]]:
    if node.at_least is not None and isinstance(node.at_least.of, str):
        yield node, path
        return
    key = node.op
    base = path + (key, "of") if key == "at_least" else path + (key,)
    for i, child in enumerate(node.children()):
        yield from _uses(child, base + (i,))


def define_problems(define: Mapping[str, Expr], uses: Iterator[tuple[Expr, tuple]]) -> Iterator[tuple[tuple, str]]:
    """(path, detail) for references to definitions that do not exist, cycles, and unused ones."""
    used = set()
    for expr, path in uses:
        if expr.def_ is not None:
            used.add(expr.def_)
            if expr.def_ not in define:
                yield path + ("def",), f"no definition '{expr.def_}'"
    for name in define:
        if name in _reachable(define, name):
            yield ("define", name), f"definition '{name}' refers to itself"
        if name not in used:
            yield ("define", name), f"definition '{name}' is never used"


def _reachable(define: Mapping[str, Expr], name: str) -> set[str]:
    seen: set[str] = set()
    stack = [define[name]]
    while stack:
        expr = stack.pop()
        for sub, _ in sub_exprs(expr):
            if sub.def_ is not None and sub.def_ not in seen and sub.def_ in define:
                seen.add(sub.def_)
                stack.append(define[sub.def_])
    return seen


def criteria(node: Node) -> Iterator[Node]:
    """Every criterion of the tree, in pre-order."""
    yield node
    for child in node.children():
        yield from criteria(child)


def tests(model: Policy, paths: Mapping[str, tuple]) -> Iterator[tuple[Expr, tuple]]:
    """Every test of the policy with its path: the criteria's, the definitions', the rules'."""
    seen = set()  # a named-list item placed twice is checked once
    for node in criteria(model.criteria):
        path = paths[node.id]
        for key in ("when", "ask_when"):
            if getattr(node, key) is not None and path + (key,) not in seen:
                seen.add(path + (key,))
                yield from sub_exprs(getattr(node, key), path + (key,))
    for name, expr in model.define.items():
        yield from sub_exprs(expr, ("define", name))
    for i, rule in enumerate(model.applicability):
        for key in ("requires", "confirm"):
            if getattr(rule, key) is not None:
                yield from sub_exprs(getattr(rule, key), ("applicability", i, key))


def sub_exprs(expr: Expr, path: tuple = ()) -> Iterator[tuple[Expr, tuple]]:
    """The test and every test inside it, with their paths (definitions are not followed)."""
    yield expr, path
    for key in ("all", "any"):
        for i, child in enumerate(getattr(expr, key) or ()):
            yield from sub_exprs(child, path + (key, i))
    if expr.not_ is not None:
        yield from sub_exprs(expr.not_, path + ("not",))


def resolved(expr: Expr, define: Mapping[str, Expr], seen: frozenset = frozenset()) -> Iterator[Expr]:
    """Every expression inside ``expr``, following definitions (each once per path)."""
    for sub, _ in sub_exprs(expr):
        yield sub
        if sub.def_ is not None and sub.def_ in define and sub.def_ not in seen:
            yield from resolved(define[sub.def_], define, seen | {sub.def_})
