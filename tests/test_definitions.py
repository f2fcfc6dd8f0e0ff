"""What a policy names once: named lists placed where ``at_least`` counts them, and ``define``."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from cdshooks.policy import definitions
from cdshooks.policy.model import AtLeast
from cdshooks.policy.model import Expr
from cdshooks.policy.model import Node
from cdshooks.policy.model import Policy

HEADER = {"id": "p", "version": "1", "title": "t", "issuer": "i", "short": "s", "description": "d",
          "source": {"document": "d.txt", "reference": "r"}, "effective": "2025-01-01", "jurisdiction": "US",
          "applicability": [{"name": "a", "label": "A", "resource": ["ServiceRequest"], "codes": ["x"], "cite": "c"}],
          "responses": [{"when": {}, "indicator": "info", "summary": "s"}],
          "override_reasons": [{"code": "c", "display": "d"}]}
FACTORS = [
    {"id": "age", "text": "Age > 65", "question": "Over 65?", "cite": "'Age > 65'", "type": "structured",
     "when": {"def": "over-65"}, "default": "unknown"},
    {"id": "comorbidities", "text": "Comorbidities", "cite": "'Comorbidities'", "any": [
        {"id": "or1", "text": "Five", "question": "Five?", "cite": "'five'", "type": "documentation",
         "default": "unknown"}]},
]


def count(n, ids, cite):
    return {"n": n, "of": "risk-factors", "ids": ids, "cite": cite}


def policy(**changes) -> Policy:
    criteria = {"id": "R", "text": "r", "cite": "c", "any": [
        {"id": "R.1", "text": "one", "cite": "c", "at_least": count(1, "R.1.{a}", "Policy R.1 {a})")},
        {"id": "R.2", "text": "two", "cite": "c", "at_least": count(2, "R.2.{1}", "Policy R.2 {1})")}]}
    return Policy.model_validate({**HEADER, "define": {"over-65": {"fact": "age", "ge": 66}},
                                  "lists": {"risk-factors": FACTORS}, "criteria": criteria, **changes})


def test_a_named_list_is_placed_at_each_use_with_its_ids_and_cites():
    expanded, _, _ = definitions.expand(policy())
    first, second = expanded.criteria.children()
    assert [c.id for c in first.children()] == ["R.1.a", "R.1.b"]
    assert [c.id for c in second.children()] == ["R.2.1", "R.2.2"]
    assert second.at_least.n == 2 and second.children()[0].cite == "Policy R.2 1) — 'Age > 65'"
    child = first.children()[1].children()[0]
    assert (child.id, child.cite) == ("R.1.b.or1", "Policy R.1 b) — 'five'")


def test_the_placements_of_one_item_are_twins_and_point_at_the_list():
    _, twins, paths = definitions.expand(policy())
    assert twins["R.1.b.or1"] == ("R.2.2.or1",) and twins["R.2.1"] == ("R.1.a",)
    assert paths["R.2.2.or1"] == ("lists", "risk-factors", 1, "any", 0)
    assert paths["R.2"] == ("criteria", "any", 1)


def test_a_list_use_needs_its_ids_and_cite_templates():
    with pytest.raises(ValidationError, match="named list needs 'ids'"):
        AtLeast(n=1, of="risk-factors", cite="Policy {1})")
    with pytest.raises(ValidationError, match="named list needs 'cite'"):
        AtLeast(n=1, of="risk-factors", ids="A.{1}", cite="Policy A")
    leaf = Node(id="x", text="x", cite="c", type="documentation", default="unknown")
    with pytest.raises(ValidationError, match="named list only"):
        AtLeast(n=1, of=[leaf], ids="A.{1}")


def test_list_problems_name_a_missing_or_unused_list_and_an_impossible_count():
    model = policy(lists={"other": FACTORS})
    assert definitions.expand(model)[0].criteria.children()[0].children() == []   # reported, not raised
    assert list(definitions.list_problems(model)) == [
        (("criteria", "any", 0, "at_least", "of"), "no list 'risk-factors'"),
        (("criteria", "any", 1, "at_least", "of"), "no list 'risk-factors'"),
        (("lists", "other"), "list 'other' is never used")]
    criteria = {"id": "R", "text": "r", "cite": "c", "at_least": count(3, "R.{1}", "R {1})")}
    assert list(definitions.list_problems(policy(criteria=criteria))) == [
        (("criteria", "at_least", "n"), "at least 3 of 2 items")]


def test_define_problems_name_missing_cyclic_and_unused_definitions():
    define = {"a": Expr(def_="b"), "b": Expr(def_="a"), "lonely": Expr(fact="age", ge=1)}
    uses = [(Expr(def_="a"), ("criteria", "when")), (Expr(def_="missing"), ("criteria", "ask_when")),
            (define["a"], ("define", "a")), (define["b"], ("define", "b"))]
    assert list(definitions.define_problems(define, iter(uses))) == [
        (("criteria", "ask_when", "def"), "no definition 'missing'"),
        (("define", "a"), "definition 'a' refers to itself"),
        (("define", "b"), "definition 'b' refers to itself"),
        (("define", "lonely"), "definition 'lonely' is never used")]


def test_resolved_follows_definitions_once():
    define = {"old": Expr(fact="age", ge=66), "old-or-frail": Expr(any=[Expr(def_="old"), Expr(fact="ecog", ge=3)])}
    facts = [e.fact for e in definitions.resolved(Expr(not_=Expr(def_="old-or-frail")), define) if e.fact]
    assert facts == ["age", "ecog"]


def test_the_shipped_csf_policy_places_its_risk_factors_twice_and_knows_which_answers_its_facts_read():
    from pathlib import Path

    from cdshooks.policy.loader import load_policy_set

    root = Path(__file__).resolve().parents[1]
    csf = load_policy_set(root / "policies", root / "mappings").by_id["colony-stimulating-factors"]
    assert csf.twins["A.a.ii.2.b"] == ("A.a.ii.3.b.2",) and csf.twins["A.a.ii.3.b.11.or2"] == ("A.a.ii.2.k.or2",)
    assert csf.nodes["A.a.ii.3.b.5"].cite == ("Policy A.a.ii.3.b 5) — 'Liver dysfunction, with bilirubin ≥ 1.0 or "
                                               "liver enzymes ≥ 2x upper limit of normal'")
    assert csf.answered_by_facts == {"A.a.ii.1", "A.a.ii.2.cat", "A.a.ii.3.cat"}
