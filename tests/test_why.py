"""What `cdshooks eval` prints beside a leaf: each fact's value next to its test."""

from __future__ import annotations

from types import MappingProxyType

from cdshooks.facts.facts import Fact
from cdshooks.facts.facts import FactContext
from cdshooks.fhir.record import Record
from cdshooks.policy import why
from cdshooks.policy.model import Expr
from policy_stubs import Fixed
from policy_stubs import T


def test_a_definition_is_compared_by_name_and_by_what_it_tests():
    ctx = FactContext(MappingProxyType({"age": Fixed(Fact("known", 72))}), Record(), T, {}, settings={})
    define = {"age-over-65": Expr(fact="age", at="E", ge=66)}
    shown = why.comparison(Expr(not_=Expr(def_="age-over-65")), ctx, {"T": T, "E": T}, define)
    assert shown == "not: age-over-65: age @E = 72; test: ≥ 66"
