"""The ordered product and the CSF history (spec §b, A.b, A.e): product family, earlier CSF
orders, the 21 days before a neutropenic complication, the preferred-product step."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from cdshooks.facts.calculators import Calculator
from cdshooks.facts.calculators import data_unavailable
from cdshooks.facts.calculators import orders
from cdshooks.facts.calculators import setting
from cdshooks.facts.calculators.oncology.products import Product
from cdshooks.facts.calculators.oncology.products import identify
from cdshooks.facts.calculators.oncology.products import product_table
from cdshooks.facts.calculators.oncology.readings import in_window
from cdshooks.facts.calculators.oncology.readings import inputs_of
from cdshooks.facts.calculators.oncology.readings import items_of
from cdshooks.facts.facts import MET
from cdshooks.facts.facts import UNDECIDED
from cdshooks.facts.facts import UNKNOWN
from cdshooks.facts.facts import Evidence
from cdshooks.facts.facts import Fact
from cdshooks.facts.facts import FactContext
from cdshooks.fhir import medications
from cdshooks.fhir.dates import get_path
from cdshooks.fhir.dates import parse_date
from cdshooks.fhir.record import as_list
from cdshooks.fhir.record import reference_of


@dataclass(frozen=True)
class Taken:
    """A CSF MedicationRequest of the record."""

    reference: str
    product: Product
    start: dt.date | None
    status: str
    label: str = ""            # what the record calls it (brand or ingredient, products.Found.label)

    @property
    def name(self) -> str:
        return self.label or self.product.ingredient


def order_start(request: dict) -> dt.date | None:
    """Start of a MedicationRequest: first dosage's boundsPeriod.start, else authoredOn (spec c.2)."""
    dosage = as_list(request.get("dosageInstruction"))
    first = dosage[0] if dosage and isinstance(dosage[0], dict) else {}
    return parse_date(get_path(first, ("timing", "repeat", "boundsPeriod", "start"))) or \
        parse_date(request.get("authoredOn"))


def last_start_before(complication: dt.date, taken: list[Taken], statuses: frozenset[str]) -> Taken | None:
    """A.b.c2: the CSF order (of those statuses) that started last on or before the complication."""
    started = [t for t in taken if t.status in statuses and t.start is not None and t.start <= complication]
    return max(started, key=lambda t: (t.start, t.reference)) if started else None


def preferred_step(preferred: list[str], ordered: Product | None, taken: list[Taken], today: dt.date,
                   lookback_days: int, ordered_label: str = "") -> tuple[str, list[Taken], str]:
    """A.e: met when no preferred list is configured, the product is preferred, or one was tried.

    Otherwise unknown: trial and failure, contraindication or intolerance must be documented.
    """
    wanted = {p.strip().lower() for p in preferred if p.strip()}
    if not wanted:
        return MET, [], "no preferred-product list is configured, so step therapy does not apply"
    if ordered is not None and ordered.tokens & wanted:
        entry = next(p.strip() for p in preferred if p.strip().lower() in ordered.tokens)
        label = ordered_label or ordered.ingredient
        also = "" if label.lower() == entry.lower() else f" (ordered as {label})"
        return MET, [], f"{entry} is a preferred product{also}"
    since = today - dt.timedelta(days=lookback_days)
    tried = [t for t in taken if t.product.tokens & wanted and t.status not in ("entered-in-error", "cancelled")
             and in_window(t.start, since, today)]
    if tried:
        latest = max(tried, key=lambda t: (t.start, t.reference))
        return MET, tried, f"preferred product tried: {latest.name} from {latest.start}"
    return UNDECIDED, [], f"no preferred product ({', '.join(preferred)}) ordered in the last {lookback_days} days"


def _prepare_products(params: dict) -> dict:
    return {**params, "products": product_table(params["products"])}


def product_family(ctx: FactContext, at: dt.date, inputs, params) -> Fact:
    """The ordered product's family (FIL, PEG, SAR, TBO, EFL, EFB); brief = brand or ingredient as ordered."""
    concepts = orders.order_concepts(ctx.order.resource, ctx.record)
    found = identify(concepts, params["products"])
    if found is None:
        return Fact("unknown", note="the order names no product of the policy's drug list")
    evidence = Evidence(ctx.order.reference, _found_text(found))
    return Fact("known", found.product.family, (evidence,), brief=found.label)


