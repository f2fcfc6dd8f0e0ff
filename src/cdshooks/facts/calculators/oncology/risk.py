"""Diagnoses and procedures for colony-stimulating-factor orders (spec f.2, A.a.i, A.b, A.d):
malignancy, prior febrile neutropenia, advanced cancer, chronic conditions, transplant windows.

Three-valued results are the strings ``met`` / ``not-met`` / ``unknown`` (read with ``result: true``).
"""

from __future__ import annotations

import datetime as dt
import re

from cdshooks.facts.calculators import Calculator
from cdshooks.facts.calculators import orders
from cdshooks.facts.calculators.oncology.readings import Dated
from cdshooks.facts.calculators.oncology.readings import dated
from cdshooks.facts.calculators.oncology.readings import dated_evidence
from cdshooks.facts.calculators.oncology.readings import in_window
from cdshooks.facts.calculators.oncology.readings import inputs_of
from cdshooks.facts.calculators.oncology.readings import items_of
from cdshooks.facts.facts import MET
from cdshooks.facts.facts import NOT_MET
from cdshooks.facts.facts import UNDECIDED
from cdshooks.facts.facts import UNKNOWN
from cdshooks.facts.facts import Evidence
from cdshooks.facts.facts import Fact
from cdshooks.facts.facts import FactContext
from cdshooks.facts.select import written_code
from cdshooks.fhir.dates import get_path
from cdshooks.fhir.dates import parse_date
from cdshooks.fhir.record import ICD10CM
from cdshooks.fhir.record import codings
from cdshooks.fhir.record import normalize_code


def stage_result(texts: list[str], advanced: re.Pattern, early: re.Pattern) -> str | None:
    """One staging reading: met (stage IV / M1), not-met (stage 0–III / M0), None (unreadable)."""
    cleaned = [t.strip() for t in texts if t.strip()]
    if any(advanced.search(t) for t in cleaned):
        return MET
    if any(early.search(t) for t in cleaned):
        return NOT_MET
    return None


def icd_categories(codes) -> set[str]:
    """Distinct 3-character ICD-10-CM categories of normalized codes (``E119`` → ``E11``)."""
    return {code[:3] for code in codes if len(code) >= 3}


def prior_febrile_neutropenia(episodes: list[Dated], neutropenia: list[Dated], fever: list[Dated],
                              cutoff: dt.date, pair_days: int) -> tuple[str | None, list[Dated]]:
    """F-PRIORFN: an FN episode (or neutropenia with fever ≤ pair_days apart) dated on or before cutoff.

    Refuted episodes alone are evidence of absence; a pair with a refuted member says nothing.
    Returns (met / not-met / None for no evidence, the records behind it).
    """
    dated = [e for e in episodes if not e.refuted and e.date and e.date <= cutoff]
    if dated:
        return MET, dated
    for n in neutropenia:
        for f in fever:
            if n.refuted or f.refuted or not (n.date and f.date) or max(n.date, f.date) > cutoff:
                continue
            if abs((n.date - f.date).days) <= pair_days:
                return MET, [n, f]
    refuted = [e for e in episodes if e.refuted]
    return (NOT_MET, refuted) if refuted else (None, [])


def latest_dated(records: list[Dated], cutoff: dt.date) -> Dated | None:
    """The latest non-refuted record dated on or before ``cutoff``."""
    dated = [r for r in records if not r.refuted and r.date and r.date <= cutoff]
    return max(dated, key=lambda r: (r.date, r.reference)) if dated else None


def prior_fn(ctx: FactContext, at: dt.date, inputs, params) -> Fact:
    """F-PRIORFN: a febrile-neutropenia episode dated at least ``before_days`` before T."""
    (episodes, neutropenia, fever), unavailable = inputs_of(ctx, inputs, at, "episodes", "neutropenia", "fever")
    cutoff = at - dt.timedelta(days=int(params["before_days"]))
    result, records = prior_febrile_neutropenia(dated(episodes), dated(neutropenia), dated(fever), cutoff,
                                                int(params["pair_days"]))
    if result is None or (unavailable and result != MET):
        return unavailable or UNKNOWN
    note = "prior febrile neutropenia" if result == MET else "febrile neutropenia refuted"
    return Fact("known", result, dated_evidence(records), note)


