"""A small validator of CRD ext-coverage-information, driven by the CRD 2.0.1 package itself.

It reads ``StructureDefinition-ext-coverage-information.json`` (slices, cardinalities, value types,
required bindings, invariants) and the package's ValueSets/CodeSystem; the five invariants'
FHIRPath expressions are translated below, and :func:`CoverageInformationProfile.__init__` refuses
a package whose invariants are not exactly the ones translated.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

URL = "http://hl7.org/fhir/us/davinci-crd/StructureDefinition/ext-coverage-information"
_DATE = re.compile(r"^\d{4}(-\d{2}(-\d{2})?)?$")


def _values(ext: dict, url: str) -> list:
    return [next((v for k, v in part.items() if k.startswith("value")), None)
            for part in ext.get("extension", []) if part.get("url") == url]


# key -> (FHIRPath in the package, the same rule over our JSON)
INVARIANTS = {
    "crd-ci-q1": ("extension.where(url='questionnaire' or url='response').exists() implies "
                  "(extension.where(url = 'doc-needed').exists() "
                  "and extension.where(url = 'doc-needed').all(value != 'no-doc'))",
                  lambda e: not (_values(e, "questionnaire") or _values(e, "response"))
                  or (bool(_values(e, "doc-needed")) and all(v != "no-doc" for v in _values(e, "doc-needed")))),
    "crd-ci-q2": ("extension.where(url = 'covered' and value != 'not-covered') "
                  "implies extension.where(url = 'pa-needed').exists()",
                  lambda e: not any(v != "not-covered" for v in _values(e, "covered"))
                  or bool(_values(e, "pa-needed"))),
    "crd-ci-q3": ("extension.where(url = 'info-needed').exists() implies extension.where((url = 'covered' or url = "
                  "'pa-needed' or url = 'doc-needed') and value = 'conditional').count() >= 1",
                  lambda e: not _values(e, "info-needed") or sum(
                      v == "conditional" for u in ("covered", "pa-needed", "doc-needed") for v in _values(e, u)) >= 1),
    "crd-ci-q4": ("extension.where(url = 'pa-needed' and value = 'satisfied') "
                  "and extension.where(url = 'doc-purpose').exists() "
                  "implies extension.where(url = 'doc-purpose').all(value != 'PA')",
                  lambda e: not ("satisfied" in _values(e, "pa-needed") and _values(e, "doc-purpose"))
                  or all(v != "PA" for v in _values(e, "doc-purpose"))),
    "crd-ci-q5": ("extension.where(url = 'pa-needed' and value = 'satisfied').exists() "
                  "= extension.where(url = 'satisfied-pa-id').exists()",
                  lambda e: ("satisfied" in _values(e, "pa-needed")) == bool(_values(e, "satisfied-pa-id"))),
}


class ValueSets:
    """Expansions of the package's ValueSets (concept lists and descendent-of filters on its CodeSystem)."""

    def __init__(self, package: Path):
        self.sets = {}
        for path in package.glob("ValueSet-*.json"):
            vs = json.loads(path.read_text(encoding="utf-8"))
            self.sets[vs["url"]] = vs
        self.children = {}
        for path in package.glob("CodeSystem-*.json"):
            cs = json.loads(path.read_text(encoding="utf-8"))
            self._index(cs["url"], cs.get("concept", []), None)

    def _index(self, system, concepts, parent):
        for concept in concepts:
            self.children.setdefault((system, parent), []).append(concept["code"])
            self._index(system, concept.get("concept", []), concept["code"])

    def codes(self, url: str) -> set[tuple[str, str]]:
        vs = self.sets[url.split("|")[0]]
        out = set()
        for include in vs["compose"]["include"]:
            system = include["system"]
            out |= {(system, c["code"]) for c in include.get("concept", [])}
            for f in include.get("filter", []):
                assert f["op"] == "descendent-of", f
                out |= {(system, code) for code in self._descendants(system, f["value"])}
        return out

    def _descendants(self, system, code):
        for child in self.children.get((system, code), []):
            yield child
            yield from self._descendants(system, child)