def _found_text(found) -> str:
    """'Q5101 → filgrastim-sndz, family FIL' / 'identified from its name '…' → Zarxio (filgrastim-sndz), …'."""
    product = found.product
    named = found.label if found.label == product.ingredient else f"{found.label} ({product.ingredient})"
    via = f"identified from its name '{found.via}'" if found.from_name else found.via
    return f"{via} → {named}, family {product.family}"


def medication_history(ctx: FactContext, at: dt.date, inputs, params) -> Fact:
    """Every CSF MedicationRequest/MedicationStatement of the record (D10; not the draft orders)."""
    unavailable = data_unavailable(ctx, "MedicationRequest") or data_unavailable(ctx, "MedicationStatement")
    if unavailable:
        return unavailable
    taken = []
    for request, _ in medications.history(ctx.record, drafts=False):
        found = identify(orders.order_concepts(request, ctx.record), params["products"])
        if found is not None:
            status = request.get("status") if isinstance(request.get("status"), str) else ""
            reference = reference_of(request) or request["resourceType"]
            taken.append(Taken(reference, found.product, order_start(request), status, found.label))
    return Fact("known", tuple(taken), note=f"{len(taken)} CSF medication(s) on record")


def _taken_evidence(taken: list[Taken]) -> tuple[Evidence, ...]:
    return tuple(Evidence(t.reference, f"{t.name} ({t.status})", t.start.isoformat() if t.start else None)
                 for t in taken)


def preferred(ctx: FactContext, at: dt.date, inputs, params) -> Fact:
    """A.e preferred-product step (setting ``preferredProducts``)."""
    wanted = setting(ctx, params["preferred"])
    wanted = [wanted] if isinstance(wanted, str) else [str(w) for w in wanted or () if isinstance(w, str)]
    found = identify(orders.order_concepts(ctx.order.resource, ctx.record), params["products"])
    history = ctx.fact(inputs["history"], at)
    result, tried, note = preferred_step(wanted, found.product if found else None, items_of(history), at,
                                         int(params.get("lookback_days", 365)), found.label if found else "")
    if result != MET and history.status == "unavailable":
        return history
    return Fact("known", result, _taken_evidence(tried), note)


def _last_before_complication(ctx: FactContext, at: dt.date, inputs, params) -> tuple[Fact | None, object]:
    """(a fact to return as is, None) or (None, (complication fact, the last CSF order or None))."""
    (complication, history), unavailable = inputs_of(ctx, inputs, at, "complication", "history")
    if not complication.known or not isinstance(complication.value, dt.date):
        return unavailable or Fact("unknown", note="no dated neutropenic complication"), None
    if unavailable:
        return unavailable, None
    return None, (complication, last_start_before(complication.value, items_of(history),
                                                  frozenset(params["statuses"])))


def started_before_complication(ctx: FactContext, at: dt.date, inputs, params) -> Fact:
    """A.b.c2: whether a CSF order started on or before the neutropenic complication (Dc)."""
    early, found = _last_before_complication(ctx, at, inputs, params)
    if early is not None:
        return early
    complication, last = found
    if last is None:
        return Fact("known", False, complication.evidence,
                    f"no CSF order started before the complication of {complication.value}")
    return Fact("known", True, _taken_evidence([last]))  # the days fact says when, in its note


def days_before_complication(ctx: FactContext, at: dt.date, inputs, params) -> Fact:
    """A.b.c2: how many days before the neutropenic complication the last CSF order started (the
    policy says how many make a cycle without prophylaxis)."""
    early, found = _last_before_complication(ctx, at, inputs, params)
    if early is not None:
        return early
    complication, last = found
    if last is None:
        return UNKNOWN  # no CSF order at all: the started-before fact says so
    days = (complication.value - last.start).days
    return Fact("known", days, _taken_evidence([last]),
                f"{last.name} started {days} days before the complication of {complication.value}")


CALCULATORS = (
    Calculator("csf_product_family", product_family, prepare=_prepare_products, order_scoped=True,
               code_params=frozenset({"products"})),
    Calculator("csf_medication_history", medication_history, prepare=_prepare_products,
               resource_types=frozenset({"MedicationRequest"}), optional_types=frozenset({"MedicationStatement"}),
               code_params=frozenset({"products"})),
    Calculator("csf_preferred_step", preferred, frozenset({"history"}), _prepare_products, order_scoped=True,
               code_params=frozenset({"products"})),
    Calculator("csf_started_before_complication", started_before_complication, frozenset({"complication", "history"})),
    Calculator("csf_days_before_complication", days_before_complication, frozenset({"complication", "history"})),
)