def latest_before(ctx: FactContext, at: dt.date, inputs, params) -> Fact:
    """Date of the latest non-refuted matching Condition dated at least ``before_days`` before T."""
    conditions = ctx.fact(inputs["conditions"], at)
    found = latest_dated(dated(conditions), at - dt.timedelta(days=int(params["before_days"])))
    if found is None:
        return conditions if conditions.status == "unavailable" else UNKNOWN
    return Fact("known", found.date, dated_evidence([found]), f"latest on {found.date}")


def _prepare_malignancy(params: dict) -> dict:
    return {key: params[key] for key in ("cancer", "myeloid", "ambiguous")}


def malignancy(ctx: FactContext, at: dt.date, inputs, params) -> Fact:
    """A.a.i: met for a non-myeloid malignancy; not-met when every active malignancy is myeloid.

    C95 (leukaemia of unspecified cell type) decides nothing; only refuted cancers are evidence
    of absence.
    """
    conditions, reasons = ctx.fact(inputs["conditions"], at), ctx.fact(inputs["reasons"], at)
    found = {"non-myeloid": [], "myeloid": [], "ambiguous": [], "refuted": []}
    entries = [(i.refuted, i.entry.system if i.entry else "", i.code, i.evidence()) for i in items_of(conditions)]
    reason_concept = ctx.order.resource.get("reasonCode")
    entries += [(False, s, c, Evidence(ctx.order.reference, f"order reason {written_code(reason_concept, c, s)}"))
                for s, c in (reasons.value if reasons.known else ())]
    for refuted, system, code, evidence in entries:
        kind = _malignancy_kind(system, normalize_code(system, code), params)
        if kind:
            found["refuted" if refuted else kind].append(evidence)
    if found["non-myeloid"]:
        return Fact("known", MET, tuple(found["non-myeloid"]), "non-myeloid malignancy", "non-myeloid")
    if found["ambiguous"]:
        return Fact("known", UNDECIDED, tuple(found["ambiguous"] + found["myeloid"]),
                    "leukaemia of unspecified cell type")
    if found["myeloid"]:
        codes = ", ".join(e.value.split(" ")[0] for e in found["myeloid"])
        return Fact("known", NOT_MET, tuple(found["myeloid"]), "myeloid malignancy only", f"myeloid only: {codes}")
    if found["refuted"]:
        return Fact("known", NOT_MET, tuple(found["refuted"]), "malignancy refuted", "refuted")
    return conditions if conditions.status == "unavailable" else Fact("unknown", note="no malignancy recorded")


def _malignancy_kind(system: str, code: str, sets) -> str | None:
    if sets["myeloid"].entry_for(system, code):
        return "myeloid"
    if sets["ambiguous"].entry_for(system, code):
        return "ambiguous"
    return "non-myeloid" if sets["cancer"].entry_for(system, code) else None


def _prepare_advanced(params: dict) -> dict:
    return {**params, "advanced": re.compile(params["advanced"], re.IGNORECASE),
            "early": re.compile(params["early"], re.IGNORECASE)}


