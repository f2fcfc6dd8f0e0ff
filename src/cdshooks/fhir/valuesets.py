"""Named value sets: ``valuesets/<name>.json``, each a FHIR R4 ``ValueSet``, loaded once at start-up.

Policies and mappings name a set by its file name (``codes: [opioid-use-disorder]``); no code list
is written in two places.  A file is read the way a terminology server would publish it, so a
VSAC/eCQM export can be dropped in unchanged:

* with an ``expansion``, the members are the expansion's codes (``contains``, nested ones too);
* otherwise ``compose``: ``include`` entries list ``concept`` codes, or a ``filter`` — ``is-a`` /
  ``descendent-of`` on ICD-10-CM or ATC (hierarchies spelled by the code itself: ``M51`` is M51
  and every code below it; ``C00-C96`` is the block of 3-character categories, D1) or ``regex``
  on ``code`` (matched against the D1 form: ICD-10-CM without dots, upper case) — or other sets
  by canonical ``valueSet`` URL; ``exclude`` entries remove codes the same ways.

Every set says where its members come from: each ``include`` of the project's own sets carries the
:data:`SOURCE_EXTENSION` (the policy section, spec/TERMINOLOGY.md, a VSAC OID, an IG value set or
the record corpus it was seen in); a set published elsewhere (its ``url`` is not under
:data:`BASE_URL`) is its own source.  Problems are reported as ``file:line`` like every data file.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Mapping

import yaml
from pydantic import BaseModel
from pydantic import ConfigDict
from pydantic import Field
from pydantic import model_validator

from cdshooks.fhir.codes import SYSTEMS
from cdshooks.fhir.codes import Code
from cdshooks.fhir.codes import CodeError
from cdshooks.fhir.codes import CodeSet
from cdshooks.fhir.read import ICD10CM
from cdshooks.fhir.read import canonical_system
from cdshooks.fhir.read import normalize_code
from cdshooks.files import datafile
from cdshooks.files.datafile import Problem

BASE_URL = "http://example.org/fhir/ValueSet/"
SOURCE_EXTENSION = "http://example.org/fhir/StructureDefinition/valueset-member-source"
NAME = re.compile(r"^[a-z0-9][a-z0-9.-]*$")
# Systems whose hierarchy is written in the code itself, so is-a is a prefix (or block) test.
_PREFIX_SYSTEMS = frozenset({ICD10CM, SYSTEMS["atc"]})
_BLOCK = re.compile(r"^([A-Z][0-9][0-9A-Z])-([A-Z][0-9][0-9A-Z])$")


class _Element(BaseModel):
    # FHIR resources carry many elements we do not read (meta, text, extension, jurisdiction…):
    # they are allowed, so an export from a terminology server loads unchanged.
    model_config = ConfigDict(extra="allow", frozen=True)


class Concept(_Element):
    code: str = Field(min_length=1)
    display: str | None = None


class Filter(_Element):
    property: str
    op: str
    value: str


class Extension(_Element):
    url: str
    valueString: str | None = None


class Include(_Element):
    system: str | None = None
    concept: list[Concept] = Field(default_factory=list)
    filter: list[Filter] = Field(default_factory=list)
    valueSet: list[str] = Field(default_factory=list)
    extension: list[Extension] = Field(default_factory=list)

    @property
    def source(self) -> str | None:
        return next((e.valueString for e in self.extension if e.url == SOURCE_EXTENSION and e.valueString), None)


class Compose(_Element):
    include: list[Include] = Field(min_length=1)
    exclude: list[Include] = Field(default_factory=list)


class Contains(_Element):
    system: str | None = None
    code: str | None = None
    display: str | None = None
    inactive: bool = False
    contains: list["Contains"] = Field(default_factory=list)


class Expansion(_Element):
    contains: list[Contains] = Field(default_factory=list)


class ValueSetFile(_Element):
    resourceType: str = Field(pattern="^ValueSet$")
    url: str | None = None
    name: str | None = None
    title: str | None = None
    description: str | None = None
    compose: Compose | None = None
    expansion: Expansion | None = None

    @model_validator(mode="after")
    def _members(self):
        if self.compose is None and self.expansion is None:
            raise ValueError("a value set needs 'compose' or 'expansion'")
        return self


@dataclass(frozen=True)
class ValueSet:
    name: str
    url: str
    title: str
    codes: CodeSet
    sources: tuple[str, ...]
    file: str
    members: Mapping[str, int]      # system -> how many codes, filters and patterns


@dataclass(frozen=True)
class ValueSets:
    """Every loaded set by name (the file name) and by canonical URL."""

    by_name: Mapping[str, ValueSet]

    def get(self, name: str) -> ValueSet:
        if not isinstance(name, str) or "|" in name:
            raise CodeError(f"'{name}' is a code, not a value-set name: list codes in valuesets/<name>.json")
        found = self.by_name.get(name)
        if found is None:
            raise CodeError(f"unknown value set '{name}' (no valuesets/{name}.json)")
        return found

    def codes(self, names) -> CodeSet:
        """The union of the named sets (a name, or a list of names)."""
        names = [names] if isinstance(names, str) else list(names)
        if not names:
            raise CodeError("name at least one value set")
        return CodeSet.union(self.get(n).codes for n in names)


EMPTY = ValueSets(MappingProxyType({}))


def load(folder: Path, site=None) -> tuple[ValueSets, list[Problem]]:
    """Read every ``*.json`` value set of ``folder`` (then of the site's ``valuesets/``, with the
    site's additions and replacements); return the sets and every problem found."""
    problems: list[Problem] = []
    if not folder.is_dir():
        return EMPTY, [Problem(str(folder), 1, "", "missing", "value-set folder not found")]
    parsed: dict[str, tuple[ValueSetFile, datafile.Document]] = {}
    shipped: set[str] = set()
    for i, where in enumerate(_folders(folder, site)):
        for path in sorted(where.glob("*.json")):
            document, found = _read(path, where.parent if i == 0 else site.folder.parent)
            problems += found
            if document is None:
                continue
            model, found = datafile.validate(document, ValueSetFile)
            problems += found
            if not NAME.match(path.stem):
                problems.append(document.problem((), "name",
                                                 f"file name '{path.stem}' must be lower-case-with-hyphens"))
            elif path.stem in shipped:
                problems.append(document.problem((), "name",
                                                 f"'{path.stem}' is a shipped value set: give the site's set "
                                                 f"its own name and add it in site.yaml (valuesets: {{{path.stem}: "
                                                 f"{{add: [...]}}}} or {{replace: ...}})"))
            elif model is not None:
                parsed[path.stem] = (model, document)
                shipped |= {path.stem} if i == 0 else set()
    changes, found = _site_changes(site, parsed)
    problems += found
    # a set is found by the project's URL for its name and by its own canonical URL, so an export
    # saved under a project name still serves the sets that include it by that name
    by_url = {BASE_URL + name: name for name in parsed}
    by_url.update({m.url: name for name, (m, _) in parsed.items() if m.url})
    compiled: dict[str, ValueSet] = {}
    for name in parsed:
        problems += _compile(name, parsed, by_url, compiled, (), changes)
    return ValueSets(MappingProxyType(compiled)), problems


def _folders(folder: Path, site) -> list[Path]:
    extra = site.sub("valuesets") if site is not None else None
    return [folder] + ([extra] if extra is not None and extra.is_dir() and extra.resolve() != folder.resolve() else [])


def _site_changes(site, parsed) -> tuple[dict, list[Problem]]:
    """site.yaml ``valuesets``: name -> change, each name checked against the loaded sets."""
    if site is None:
        return {}, []
    problems = []
    for name, change in site.file.valuesets.items():
        path = ("valuesets", name)
        if name not in parsed:
            problems.append(site.problem(path, "valueset", f"unknown value set '{name}'{_hint(name, parsed)}"))
        for j, other in enumerate(change.add):
            if other not in parsed:
                problems.append(site.problem(path + ("add", j), "valueset",
                                             f"unknown value set '{other}'{_hint(other, parsed)}"))
        if change.replace and change.replace not in parsed:
            problems.append(site.problem(path + ("replace",), "valueset",
                                         f"unknown value set '{change.replace}'{_hint(change.replace, parsed)}"))
    return {n: c for n, c in site.file.valuesets.items() if n in parsed}, problems


def _hint(name: str, known) -> str:
    from cdshooks.files.suggest import did_you_mean

    return did_you_mean(name, known)


def _read(path: Path, root: Path):
    """JSON with line numbers: parsed strictly as JSON, lines taken from a YAML parse of it."""
    name = str(path.relative_to(root)) if path.is_relative_to(root) else str(path)
    try:
        text = path.read_text(encoding="utf-8")
        data = json.loads(text)
    except (OSError, UnicodeDecodeError) as exc:
        return None, [Problem(name, 1, "", "unreadable", str(exc))]
    except json.JSONDecodeError as exc:
        return None, [Problem(name, exc.lineno, "", "json", exc.msg)]
    lines: dict[tuple, int] = {}
    try:  # JSON is YAML: the YAML reader gives every node its line
        document, _ = datafile.read(path, root)
        lines = document.lines if document is not None else {}
    except yaml.YAMLError:
        pass
    return datafile.Document(name, data, lines), []


def _compile(name, parsed, by_url, compiled, stack, changes) -> list[Problem]:
    if name in compiled:
        return []
    model, document = parsed[name]
    change = changes.get(name)
    if name in stack:
        return [document.problem(("compose",), "valueset",
                                 f"value sets include each other: {' -> '.join(stack + (name,))}")]
    problems: list[Problem] = []
    entries: list[Code] = []
    sources: list[str] = []
    published = bool(model.url) and not model.url.startswith(BASE_URL)
    if model.expansion is not None and model.expansion.contains:
        entries = [_exact(c.system, c.code) for c in _flatten(model.expansion.contains)]
        sources.append(model.url or name)
    elif model.compose is not None:
        excluded = []
        for i, part in enumerate(model.compose.exclude):
            path = ("compose", "exclude", i)
            found, more = _entries(part, path, document, parsed, by_url, compiled, stack + (name,), [], changes)
            excluded += found
            problems += more
        for i, part in enumerate(model.compose.include):
            path = ("compose", "include", i)
            if part.source is None and part.system is not None and not published:
                problems.append(document.problem(path, "source", "say where the members come from: an extension "
                                                 f"'{SOURCE_EXTENSION}' with valueString"))
            sources += [part.source] if part.source else []
            found, more = _entries(part, path, document, parsed, by_url, compiled, stack + (name,), sources, changes)
            entries += _without(found, excluded)
            problems += more
        if published:
            sources.append(model.url)
    if not entries and not problems:
        problems.append(document.problem(("compose",), "valueset", "the value set has no members"))
    if change is not None:  # the site's additions or replacement (site.yaml)
        if change.replace:
            entries, sources = [], []
        for other in change.add or [change.replace]:
            if other in parsed:
                problems += _compile(other, parsed, by_url, compiled, stack + (name,), changes)
                if other in compiled:
                    entries += compiled[other].codes.include
                    sources += compiled[other].sources
    members: dict[str, int] = {}
    for entry in entries:
        members[entry.system] = members.get(entry.system, 0) + 1
    compiled[name] = ValueSet(name, model.url or BASE_URL + name, model.title or model.name or name,
                              CodeSet.of_entries(entries), tuple(dict.fromkeys(sources)), document.file,
                              MappingProxyType(members))
    return problems


def _flatten(contains):
    for item in contains:
        if item.system and item.code and not item.inactive:
            yield item
        yield from _flatten(item.contains)


def _exact(system: str, code: str) -> Code:
    system = canonical_system(system)   # the same URI aliases as the record (Blue Button HCPCS)
    return Code(system, normalize_code(system, code), "exact", token=f"{system}|{code}")


def _entries(part: Include, path, document, parsed, by_url, compiled, stack, sources: list,
             changes) -> tuple[list[Code], list[Problem]]:
    """The entries of one include or exclude; the sources of included sets are added to ``sources``."""
    problems, entries = [], []
    for j, canonical in enumerate(part.valueSet):
        target = by_url.get(canonical.split("|")[0])
        if target is None:
            problems.append(document.problem(path + ("valueSet", j), "valueset", f"unknown value set '{canonical}'"))
            continue
        problems += _compile(target, parsed, by_url, compiled, stack, changes)
        if target in compiled:
            entries += compiled[target].codes.include
            sources += compiled[target].sources
    if part.system is None:
        if not part.valueSet:
            problems.append(document.problem(path, "valueset", "an include needs 'system' or 'valueSet'"))
        return entries, problems
    problems += _system_problems(part, path, document)
    entries += [_exact(part.system, c.code) for c in part.concept]
    for j, flt in enumerate(part.filter):
        try:
            entries.append(_filter_entry(part.system, flt))
        except (CodeError, re.error) as exc:
            problems.append(document.problem(path + ("filter", j), "filter", str(exc)))
    if not part.concept and not part.filter and not part.valueSet:
        problems.append(document.problem(path, "valueset", f"a whole code system ({part.system}) is not a usable set: "
                                         f"list concepts, add a filter, or include the expansion"))
    return entries, problems


_KNOWN_SYSTEMS = frozenset(SYSTEMS.values())
_DASHES = str.maketrans({"\u2010": "-", "\u2011": "-", "\u2012": "-", "\u2013": "-", "\u2014": "-", "\u2212": "-"})


def _system_problems(part: Include, path, document) -> list[Problem]:
    """A system URI the record never carries, or a range written as a code: both never match."""
    system, problems = part.system, []
    if system != system.strip() or (system.endswith("/") and canonical_system(system) not in _KNOWN_SYSTEMS):
        fixed = system.strip().rstrip("/")
        hint = f": write '{fixed}'" if canonical_system(fixed) in _KNOWN_SYSTEMS else ""
        problems.append(document.problem(path + ("system",), "never-matches",
                                         f"system '{system}' has a trailing slash or space; "
                                         f"records never carry it{hint}"))
    for j, concept in enumerate(part.concept):
        if (canonical_system(system) in _PREFIX_SYSTEMS
                and _BLOCK.match(concept.code.strip().upper().translate(_DASHES))):
            problems.append(document.problem(path + ("concept", j, "code"), "never-matches",
                                             f"'{concept.code}' is a range, not a code: write it as a filter "
                                             "{property: concept, op: is-a, "
                                             f"value: {concept.code.translate(_DASHES)}}}"))
    return problems


def _filter_entry(system: str, flt: Filter) -> Code:
    system = canonical_system(system)
    token = f"{system}|{flt.op}:{flt.value}"
    if flt.op == "regex" and flt.property == "code":
        return Code(system, flt.value, "pattern", token=token, pattern=re.compile(flt.value))
    if flt.op in ("is-a", "descendent-of") and flt.property in ("concept", "code") and system in _PREFIX_SYSTEMS:
        # a range may be written with an en dash (as policies print it) or an ASCII hyphen: both are ranges
        value = flt.value.strip().translate(_DASHES)
        value = value.upper() if system == ICD10CM else value
        block = _BLOCK.match(value)
        if block:
            return Code(system, block.group(1), "range", block.group(2), token=token)
        return Code(system, normalize_code(system, value), "prefix", token=token)
    raise CodeError(f"filter '{flt.property} {flt.op} {flt.value}' is not computable here for {system}: "
                    f"list the concepts or include the expansion")


def _without(entries: list[Code], excluded: list[Code]) -> list[Code]:
    """Apply the set's exclusions: excluded exact codes are dropped, the rest ride on each entry."""
    if not excluded:
        return entries
    out = []
    for entry in entries:
        if any(x.matches(entry.system, entry.code) for x in excluded) and entry.kind == "exact":
            continue
        relevant = tuple(x for x in excluded if x.system == entry.system)
        out.append(Code(entry.system, entry.code, entry.kind, entry.upper, entry.token, entry.pattern,
                        entry.minus + relevant) if relevant and entry.kind != "exact" else entry)
    return out
