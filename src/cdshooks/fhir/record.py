"""The patient's record for one call, indexed once: by type, by ``Type/id`` and by code.

Built in one pass over the prefetch slots and the draft orders.  Mappings look candidates up by
``(system, code)`` here instead of scanning whole Bundles; ICD-10-CM codes are indexed without
dots, upper-case, and also by their 3-character category so that prefix sets (``M51.-``) and
category ranges (``C00–C96``) cost one dictionary lookup per category.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from dataclasses import field

from cdshooks import jsonio
from cdshooks.fhir.orders import DraftOrder
from cdshooks.fhir.read import ICD10CM
from cdshooks.fhir.read import MAIN_CODE
from cdshooks.fhir.read import as_list
from cdshooks.fhir.read import codings
from cdshooks.fhir.read import normalize_code


@dataclass(frozen=True)
class Slot:
    """What one key holds for this call."""

    state: str                 # "data" | "none" | "unavailable"
    value: dict | None = None  # the resource or (merged) Bundle when state == "data"
    reason: str = ""


def display_code(system: str | None, code: str) -> str:
    """How a code is shown to people: ICD-10-CM with its dot after the category (C50.911)."""
    if system == ICD10CM:
        bare = code.replace(".", "").upper().strip()
        return f"{bare[:3]}.{bare[3:]}" if len(bare) > 3 else bare
    return code


def display_codes(pairs) -> str:
    """``(system, code)`` pairs as people read them, comma-separated (see :func:`display_code`)."""
    return ", ".join(display_code(system, code) for system, code in pairs)


@dataclass
class Record:
    """Resources of one patient for one call, with the drafts of ``context.draftOrders``."""

    by_type: dict[str, list[dict]] = field(default_factory=lambda: defaultdict(list))
    by_ref: dict[str, dict] = field(default_factory=dict)
    by_code: dict[tuple[str, str], list[dict]] = field(default_factory=lambda: defaultdict(list))
    by_category: dict[str, list[dict]] = field(default_factory=lambda: defaultdict(list))
    unavailable: dict[str, str] = field(default_factory=dict)   # resource type -> reason
    draft_refs: frozenset[str] = frozenset()
    drafts: tuple[DraftOrder, ...] = ()
    patient: dict | None = None
    memo: dict = field(default_factory=dict)   # per-resource derivations (dates, D2 states) by id
    other_patients: dict[str, int] = field(default_factory=dict)   # D11: left out, by resource type
    deferred: list = field(default_factory=list)   # (Bundle, _Own) not yet walked: see build(defer_unread)

    def derived(self, kind: str, resource: dict, compute, *args):
        """``compute(resource, *args)`` once per resource and arguments for this call."""
        key = (kind, id(resource), *args)
        found = self.memo.get(key, self)
        if found is self:
            found = self.memo[key] = compute(resource, *args)
        return found

    def of_type(self, resource_type: str) -> list[dict]:
        return self.by_type.get(resource_type, [])

    def with_code(self, system: str, code: str) -> list[dict]:
        return self.by_code.get((system, normalize_code(system, code)), [])

    def with_icd_category(self, category: str) -> list[dict]:
        return self.by_category.get(category.upper(), [])

    def is_draft(self, resource: dict) -> bool:
        return reference_of(resource) in self.draft_refs

    def resolve(self, reference, container: dict | None = None) -> dict | None:
        """Resolve a Reference (or its ``reference`` string): contained, relative or absolute."""
        if isinstance(reference, dict):
            reference = reference.get("reference")
        if not isinstance(reference, str) or not reference:
            return None
        if reference.startswith("#"):
            for contained in as_list((container or {}).get("contained")):
                if isinstance(contained, dict) and contained.get("id") == reference[1:]:
                    return contained
            return None
        parts = reference.rstrip("/").split("/")
        if len(parts) < 2:
            return None
        key = "/".join(parts[-2:])
        if key not in self.by_ref and self.deferred:
            self._walk_deferred()
        return self.by_ref.get(key)

    def _walk_deferred(self) -> None:
        deferred, self.deferred = self.deferred, []
        for value, own in deferred:
            _take(self, value, self.register, own)

    def add(self, resource: dict) -> None:
        if not self.register(resource):
            return  # a draft order and its prefetched copy count once; drafts come first
        resource_type = resource["resourceType"]
        self.by_type[resource_type].append(resource)
        element = MAIN_CODE.get(resource_type)
        concept = resource.get(element) if element is not None else None
        main = codings(concept) if concept is not None else ()
        if main:
            self._index(resource, main)
        if resource_type == "Observation" and "component" in resource:  # D9: values on components
            parts = {p for c in as_list(resource["component"]) if type(c) is dict for p in codings(c.get("code"))}
            self._index(resource, parts.difference(main))

    def register(self, resource: dict) -> bool:
        """Make ``resource`` resolvable by reference; False if one with its reference is already in."""
        rid = resource.get("id")
        if type(rid) is str and rid:   # reference_of(), inlined: this runs once per resource
            reference = f"{resource['resourceType']}/{rid}"
            if reference in self.by_ref:
                return False
            self.by_ref[reference] = resource
        return True

    def _index(self, resource: dict, pairs) -> None:
        by_code = self.by_code
        for pair in pairs:
            by_code[pair].append(resource)
            if pair[0] == ICD10CM:
                self.by_category[pair[1][:3]].append(resource)


def reference_of(resource: dict) -> str | None:
    rid = resource.get("id")
    return f"{resource['resourceType']}/{rid}" if isinstance(rid, str) and rid else None


def build(slots: dict[str, Slot], slot_types: dict[str, str], drafts: tuple[DraftOrder, ...],
          patient_id: str | None = None, read: frozenset[str] | None = None, defer_unread: bool = False) -> Record:
    """Index the drafts and every resource in the prefetch slots (``slot_types``: key -> type).

    With ``patient_id`` (``context.patientId``), resources of another patient — a Patient with
    another id, or a ``subject``/``patient`` reference naming another patient — are left out and
    counted (D11); resources without a subject are the patient's.

    With ``read``, only the slots of those keys are indexed by type and code (what the call's
    policies and coverage-information read); the others' resources are still resolvable by
    reference and still counted when they belong to another patient, so cards say the same.
    Indexing is most of what a call costs when no policy applies; then (``defer_unread``: no card
    says how many resources were left out) the other slots are not walked at all until a reference
    the indexed resources cannot resolve (a Coverage's payor) asks for them.
    """
    record = Record(draft_refs=frozenset(d.reference for d in drafts), drafts=drafts)
    for draft in drafts:
        record.add(draft.resource)
    own = _Own(patient_id, slots) if patient_id else None
    for key, slot in slots.items():
        if slot.state == "unavailable":
            record.unavailable[slot_types.get(key, key)] = slot.reason or "unavailable"
        elif slot.state == "data" and read is not None and key not in read and defer_unread:
            record.deferred.append((slot.value, own))
        elif slot.state == "data":
            _take(record, slot.value, record.add if read is None or key in read else record.register, own)
    patients = record.of_type("Patient")
    record.patient = patients[0] if patients else None
    return record


def _take(record: Record, value: dict, keep, own: _Own | None) -> None:
    """``keep`` each resource of a slot's value, or count it when it is another patient's (D11)."""
    other = own.other if own is not None else None
    for resource in _resources(jsonio.whole(value)):   # a slot the call did not read is read now
        if other is not None and other(resource):
            kind = resource["resourceType"]
            record.other_patients[kind] = record.other_patients.get(kind, 0) + 1
            continue
        keep(resource)


class _Own:
    """Whose a resource is; the common case in one set lookup: ``subject``/``patient`` is
    ``Patient/<patientId>``. The Bundles' Patient ``fullUrl``s are read only for the others."""

    def __init__(self, patient_id: str, slots: dict[str, Slot]):
        self.patient_id, self.slots, self.aliases = patient_id, slots, None
        self.references = frozenset({f"Patient/{patient_id}", f"urn:uuid:{patient_id}"})

    def other(self, resource: dict) -> bool:
        """Whether ``resource`` names another patient than the call's."""
        # the common case first, inlined (once per resource): subject or patient is plainly the patient's
        references = self.references
        for element in ("subject", "patient"):
            reference = resource.get(element)
            if type(reference) is dict and reference.get("reference") in references:
                return False
        return _whose(resource, self, self.patient_id) not in (None, self.patient_id)

    # _whose() reads the fullUrl -> id map through these two: built on the first reference it asks
    # about (a Coverage's beneficiary or a Patient never does), not for every call
    def __contains__(self, full_url: str) -> bool:
        return full_url in self._aliases()

    def __getitem__(self, full_url: str) -> str:
        return self._aliases()[full_url]

    def _aliases(self) -> dict[str, str]:
        if self.aliases is None:
            self.aliases = _patient_urls(self.slots)
        return self.aliases


def _whose(resource: dict, aliases, patient_id: str) -> str | None:
    """The id of the patient a resource names (Patient/x, .../Patient/x, a Bundle fullUrl), else None.

    A ``urn:uuid:`` reference is Bundle-local: it names a patient only through the ``fullUrl`` of
    a Patient entry (or when the uuid is the patient's id); one that resolves to nothing is not
    read as another patient. ``aliases``: the Bundles' Patient ``fullUrl`` -> id (``in`` and ``[]``).
    """
    if resource["resourceType"] == "Patient":
        rid = resource.get("id")
        return rid if isinstance(rid, str) and rid else None
    for element in ("subject", "patient"):
        reference = resource.get(element)
        reference = reference.get("reference") if isinstance(reference, dict) else None
        if not isinstance(reference, str) or not reference:
            continue
        if reference in aliases:
            return aliases[reference]
        if reference.startswith("urn:"):
            return patient_id if reference.endswith(":" + patient_id) else None
        parts = reference.split("/_history/")[0].rstrip("/").split("/")
        if len(parts) >= 2 and parts[-2] == "Patient":
            return parts[-1]
    return None


def _patient_urls(slots: dict[str, Slot]) -> dict[str, str]:
    """``fullUrl`` -> id of every Patient entry of the prefetched Bundles."""
    found = {}
    for slot in slots.values():
        if slot.state == "data" and slot.value.get("resourceType") == "Bundle":
            for entry in as_list(slot.value.get("entry")):
                resource = entry.get("resource") if isinstance(entry, dict) else None
                if isinstance(resource, dict) and resource.get("resourceType") == "Patient" \
                        and isinstance(entry.get("fullUrl"), str) and isinstance(resource.get("id"), str):
                    found[entry["fullUrl"]] = resource["id"]
    return found


def _resources(value: dict) -> list[dict]:
    if value.get("resourceType") != "Bundle":
        return [value]
    entries = value.get("entry")
    return [resource for entry in (entries if type(entries) is list else as_list(entries))
            if type(entry) is dict and type(resource := entry.get("resource")) is dict
            and type(resource_type := resource.get("resourceType")) is str and resource_type != "OperationOutcome"]