def advanced_cancer(ctx: FactContext, at: dt.date, inputs, params) -> Fact:
    """F-ADV: distant metastasis (C78, C79, C7B), else the latest stage group and M class.

    Stage IV or M1 → met; stage 0–III or M0 → not-met; a refuted metastasis alone → not-met.
    """
    (metastases, staging), unavailable = inputs_of(ctx, inputs, at, "metastases", "staging")
    spread = dated(metastases)
    live = [m for m in spread if not m.refuted]
    if live:
        return Fact("known", MET, dated_evidence(live), "distant metastasis recorded", "metastatic")
    results, evidence = [], []
    for is_group in (True, False):  # latest stage group and latest M class, each on its own
        items = [i for i in items_of(staging) if i.date and i.date <= at and
                 bool(params["stage_groups"].matches_concept(i.resource.get("code"))) == is_group]
        readings = [(i, stage_result(orders.texts(i.resource.get("valueCodeableConcept")) +
                                     [c for _, c in codings(i.resource.get("valueCodeableConcept"))],
                                     params["advanced"], params["early"])) for i in items]
        readings = [(i, r) for i, r in readings if r is not None]
        if readings:
            item, result = max(readings, key=lambda p: (p[0].date, str(p[0].resource.get("issued", "")),
                                                         p[0].reference))
            results.append(result)
            text = (orders.texts(item.resource.get("valueCodeableConcept")) or ["staged"])[0]
            evidence.append(Evidence(item.reference, f"{'stage' if is_group else 'M class'} {text}",
                                     item.date.isoformat()))
    if MET in results:
        return Fact("known", MET, tuple(evidence), "stage IV / M1", "stage IV")
    if results:
        return Fact("known", NOT_MET, tuple(evidence), "not stage IV / M1")
    if spread:
        return Fact("known", NOT_MET, dated_evidence(spread), "metastasis refuted")
    return unavailable or UNKNOWN


def category_count(ctx: FactContext, at: dt.date, inputs, params) -> Fact:
    """F-CHRONIC: distinct ICD-10-CM categories among active chronic-condition Conditions."""
    conditions = ctx.fact(inputs["conditions"], at)
    if conditions.status == "unavailable":
        return conditions
    live = [i for i in items_of(conditions) if not i.refuted]
    categories = icd_categories(normalize_code(ICD10CM, i.code) for i in live)
    evidence = tuple(Evidence(i.reference, " ".join(p for p in (i.code, i.display) if p)) for i in live)
    return Fact("known", len(categories), evidence, f"{len(categories)} chronic condition categories"
                + (f": {', '.join(sorted(categories))}" if categories else ""))


def _prepare_windows(params: dict) -> dict:
    return {key: (int(params[key][0]), int(params[key][1])) for key in ("done_days", "planned_days")}


def planned_or_done(ctx: FactContext, at: dt.date, inputs, params) -> Fact:
    """A procedure performed in its window, or a draft/active request planned in its window.

    A request's date is its occurrence; a request without one is planned now (it counts).
    """
    (procedures, requests), unavailable = inputs_of(ctx, inputs, at, "procedures", "requests")
    done_from, done_to = (at + dt.timedelta(days=d) for d in params["done_days"])
    plan_from, plan_to = (at + dt.timedelta(days=d) for d in params["planned_days"])
    hits = [i.evidence() for i in items_of(procedures) if in_window(i.date, done_from, done_to)]
    for item in items_of(requests):
        when = _occurrence(item.resource)
        if when is None or plan_from <= when <= plan_to:
            hits.append(Evidence(item.reference, f"{item.code} {item.display}".strip() + " ordered",
                                 when.isoformat() if when else None))
    if hits:
        return Fact("known", True, tuple(hits))
    return unavailable or UNKNOWN


def _occurrence(request: dict) -> dt.date | None:
    value = request.get("occurrenceDateTime")
    if value is None:
        value = get_path(request, ("occurrencePeriod", "start"))
    return parse_date(value)


CALCULATORS = (
    Calculator("csf_prior_fn", prior_fn, frozenset({"episodes", "neutropenia", "fever"})),
    Calculator("csf_latest_before", latest_before, frozenset({"conditions"})),
    Calculator("csf_malignancy", malignancy, frozenset({"conditions", "reasons"}), _prepare_malignancy,
               code_params=frozenset({"cancer", "myeloid", "ambiguous"})),
    Calculator("csf_advanced_cancer", advanced_cancer, frozenset({"metastases", "staging"}), _prepare_advanced,
               code_params=frozenset({"stage_groups"})),
    Calculator("csf_category_count", category_count, frozenset({"conditions"})),
    Calculator("csf_planned_or_done", planned_or_done, frozenset({"procedures", "requests"}), _prepare_windows),
)
