"""A site folder: local adaptation on top of the shipped files, without editing them.

``CDSHOOKS_SITE`` (or ``--site``) names a folder laid out like the project::

    site.yaml            what the site changes in shipped things (below)
    valuesets/*.json     the site's own value sets (FHIR R4 ValueSet, as the shipped ones)
    mappings/*.yaml      the site's own facts; ``overrides: [default.yaml]`` to replace shipped ones
    policies/*.yaml      the site's own policies
    policies/*_test.yaml the site's own test cases (any name ending in _test.yaml; any policy)
    policies/testdata/   the site's fixtures (a case finds a fixture here first, then in the shipped ones)

``site.yaml`` *extends* shipped things instead of replacing them::

    description: St Elsewhere local codes
    valuesets:
      gestational-age: {add: [st-elsewhere-gestational-age]}   # members of these sets are added
      twin-pregnancy: {replace: st-elsewhere-twins}             # or the set is replaced
    facts:
      csf.hiv:
        add_codes: [st-elsewhere-hiv-codes]                     # more value sets, same source
        add_sources:                                            # more resource types
          - {source: MedicationStatement, codes: [antiretrovirals]}
    applicability:
      intrathecal-pain-pump: {trial: [st-elsewhere-pump-trial]} # more codes for one rule only
    settings:
      intrathecal-pain-pump: {paRequired: false}
"""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import Any

from pydantic import Field
from pydantic import model_validator

from cdshooks.facts.model import DURATION
from cdshooks.facts.model import SourceType
from cdshooks.files import datafile
from cdshooks.files.datafile import Problem
from cdshooks.files.model import FileModel

SITE_FILE = "site.yaml"
SCHEMA_FILE = "site-schema.json"


class ValueSetChange(FileModel):
    add: list[str] = Field(default_factory=list, description="value sets whose members are added to this one")
    replace: str | None = Field(None, description="a value set that takes this one's place everywhere")

    @model_validator(mode="after")
    def _one(self):
        if bool(self.add) == bool(self.replace):
            raise ValueError("say exactly one of 'add' (a list of value sets) or 'replace' (one value set)")
        return self


class AddedSource(FileModel):
    """Another resource type a select fact reads; window, pick and date filters stay the fact's."""

    source: SourceType
    codes: list[str] = Field(min_length=1, description="value sets (by name) of the resources to read")
    element: str | None = Field(None, description="coded element to match (default: the type's main code)")
    status: list[str] | None = Field(None, description="allowed status values (default per type)")
    value: str | None = Field(None, description="JSONPath read on each match (default: the fact's)")
    unit: str | None = None


class FactChange(FileModel):
    add_codes: list[str] = Field(default_factory=list, description="value sets added to the fact's codes")
    add_sources: list[AddedSource] = Field(default_factory=list)
    within: str | None = Field(None, pattern=DURATION.pattern, description="replace the fact's window")
    params: dict[str, Any] = Field(default_factory=dict, description="calculator facts: parameters set or replaced")

    @model_validator(mode="after")
    def _something(self):
        if not (self.add_codes or self.add_sources or self.within or self.params):
            raise ValueError("say what changes: add_codes, add_sources, within or params")
        return self


class SiteFile(FileModel):
    description: str = Field(min_length=1, description="which site this is and what it changes")
    valuesets: dict[str, ValueSetChange] = Field(default_factory=dict)
    facts: dict[str, FactChange] = Field(default_factory=dict)
    applicability: dict[str, dict[str, list[str]]] = Field(
        default_factory=dict, description="policy id -> applicability rule name -> value sets added to its codes")
    settings: dict[str, dict[str, bool | int | float | str | list[str]]] = Field(
        default_factory=dict, description="policy id -> setting -> value (CDSHOOKS_POLICY_SETTINGS wins)")


@dataclass(frozen=True)
class Site:
    folder: Path
    file: SiteFile
    document: datafile.Document | None
    problems: tuple[Problem, ...] = field(default=())

    def line(self, *path) -> tuple[str, int]:
        """``(file, line)`` of a key of site.yaml, for problems found by other loaders."""
        if self.document is None:
            return str(self.folder / SITE_FILE), 1
        return self.document.file, self.document.line_of(path)

    def problem(self, path: tuple, kind: str, detail: str) -> Problem:
        if self.document is None:
            return Problem(str(self.folder / SITE_FILE), 1, datafile.format_path(path), kind, detail)
        return self.document.problem(path, kind, detail)

    def sub(self, name: str) -> Path:
        return self.folder / name


EMPTY_FILE = SiteFile(description="no site")


def load(folder: Path | None) -> Site | None:
    """Read a site folder (``None``: no site); problems are kept on the returned :class:`Site`."""
    if folder is None:
        return None
    folder = Path(folder)
    if not folder.is_dir():
        return Site(folder, EMPTY_FILE, None, (Problem(str(folder), 1, "", "missing", "site folder not found"),))
    path = folder / SITE_FILE
    if not path.is_file():
        return Site(folder, EMPTY_FILE, None)
    document, problems = datafile.read(path, folder.parent)
    if document is None:
        return Site(folder, EMPTY_FILE, None, tuple(problems))
    if document.data is None:
        return Site(folder, EMPTY_FILE, document)
    model, found = datafile.validate(document, SiteFile)
    return Site(folder, model or EMPTY_FILE, document, tuple(problems + found))


def settings(site: Site | None, env: dict) -> dict:
    """The site's policy settings with ``CDSHOOKS_POLICY_SETTINGS`` on top, per policy."""
    merged = {pid: dict(values) for pid, values in (site.file.settings.items() if site else ())}
    for pid, values in (env or {}).items():
        merged.setdefault(pid, {}).update(values)
    return merged


def folders(shipped: Path, site: Site | None, name: str) -> list[Path]:
    """The shipped folder, then the site's folder of the same name when it exists."""
    extra = site.sub(name) if site is not None else None
    return [shipped] + ([extra] if extra is not None and extra.is_dir() else [])

