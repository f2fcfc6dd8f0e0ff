"""Leaf precedence: structured evidence, then documentation, then the default — only without evidence."""

from __future__ import annotations

from cdshooks.facts.answers import DocAnswer
from cdshooks.facts.facts import Evidence
from cdshooks.facts.facts import Fact
from cdshooks.facts.facts import Interval
from cdshooks.fhir.codes import CodeSet
from cdshooks.policy.evaluate import test as apply_test
from cdshooks.policy.model import Expr
from cdshooks.policy.model import Node
from policy_stubs import evaluator


def leaf(id_, when=None, type_="structured+doc", default="unknown"):
    return Node(id=id_, text=id_, cite="test", type=type_, when=when, default=default)


def run(root, facts, answers=None, settings=None, **policy):
    evaluation = evaluator(root, facts, answers, settings, **policy)
    decision = evaluation.run(None)
    return decision, dict(evaluation.results)


def present(name):
    return Expr(fact=name, present=True)


EVIDENCE = (Evidence("Condition/c1", "F11.20"),)


def test_structured_evidence_wins_over_documentation():
    root = Node(id="R", text="r", cite="c", none=[leaf("X", present("f"), default="not-met")])
    _, results = run(root, {"f": Fact("known", True, EVIDENCE)},
                     {"X": DocAnswer(False, Evidence("QuestionnaireResponse/q", "X answered no"))})
    assert results["X"].result == "met" and results["X"].source == "structured"


def test_documentation_answers_when_the_record_is_silent():
    root = Node(id="R", text="r", cite="c", all=[leaf("X", present("f"))])
    answers = {"X": DocAnswer(True, Evidence("QuestionnaireResponse/q", "yes"))}
    decision, results = run(root, {"f": Fact("unknown")}, answers)
    assert results["X"].result == "met" and results["X"].source == "documentation" and decision == "met"


def test_default_applies_only_without_any_evidence():
    root = Node(id="R", text="r", cite="c", none=[leaf("X", present("f"), default="not-met")])
    decision, results = run(root, {"f": Fact("unknown")})
    assert results["X"].result == "not-met" and results["X"].source == "default" and decision == "met"


def test_unavailable_data_is_unknown_never_the_default():
    root = Node(id="R", text="r", cite="c", none=[leaf("X", present("f"), default="not-met")])
    decision, results = run(root, {"f": Fact("unavailable", note="Condition data unavailable")})
    assert results["X"].result == "unknown" and results["X"].source == "unavailable" and decision == "unknown"


def test_structured_leaves_ignore_documentation():
    root = Node(id="R", text="r", cite="c", all=[leaf("X", present("f"), type_="structured")])
    _, results = run(root, {"f": Fact("unknown")}, {"X": DocAnswer(True, Evidence("QuestionnaireResponse/q", "yes"))})
    assert results["X"].result == "unknown"


def test_a_known_but_undecided_value_stays_unknown_instead_of_the_default():
    root = Node(id="R", text="r", cite="c", all=[leaf("X", Expr(fact="n", le=2), default="met")])
    _, results = run(root, {"n": Fact("known", Interval(2, float("inf")))})
    assert results["X"].result == "unknown"


def test_otherwise_unknown_means_no_evidence():
    expr = Expr(fact="n", ge=2, otherwise="unknown")
    assert apply_test(expr, Fact("known", 1), {}) == ("unknown", False)
    assert apply_test(expr, Fact("known", 3), {}) == ("met", True)


def test_every_node_is_evaluated_without_short_circuit():
    root = Node(id="R", text="r", cite="c", all=[leaf("A", present("a")), leaf("B", present("b"))])
    decision, results = run(root, {"a": Fact("known", False, EVIDENCE), "b": Fact("known", True, EVIDENCE)})
    assert decision == "not-met" and set(results) == {"R", "A", "B"}


def test_informational_children_are_reported_but_do_not_decide():
    info = Node(id="I", text="i", cite="c", type="documentation", default="unknown", decisive=False)
    root = Node(id="R", text="r", cite="c", all=[leaf("A", present("a")), info])
    decision, results = run(root, {"a": Fact("known", True, EVIDENCE)})
    assert decision == "met" and results["I"].result == "unknown"


def test_interval_comparisons_use_both_bounds():
    assert apply_test(Expr(fact="age", ge=21), Fact("known", Interval(20, 21)), {})[0] == "unknown"
    assert apply_test(Expr(fact="age", ge=21), Fact("known", Interval(21, 22)), {})[0] == "met"
    assert apply_test(Expr(fact="age", ge=21), Fact("known", Interval(19, 20)), {})[0] == "not-met"


