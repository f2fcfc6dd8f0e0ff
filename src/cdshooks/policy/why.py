"""Why a policy applied to an order or not, and what a leaf compared — for ``cdshooks eval``.

Read-only companions of :mod:`cdshooks.policy.applicability`: the same rules, said in words.
"""

from __future__ import annotations

from cdshooks.facts.calculators.orders import order_concepts
from cdshooks.fhir.record import display_code
from cdshooks.policy.applicability import draft_context
from cdshooks.policy.applicability import holds


def applicability(policies, in_scope, drafts, today) -> list[tuple[str, str, bool, str]]:
    """``(order, policy id, applies, why)`` for every order in scope and every loaded policy."""
    draft_record, base = draft_context(policies, drafts, today)
    out = []
    for order in in_scope:
        concepts = order_concepts(order.resource, draft_record)
        for policy in policies.by_id.values():
            applies, why = _rules(policy, order, concepts, base)
            out.append((order.reference, policy.id, applies, why))
    return out


def _rules(policy, order, concepts, base) -> tuple[bool, str]:
    reasons = []
    for rule, codes in policy.applies:
        label = f"rule '{rule.name}'"
        if order.resource_type not in rule.resource:
            reasons.append(f"{label}: a {order.resource_type} is not one of {', '.join(rule.resource)}")
            continue
        if codes is not None and not codes.matches_concept(concepts):
            reasons.append(f"{label}: the order's codes ({_codes(concepts)}) are in none of the value sets "
                           f"{', '.join(rule.codes)}")
            continue
        if rule.requires is not None and not holds(rule.requires, policy, order, base):
            reasons.append(f"{label}: {'codes match, but ' if codes is not None else ''}'requires' is not met "
                           f"({_expr_text(rule.requires)})")
            continue
        confirm = f"; applies once the record confirms {_expr_text(rule.confirm)}" if rule.confirm else ""
        return True, f"{label} matches{' (codes ' + ', '.join(rule.codes) + ')' if rule.codes else ''}{confirm}"
    return False, "; ".join(reasons) or "no applicability rule"


def _codes(concepts) -> str:
    shown = [display_code(c.get("system"), c.get("code")) for cc in concepts if isinstance(cc, dict)
             for c in cc.get("coding") or [] if isinstance(c, dict) and c.get("code")]
    texts = [cc.get("text") for cc in concepts if isinstance(cc, dict) and cc.get("text")]
    return ", ".join(shown + [f"text '{t}'" for t in texts]) or "none"


_OPS = (("present", "present"), ("is_", "is"), ("in_", "in"), ("ge", "≥"), ("gt", ">"), ("le", "≤"),
        ("lt", "<"), ("codes_in", "codes in"), ("result", "result"), ("known", "known"))


def _expr_text(expr) -> str:
    if expr.def_ is not None:
        return expr.def_
    if expr.fact is not None:
        op, label = next((op, label) for op, label in _OPS if getattr(expr, op) is not None)
        return f"{expr.fact} {label} {getattr(expr, op)}"
    if expr.all or expr.any:
        parts = expr.all or expr.any
        return "(" + (" and " if expr.all else " or ").join(_expr_text(p) for p in parts) + ")"
    if expr.not_ is not None:
        return f"not {_expr_text(expr.not_)}"
    if expr.node is not None:
        return f"criterion {expr.node}" + (f" is {expr.is_ if expr.is_ is not None else expr.in_}"
                                           if expr.is_ is not None or expr.in_ is not None else "")
    if expr.setting is not None:
        return f"setting {expr.setting} is {expr.is_ if expr.is_ is not None else expr.in_}"
    return f"documentation answer for {expr.doc}"


def comparison(expr, ctx, dates, define=None) -> str:
    """``pregnancy.gestational_age_days @E = 58 (8w2d), test ≥ 63``: each fact's value beside its test
    (a definition is shown by name, then what it tests)."""
    if expr.def_ is not None and expr.def_ in (define or {}):
        return f"{expr.def_}: {comparison(define[expr.def_], ctx, dates, define)}"
    if expr.fact is not None:
        at = expr.at or "T"
        fact = ctx.fact(expr.fact, dates.get(at))
        value = _value(fact)
        op, label = next((op, label) for op, label in _OPS if getattr(expr, op) is not None)
        wanted = "" if op in ("present", "known", "result") else f" {_shown(getattr(expr, op))}"
        return f"{expr.fact} @{at} = {value}; test: {label}{wanted}"
    if expr.all or expr.any:
        joined = (" AND " if expr.all else " OR ").join(comparison(p, ctx, dates, define)
                                                        for p in (expr.all or expr.any))
        return f"({joined})"
    if expr.not_ is not None:
        return "not: " + comparison(expr.not_, ctx, dates, define)
    return _expr_text(expr)


def _value(fact) -> str:
    if fact.status != "known":
        return fact.status + (f" ({fact.note})" if fact.note else "")
    value = fact.value
    if isinstance(value, tuple) and value and hasattr(value[0], "resource"):
        return f"{len(value)} reading(s)"
    if isinstance(value, tuple) and value and all(isinstance(v, tuple) and len(v) == 2 for v in value):
        return ", ".join(display_code(system, code) for system, code in value)   # (system, code) pairs
    shown = _shown(value)
    return shown + (f" ({fact.brief})" if fact.brief and fact.brief != shown else "")


def _shown(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)

