"""Which documentation questions an evaluation asks: every ``ask_when`` above a leaf must hold."""

from __future__ import annotations

from cdshooks.facts.facts import Evidence
from cdshooks.facts.facts import Fact
from cdshooks.policy.model import Expr
from cdshooks.policy.model import Node
from policy_stubs import evaluator

EVIDENCE = (Evidence("Condition/c1", "C50.9"),)


def question(id_, ask_when=None):
    return Node(id=id_, text=id_, question=f"{id_}?", cite="c", type="documentation", default="unknown",
                ask_when=ask_when)


def asked(root, facts, define=None) -> tuple[str, ...]:
    evaluation = evaluator(root, facts, define=define)
    evaluation.run(None)
    return evaluation.documentation()


def tree():
    """R: all of G (asked when 'cancer') = any of A and H (asked also when 'frail'), and B."""
    gated = Node(id="G", text="g", cite="c", ask_when=Expr(def_="has-cancer"),
                 any=[question("A"), question("H", Expr(fact="frail", present=True))])
    return Node(id="R", text="r", cite="c", all=[gated, question("B")])


def test_a_group_ask_when_is_inherited_by_every_leaf_below_it():
    define = {"has-cancer": Expr(fact="cancer", present=True)}
    facts = {"cancer": Fact("known", False, EVIDENCE), "frail": Fact("known", True, EVIDENCE)}
    assert asked(tree(), facts, define) == ("B",)


def test_a_leaf_ask_when_adds_to_its_groups():
    define = {"has-cancer": Expr(fact="cancer", present=True)}
    facts = {"cancer": Fact("known", True, EVIDENCE), "frail": Fact("known", False, EVIDENCE)}
    assert asked(tree(), facts, define) == ("A", "B")
    facts["frail"] = Fact("known", True, EVIDENCE)
    assert asked(tree(), facts, define) == ("A", "H", "B")


def test_an_unknown_ask_when_does_not_ask():
    define = {"has-cancer": Expr(fact="cancer", present=True)}
    assert asked(tree(), {"cancer": Fact("unknown"), "frail": Fact("unknown")}, define) == ("B",)


def test_ind_1_is_asked_once_the_record_shows_an_abnormal_serum_screen(tmp_path, monkeypatch, capsys):
    """Prenatal IND-1 ('follow-up to abnormal maternal serum screen results') is asked only when
    the record has such a screen: its ask_when reads pregnancy.abnormal_serum_screen."""
    import shutil
    from pathlib import Path

    from cdshooks.cli import main as cli

    root = Path(__file__).resolve().parents[1]
    for folder in ("policies", "mappings", "valuesets"):
        shutil.copytree(root / folder, tmp_path / folder)
    monkeypatch.chdir(tmp_path)
    suite = tmp_path / "policies" / "prenatal-cfdna-screening_test.yaml"
    case = """
  - name: {name}
    orders: [cfdna-order-81420]
    record: [cfdna-patient, cfdna-coverage, cfdna-ga-10wk-on-0301{extra}]
    expect:
      criteria: {{IND-1: unknown}}
      documentation: {asked}
"""
    suite.write_text(suite.read_text(encoding="utf-8") + case.format(
        name="ask-when-screen", extra=", cfdna-cond-abnormal-serum-screen", asked="[IND-1]") + case.format(
        name="ask-when-none", extra="", asked="[]"), encoding="utf-8")
    assert cli.main(["test", "-q", "-k", "ask-when-"]) == 0, capsys.readouterr().out


def test_an_evaluation_derives_each_kind_once():
    from cdshooks.policy.applicability import Evaluation

    evaluation = Evaluation(None, "unknown", None, {}, (), {}, None, ())
    calls = []
    assert evaluation.derived("ids", lambda e: calls.append(e) or ["A"]) == ["A"]
    assert evaluation.derived("ids", lambda e: calls.append(e) or ["B"]) == ["A"]
    assert evaluation.derived("other", lambda e: "x") == "x" and calls == [evaluation]