def test_codes_in_reads_code_pairs():
    codesets = {("cpt|81422",): CodeSet.of(["cpt|81422"])}
    expr = Expr(fact="codes", codes_in=["cpt|81422"])
    assert apply_test(expr, Fact("known", (("http://www.ama-assn.org/go/cpt", "81422"),)), codesets)[0] == "met"
    assert apply_test(expr, Fact("known", (("http://www.ama-assn.org/go/cpt", "81420"),)), codesets)[0] == "not-met"


def test_setting_tests_read_the_policy_settings():
    root = Node(id="R", text="r", cite="c", all=[
        Node(id="B", text="b", cite="c", type="rule", when=Expr(setting="paRequired", is_=True), default="met")])
    assert run(root, {}, settings={"paRequired": False})[1]["B"].result == "not-met"


def test_a_disproved_alternative_does_not_make_an_any_unknown():
    """Old weight loss (disproved) or a malignancy nobody recorded: the leaf's default decides."""
    root = Node(id="R", text="r", cite="c", none=[leaf("RF", Expr(any=[Expr(fact="old", result=True),
                                                                       Expr(fact="absent", result=True)]),
                                                      default="not-met")])
    _, results = run(root, {"old": Fact("known", "not-met", EVIDENCE), "absent": Fact("unknown")})
    assert results["RF"].result == "not-met" and results["RF"].source == "default"


def test_a_proven_part_waiting_on_an_unproven_one_keeps_an_all_unknown():
    """Thoracic pain recorded, no pain score: unknown, not the not-met default."""
    root = Node(id="R", text="r", cite="c", none=[leaf("RF", Expr(all=[Expr(fact="pain", result=True),
                                                                       Expr(fact="score", ge=7)]),
                                                      default="not-met")])
    _, results = run(root, {"pain": Fact("known", "met", EVIDENCE), "score": Fact("unknown")})
    assert results["RF"].result == "unknown"


def test_a_definition_is_evaluated_where_it_is_named():
    """``{def: over-65}`` is the defined test itself: its value, evidence and note."""
    define = {"over-65": Expr(fact="age", ge=66)}
    root = Node(id="R", text="r", cite="c", any=[leaf("A", Expr(def_="over-65"), type_="structured"),
                                                  leaf("B", Expr(not_=Expr(def_="over-65")), type_="structured")])
    decision, results = run(root, {"age": Fact("known", 72, EVIDENCE, "age 72")}, define=define)
    assert (results["A"].result, results["B"].result) == ("met", "not-met")
    assert results["A"].evidence == EVIDENCE and results["A"].note == "age 72" and decision == "met"


def test_a_twin_answers_the_leaf_and_the_latest_answer_wins():
    """The two placements of one named-list item share documentation: the latest answer decides."""
    root = Node(id="R", text="r", cite="c", all=[leaf("A.1", present("f")), leaf("B.1", present("f"))])
    answers = {"A.1": DocAnswer(True, Evidence("QuestionnaireResponse/old", "A.1 answered yes", "2025-06-01")),
               "B.1": DocAnswer(False, Evidence("QuestionnaireResponse/new", "B.1 answered no", "2025-06-10"))}
    _, results = run(root, {"f": Fact("unknown")}, answers, twins={"A.1": ("B.1",), "B.1": ("A.1",)})
    assert results["A.1"].result == results["B.1"].result == "not-met"
    assert results["A.1"].evidence[0].reference == "QuestionnaireResponse/new"


def test_without_twins_each_leaf_reads_only_its_own_answer():
    root = Node(id="R", text="r", cite="c", all=[leaf("A.1", present("f")), leaf("B.1", present("f"))])
    answers = {"A.1": DocAnswer(True, Evidence("QuestionnaireResponse/q", "A.1 answered yes", "2025-06-01"))}
    _, results = run(root, {"f": Fact("unknown")}, answers)
    assert (results["A.1"].result, results["B.1"].result) == ("met", "unknown")


def test_a_yes_its_fact_reads_itself_does_not_answer_the_leaf_but_a_no_does():
    """f.1: the category fact reads the three 'yes' answers together (two → unknown); the leaf
    must not take its own 'yes' back, while a 'no' still answers it."""
    root = Node(id="R", text="r", cite="c", any=[leaf("HIGH", Expr(fact="category", is_="high"))])
    yes = {"HIGH": DocAnswer(True, Evidence("QuestionnaireResponse/q", "HIGH answered yes"))}
    no = {"HIGH": DocAnswer(False, Evidence("QuestionnaireResponse/q", "HIGH answered no"))}
    conflict = Fact("unknown", note="documentation names several risk categories")
    read_by_fact = {"answered_by_facts": frozenset({"HIGH"})}
    assert run(root, {"category": conflict}, yes, **read_by_fact)[1]["HIGH"].result == "unknown"
    assert run(root, {"category": conflict}, no, **read_by_fact)[1]["HIGH"].result == "not-met"
    assert run(root, {"category": conflict}, yes)[1]["HIGH"].result == "met"