class CoverageInformationProfile:
    def __init__(self, package: Path):
        sd = json.loads((package / "StructureDefinition-ext-coverage-information.json").read_text(encoding="utf-8"))
        assert sd["url"] == URL
        self.valuesets = ValueSets(package)
        elements = {e["id"]: e for e in sd["snapshot"]["element"]}
        self.invariants = {c["key"]: c["expression"] for c in elements["Extension"].get("constraint", [])
                           if c["key"].startswith("crd-ci-")}
        assert self.invariants == {k: v[0] for k, v in INVARIANTS.items()}, "the package's invariants changed"
        self.slices = self._slices(elements, "Extension.extension")
        self.detail = self._slices(elements, "Extension.extension:detail.extension")

    @staticmethod
    def _slices(elements, prefix):
        out = {}
        for eid, element in elements.items():
            name = eid[len(prefix) + 1:] if eid.startswith(prefix + ":") else None
            if not name or "." in name or ":" in name:
                continue
            value = elements.get(f"{eid}.value[x]", {})
            out[name] = {"min": element["min"], "max": element["max"],
                         "types": [t["code"] for t in value.get("type", [])],
                         "binding": (value.get("binding")
                                     if value.get("binding", {}).get("strength") == "required" else None)}
        return out

    def problems(self, ext: dict) -> list[str]:
        """Every way ``ext`` breaks the profile (empty when valid)."""
        if ext.get("url") != URL:
            return [f"url {ext.get('url')!r}"]
        found = self._check_slices(ext, self.slices, "")
        for part in ext.get("extension", []):
            if part.get("url") == "detail":
                found += self._check_slices(part, self.detail, "detail.")
        found += [f"invariant {key} broken" for key, (_, rule) in INVARIANTS.items() if not rule(ext)]
        return found

    def _check_slices(self, ext, slices, where) -> list[str]:
        parts = ext.get("extension", [])
        found = [f"{where}{p.get('url')}: not defined by the profile" for p in parts if p.get("url") not in slices]
        for name, rule in slices.items():
            mine = [p for p in parts if p.get("url") == name]
            if len(mine) < rule["min"] or (rule["max"] != "*" and len(mine) > int(rule["max"])):
                found.append(f"{where}{name}: {len(mine)} repetitions, allowed {rule['min']}..{rule['max']}")
            for part in mine:
                found += [f"{where}{name}: {p}" for p in self._check_value(part, rule)]
        return found

    def _check_value(self, part, rule) -> list[str]:
        if rule["types"] == []:   # a complex sub-extension: no value of its own
            return [] if not any(k.startswith("value") for k in part) else ["a complex extension carries a value"]
        keys = [k for k in part if k.startswith("value")]
        if len(keys) != 1:
            return [f"needs exactly one value, has {keys}"]
        kind = keys[0][len("value"):]
        kind = kind[0].lower() + kind[1:] if kind in ("Code", "Date", "String", "Canonical", "Boolean") else kind
        if kind not in rule["types"]:
            return [f"value type {kind} not in {rule['types']}"]
        value = part[keys[0]]
        problems = _shape(kind, value)
        if rule["binding"] and kind == "code":
            allowed = {code for _, code in self.valuesets.codes(rule["binding"]["valueSet"])}
            if value not in allowed:
                problems.append(f"code {value!r} not in required value set {rule['binding']['valueSet']}")
        return problems


def _shape(kind, value) -> list[str]:
    ok = {
        "code": lambda v: isinstance(v, str) and v.strip() == v and v != "",
        "string": lambda v: isinstance(v, str) and v.strip() != "",
        "canonical": lambda v: isinstance(v, str) and re.match(r"^https?://\S+$", v),
        "date": lambda v: isinstance(v, str) and _DATE.match(v),
        "boolean": lambda v: isinstance(v, bool),
        "Reference": lambda v: isinstance(v, dict) and (isinstance(v.get("reference"), str) or "identifier" in v),
        "CodeableConcept": lambda v: isinstance(v, dict) and (v.get("coding") or v.get("text")) and all(
            isinstance(c, dict) and c.get("system") and c.get("code") for c in v.get("coding", [])),
    }.get(kind, lambda v: True)
    return [] if ok(value) else [f"malformed {kind}: {value!r}"]
