"""Oncology diagnoses (colony-stimulating-factors f.2): prior febrile neutropenia, stage, chronic
conditions, on the spec's worked values."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest
import yaml

from cdshooks.facts.calculators.oncology import readings
from cdshooks.facts.calculators.oncology import risk
from cdshooks.fhir import valuesets
from cdshooks.fhir.record import ICD10CM

ROOT = Path(__file__).resolve().parents[1]
FACTS = yaml.safe_load((ROOT / "mappings" / "oncology.yaml").read_text(encoding="utf-8"))["facts"]
VALUESETS = valuesets.load(ROOT / "valuesets")[0]
T = dt.date(2025, 6, 15)


# --------------------------------------------------------------------------- F-PRIORFN
def dated(ref, day, refuted=False):
    return readings.Dated(ref, dt.date.fromisoformat(day) if day else None, refuted)


CUTOFF = T - dt.timedelta(days=8)


def test_prior_febrile_neutropenia_from_a_neutropenia_and_fever_pair():
    result, records = risk.prior_febrile_neutropenia(
        [], [dated("Condition/d70", "2024-11-02")], [dated("Condition/r5081", "2024-11-03")], CUTOFF, 7)
    assert result == "met" and [r.reference for r in records] == ["Condition/d70", "Condition/r5081"]


@pytest.mark.parametrize("episodes, neutropenia, fever, result", [
    ([dated("c/fn", "2025-01-10")], [], [], "met"),
    ([dated("c/fn", "2025-06-10")], [], [], None),                                  # within 8 days of T
    ([dated("c/fn", None)], [], [], None),                                          # undated
    ([dated("c/fn", "2025-01-10", refuted=True)], [], [], "not-met"),
    ([], [dated("c/d70", "2024-11-02")], [dated("c/r50", "2024-11-12")], None),      # 10 days apart
    ([], [dated("c/d70", "2024-11-02", refuted=True)], [dated("c/r50", "2024-11-03")], None),
])
def test_prior_febrile_neutropenia(episodes, neutropenia, fever, result):
    assert risk.prior_febrile_neutropenia(episodes, neutropenia, fever, CUTOFF, 7)[0] == result


def test_latest_complication_before_the_cutoff():
    records = [dated("c/a", "2025-03-01"), dated("c/b", "2025-05-01"), dated("c/c", "2025-06-12"),
               dated("c/d", "2025-05-20", refuted=True)]
    assert risk.latest_dated(records, CUTOFF).reference == "c/b"


# ------------------------------------------------------------------------------- F-ADV
ADVANCED = re.compile(FACTS["csf.advanced_cancer"]["params"]["advanced"], re.IGNORECASE)
EARLY = re.compile(FACTS["csf.advanced_cancer"]["params"]["early"], re.IGNORECASE)


@pytest.mark.parametrize("text, result", [
    ("IIIA", "not-met"), ("Stage IV", "met"), ("IVB", "met"), ("stage iv", "met"), ("cM1", "met"),
    ("pM1a", "met"), ("M0", "not-met"), ("Stage IIA", "not-met"), ("0is", "not-met"), ("IVD", None),
    ("unknown", None), ("", None),
])
def test_stage_readings(text, result):
    assert risk.stage_result([text], ADVANCED, EARLY) == result


# --------------------------------------------------------------------------- F-CHRONIC
CHRONIC = VALUESETS.codes(FACTS["csf.chronic_conditions"]["codes"])


def counted(*codes):
    normal = [c.replace(".", "") for c in codes if CHRONIC.entry_for(ICD10CM, c.replace(".", ""))]
    return len(risk.icd_categories(normal))


def test_chronic_condition_categories_spec_examples():
    assert counted("E11.9", "I10", "J44.9", "N18.30", "F32.9") == 5
    assert counted("E11.9", "E78.5", "I10") == 3


def test_chronic_conditions_exclude_cancer_pregnancy_symptoms_injuries_and_most_infections():
    assert counted("C50.911", "D05.10", "O30.103", "R50.81", "S32.15XA", "T86.01", "Z21", "A41.9", "B25.0") == 0
    assert counted("B18.2", "B20", "D61.9", "Q76.2") == 4
    assert counted("E11.9", "E11.65", "E11.22") == 1                     # one category counts once
