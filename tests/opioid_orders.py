"""Opioid orders for the MME tests: FHIR builders, the tables, and worked example 1 (pump spec §f.1)."""

from datetime import date

from cdshooks.facts.calculators.opioids.dose import daily_mme
from cdshooks.facts.calculators.opioids.dose import opioid_ingredients
from cdshooks.facts.calculators.opioids.tables import load_mme_tables
from cdshooks.facts.calculators.opioids.wean import assess_wean

RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
NDC = "http://hl7.org/fhir/sid/ndc"
SNOMED = "http://snomed.info/sct"
HCPCS = "https://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets"
GTS = "http://terminology.hl7.org/CodeSystem/v3-GTSAbbreviation"
INTRATHECAL = "72607000"
EPIDURAL = "404820008"
INTRAVENOUS = "47625008"
R = date(2025, 6, 15)
TABLES = load_mme_tables()


# --- builders ------------------------------------------------------------------------------------


def concept(code, system=RXNORM):
    return {"coding": [{"system": system, "code": code}]}


def dose(value=1, unit="{tbl}", *, every=None, code=None, prn=False, bounds=None, **extra):
    """One Dosage: `value unit`, `every=(frequency, period, periodUnit)` or a timing `code`."""
    repeat = {}
    if every is not None:
        repeat.update(frequency=every[0], period=every[1], periodUnit=every[2])
    if bounds is not None:
        repeat["boundsPeriod"] = {"start": bounds[0], "end": bounds[1]}
    timing = {"repeat": repeat} if repeat else {}
    if code is not None:
        timing["code"] = concept(code, GTS)
    dosage = {"timing": timing} if timing else {}
    if value is not None:
        dosage["doseAndRate"] = [{"doseQuantity": {"value": value, "unit": unit, "code": unit}}]
    if prn:
        dosage["asNeededBoolean"] = True
    return {**dosage, **extra}


def order(rid, code, *dosages, status="active", intent="order", authored=None, **extra):
    request = {
        "resourceType": "MedicationRequest",
        "id": rid,
        "status": status,
        "intent": intent,
        "medicationCodeableConcept": concept(code),
        "dosageInstruction": list(dosages),
    }
    if authored is not None:
        request["authoredOn"] = authored
    return {**request, **extra}


def supply(days, repeats=None, unit="d"):
    dispense = {"expectedSupplyDuration": {"value": days, "unit": unit, "code": unit}}
    if repeats is not None:
        dispense["numberOfRepeatsAllowed"] = repeats
    return dispense


def with_route(dosage, route_code):
    return {**dosage, "route": concept(route_code, SNOMED)}


def no_resolve(request):
    return None


def resolver(*medications):
    """Resolve contained '#id' references and 'Medication/id' ones against a prefetch list."""
    prefetched = {f"Medication/{m['id']}": m for m in medications}

    def resolve(request):
        ref = str(request["medicationReference"].get("reference"))
        if ref.startswith("#"):
            return next((c for c in request.get("contained", []) if c["id"] == ref[1:]), None)
        return prefetched.get(ref)

    return resolve


def assess(*requests, drafts=(), resolve=no_resolve, **options):
    pairs = [(r, False) for r in requests] + [(d, True) for d in drafts]
    return assess_wean(pairs, resolve, R, TABLES, **options)


def computed(request, resolve=no_resolve):
    return daily_mme(request, resolve, TABLES)


def ingredients_of(request, resolve=no_resolve):
    return opioid_ingredients(request, resolve, TABLES)


def mme_of(request, resolve=no_resolve):
    return computed(request, resolve)[0]


def q12h_tab(**extra):
    return dose(every=(1, 12, "h"), **extra)



def example_1():
    return (
        order(
            "ex1a",
            "1049563",
            q12h_tab(bounds=("2025-01-01", "2025-03-31")),
            status="completed",
        ),
        order(
            "ex1b",
            "856999",
            dose(every=(1, 6, "h"), prn=True),
            status="completed",
            authored="2025-01-01",
            dispenseRequest=supply(90),
        ),
        order("ex1c", "1049502", q12h_tab(), authored="2025-04-01"),
    )


# --- orders named by code, display or text (D9) -----------------------------------------------


def coded(code=None, display=None, system=RXNORM, text=None):
    coding = {k: v for k, v in (("system", system), ("code", code), ("display", display)) if v is not None}
    concept = {"coding": [coding]}
    if text:
        concept["text"] = text
    return concept


def q6h(value=1, unit="{tbl}"):
    return {"timing": {"repeat": {"frequency": 1, "period": 6, "periodUnit": "h"}},
            "doseAndRate": [{"doseQuantity": {"value": value, "unit": unit, "code": unit}}]}



def request(rid, concept, *dosages, status="active", authored="2025-06-01"):
    return {"resourceType": "MedicationRequest", "id": rid, "status": status, "intent": "order",
            "authoredOn": authored, "medicationCodeableConcept": concept, "dosageInstruction": list(dosages)}
