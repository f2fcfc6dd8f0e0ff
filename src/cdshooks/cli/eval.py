"""``cdshooks eval``: run a saved hook request and explain it — for each order and each loaded
policy why it applied or not, each fact with the mapping ``file:line`` it came from, each
criterion with its result, and each leaf with the value it compared — then the response."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from cdshooks.errors import CdsHooksError
from cdshooks.errors import operation_outcome


def run(request_path: Path, policies: Path, mappings: Path, today: str | None,
        site: Path | None = None, valuesets: Path | None = None) -> int:
    from cdshooks import create_app
    from cdshooks import pipeline
    from cdshooks import registry
    from cdshooks import settings
    from cdshooks.web import forms

    try:
        body = json.loads(request_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        print(f"{request_path}: {exc}", file=sys.stderr)
        return 2
    overrides = {"POLICIES": str(policies), "MAPPINGS": str(mappings), "DATABASE_URL": "sqlite://"}
    overrides.update({k: str(v) for k, v in (("TODAY", today), ("SITE", site), ("VALUESETS", valuesets)) if v})
    app = create_app(overrides)
    with app.app_context():
        loaded, config, launches = registry.get(), settings.get(), forms.launches()
    services = {s.hook: s for s in loaded.services.values()}
    service = services.get(body.get("hook") if isinstance(body, dict) else None)
    if service is None:
        print(f"{request_path}: unknown hook {body.get('hook') if isinstance(body, dict) else body!r} "
              f"(this service answers {', '.join(sorted(services))})", file=sys.stderr)
        return 2
    try:
        answer = pipeline.answer(loaded, config, pipeline.offline_call(service, body, config, launches))
    except CdsHooksError as exc:
        print(json.dumps(operation_outcome(exc.diagnostics, exc.code, exc.expression), indent=2))
        return 1
    _print_applicability(loaded, service, body, answer.facts.today)
    _print_facts(answer.facts, loaded.policies.facts.origins)
    for evaluation in answer.evaluations:
        _print_evaluation(evaluation)
    print("\n== response")
    print(json.dumps(answer.body, indent=2, ensure_ascii=False))
    return 0


def _print_applicability(loaded, service, body, today) -> None:
    from cdshooks.cds import protocol
    from cdshooks.policy import why

    parsed = protocol.parse_request(body, service.hook, 10_000, 10_000)
    print("== which policies apply")
    for order, policy_id, applies, reason in why.applicability(loaded.policies, parsed.in_scope,
                                                                parsed.draft_orders, today):
        print(f"{order} · {policy_id}: {'APPLIES' if applies else 'does not apply'} — {reason}")
    if not parsed.in_scope:
        print("no order in scope (order-select: the selections; order-sign: every draft order)")


def _print_facts(facts, origins) -> None:
    print("\n== facts (with the mapping they came from)")
    for key, fact in sorted(facts.memo.items(), key=lambda kv: (kv[0][0], str(kv[0][1:3]))):
        name, at, order = key[:3]
        scope = f" [{order}]" if order else ""
        value = "" if fact.value is None or _is_item_list(fact.value) else f" = {fact.value}"
        where = f"   ({', '.join(origins.get(name, ()))})" if origins.get(name) else ""
        print(f"{name} @ {at}{scope}: {fact.status}{value}" + (f" — {fact.note}" if fact.note else "") + where)
        for evidence in fact.evidence:
            print(f"    {evidence}")


def _is_item_list(value) -> bool:
    """A select fact's ``all`` pick: its items are shown as evidence, not as a value."""
    return isinstance(value, tuple) and bool(value) and hasattr(value[0], "resource")


def _print_evaluation(evaluation) -> None:
    from cdshooks.policy import why

    policy = evaluation.match.policy
    order = evaluation.match.order.reference
    print(f"\n== {policy.id} for {order}: {evaluation.decision}"
          + (f" ({evaluation.outcome})" if evaluation.outcome else ""))
    dates = ", ".join(f"{k}={v}" for k, v in evaluation.dates.items())
    print(f"dates: {dates}   (T = today, E = the order's service date, R = the policy's reference date)")
    for result in evaluation.results.values():
        line = f"{result.id:<16} {result.result:<8} {result.source}"
        print(line + (f" — {result.note}" if result.note else ""))
        node = policy.nodes[result.id]
        if node.when is not None and result.leaf:
            compared = why.comparison(node.when, evaluation.context, evaluation.dates, policy.model.define)
            print(f"{'':<18}compared: {compared}")
        for evidence in result.evidence:
            print(f"{'':<18}{evidence}")
    if evaluation.documentation:
        print("documentation needed: " + ", ".join(evaluation.documentation))
