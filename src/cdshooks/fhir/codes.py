"""Code sets written as ``system|code`` tokens, matched by the rules of D1.

Token forms (``system`` is an alias below or a full URI):
  ``icd10cm|F11.20``      exact (ICD-10-CM compared without dots, case-insensitively)
  ``icd10cm|M51.-``       prefix: M51 and every code below it (also ``G90.5-``)
  ``icd10cm|C00–C96``     range of 3-character categories compared as strings (C7A is inside)
  ``cpt|81420``           exact (CPT, HCPCS, LOINC, SNOMED, RxNorm compare exactly)

Named value sets (``valuesets/*.json``, :mod:`cdshooks.fhir.valuesets`) compile to the same entries,
plus ``pattern`` entries (a FHIR ``regex`` filter on the normalized code); each entry carries the
exclusions of its value set (``minus``), so a union of sets is the concatenation of their entries.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from dataclasses import field

from cdshooks.fhir.read import HCPCS
from cdshooks.fhir.read import ICD10CM
from cdshooks.fhir.read import codings
from cdshooks.fhir.read import normalize_code
from cdshooks.fhir.record import Record

SYSTEMS = {
    "icd10cm": ICD10CM,
    "loinc": "http://loinc.org",
    "snomed": "http://snomed.info/sct",
    "rxnorm": "http://www.nlm.nih.gov/research/umls/rxnorm",
    "cpt": "http://www.ama-assn.org/go/cpt",
    "hcpcs": HCPCS,
    "ucum": "http://unitsofmeasure.org",
    "atc": "http://www.whocc.no/atc",
    "icd10pcs": "http://www.cms.gov/Medicare/Coding/ICD10",
}
_RANGE = re.compile(r"^([A-Z0-9]{3})\s*(?:–|\.\.)\s*([A-Z0-9]{3})$")


class CodeError(ValueError):
    """A code token that cannot be read."""


@dataclass(frozen=True)
class Code:
    system: str
    code: str       # normalized
    kind: str       # "exact" | "prefix" | "range" | "pattern"
    upper: str = ""  # range end (ranges only)
    token: str = ""
    pattern: re.Pattern | None = None    # pattern entries only
    minus: tuple["Code", ...] = ()       # the exclusions of the value set the entry comes from

    def matches(self, system: str, code: str) -> bool:
        if system != self.system or not self._covers(code):
            return False
        return not self.minus or not any(m.matches(system, code) for m in self.minus)

    def _covers(self, code: str) -> bool:
        if self.kind == "exact":
            return code == self.code
        if self.kind == "prefix":
            return code.startswith(self.code)
        if self.kind == "pattern":
            return self.pattern.search(code) is not None
        return self.code <= code[:3] <= self.upper


def parse(token: str) -> Code:
    """Read one ``system|code`` token."""
    system_part, sep, code_part = token.partition("|")
    if not sep or not code_part.strip():
        raise CodeError(f"'{token}' is not 'system|code'")
    system = SYSTEMS.get(system_part.strip(), system_part.strip())
    if "://" not in system and not system.startswith("urn:"):
        raise CodeError(f"unknown code system '{system_part}' (use one of {', '.join(SYSTEMS)} or a URI)")
    code = code_part.strip()
    if system == ICD10CM:
        ranged = _RANGE.match(code.upper())
        if ranged:
            return Code(system, ranged.group(1), "range", ranged.group(2), token)
    if code.endswith("-") and len(code) > 1:  # "M51.-", "G90.5-", "J01-" (an ATC class)
        return Code(system, normalize_code(system, code.rstrip("-").rstrip(".")), "prefix", token=token)
    return Code(system, normalize_code(system, code), "exact", token=token)


@dataclass(frozen=True)
class CodeSet:
    """Included codes minus excluded codes (and an optional exclusion pattern on the code)."""

    include: tuple[Code, ...]
    exclude: tuple[Code, ...] = ()
    exclude_pattern: re.Pattern | None = None
    # lookup structures built once: exact codes by (system, code); prefixes and ranges by system
    _exact: dict = field(default_factory=dict, compare=False)
    _partial: dict = field(default_factory=dict, compare=False)
    # for candidates(): the position of each exact code's first entry, and of every other entry
    _first: dict = field(default_factory=dict, compare=False)
    _partial_at: tuple[int, ...] = field(default=(), compare=False)

    @classmethod
    def of(cls, include, exclude=(), exclude_pattern: str | None = None) -> "CodeSet":
        inc = tuple(parse(t) for t in include)
        exc = tuple(parse(t) for t in exclude)
        pattern = re.compile(exclude_pattern) if exclude_pattern else None
        return cls.of_entries(inc, exc, pattern)

    @classmethod
    def of_entries(cls, include, exclude=(), exclude_pattern: re.Pattern | None = None) -> "CodeSet":
        """A set of compiled entries (exact ones found by one dictionary lookup)."""
        inc = tuple(include)
        exact = {(c.system, c.code): c for c in reversed(inc) if c.kind == "exact" and not c.minus}
        partial: dict[str, tuple[Code, ...]] = {}
        for code in inc:
            if code.kind != "exact" or code.minus:
                partial[code.system] = partial.get(code.system, ()) + (code,)
        first: dict[tuple[str, str], int] = {}
        for i, code in enumerate(inc):
            if code.kind == "exact":
                first.setdefault((code.system, code.code), i)
        partial_at = tuple(i for i, code in enumerate(inc) if code.kind != "exact")
        return cls(inc, tuple(exclude), exclude_pattern, exact, partial, first, partial_at)

    @classmethod
    def union(cls, sets) -> "CodeSet":
        """Every entry of several sets; each entry keeps its own set's exclusions."""
        sets = tuple(sets)
        if len(sets) == 1:
            return sets[0]
        if any(s.exclude or s.exclude_pattern for s in sets):
            raise CodeError("sets with set-level exclusions cannot be combined")
        return cls.of_entries(tuple(e for s in sets for e in s.include))

    def exact_codes(self, system: str) -> frozenset[str]:
        """The listed codes of one system (e.g. SNOMED route codes compared as plain strings)."""
        return frozenset(e.code for e in self.include if e.system == system and e.kind == "exact")

    def entry_for(self, system: str, code: str) -> Code | None:
        """The included entry a (normalized) coding falls under, unless it is excluded."""
        if self.exclude and any(c.matches(system, code) for c in self.exclude):
            return None
        if self.exclude_pattern is not None and self.exclude_pattern.search(code):
            return None
        found = self._exact.get((system, code))
        if found is not None:
            return found
        for entry in self._partial.get(system, ()):
            if entry.matches(system, code):
                return entry
        return None

    def matches_concept(self, concept) -> list[tuple[str, str, Code]]:
        """``(system, code, entry)`` for each coding of a CodeableConcept (or list) in the set."""
        hits = []
        for system, code in codings(concept):
            entry = self.entry_for(system, code)
            if entry is not None:
                hits.append((system, code, entry))
        return hits

    def candidates(self, record: Record) -> list[dict]:
        """Resources of the record whose main code may be in the set (index lookups, no scans), in the
        order of the set's entries."""
        by_code = record.by_code
        # a record holds far fewer codes than a large set lists: the two meet from the smaller side
        at = sorted([self._first[key] for key in by_code.keys() & self._first.keys()] + list(self._partial_at))
        seen: dict[int, dict] = {}
        for i in at:
            entry = self.include[i]
            found = by_code[entry.system, entry.code] if entry.kind == "exact" else _partial_lookup(entry, record)
            for resource in found:
                seen.setdefault(id(resource), resource)
        return list(seen.values())


def _partial_lookup(entry: Code, record: Record):
    """Resources that may hold a prefix, range or pattern entry's codes (exclusions are applied by the
    caller's match)."""
    if entry.system == ICD10CM and entry.kind != "pattern":
        if entry.kind == "prefix" and len(entry.code) >= 3:
            return record.with_icd_category(entry.code[:3])
        return [r for cat, rs in record.by_category.items() if entry._covers(cat) for r in rs]
    return [r for (system, code), rs in record.by_code.items()
            if system == entry.system and entry._covers(code) for r in rs]
