"""Truth in citations: every code the policies, mappings and value sets match on has a named source.

A value-set member counts when its include cites spec/TERMINOLOGY.md and the code is listed there,
cites a policy spec that names it, cites the record corpus it occurs in, or cites a published value
set (a VSAC OID) it was taken from.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
import yaml

from cdshooks.fhir import codes
from cdshooks.fhir import valuesets

ROOT = Path(__file__).resolve().parents[1]
# .ci/run sets CDSHOOKS_SPEC_DIR when the spec is beside the project; then a missing file fails, not skips.
SPEC_DIR = os.environ.get("CDSHOOKS_SPEC_DIR")
TERMINOLOGY = Path(SPEC_DIR or ROOT.parent / "shared" / "spec") / "TERMINOLOGY.md"
_ROW = re.compile(r"^\| (\S+) \| ([^|]+?) \|")
# Codes whose source is a rule of a policy spec rather than a TERMINOLOGY row.
FROM_SPEC_RULES = {
    "icd10cm|D50–D89": "colony-stimulating-factors.md f.2 F-CHRONIC (categories counted as chronic)",
    "icd10cm|E00–N99": "colony-stimulating-factors.md f.2 F-CHRONIC (categories counted as chronic)",
    "icd10cm|Q00–Q99": "colony-stimulating-factors.md f.2 F-CHRONIC (categories counted as chronic)",
}
_TOKEN = re.compile(r"^[a-z0-9-]+\|.+$|^https?://[^|]+\|.+$")


def listed() -> set[tuple[str, str]]:
    """(system, code) of every row of TERMINOLOGY.md, as written there (D1 notation)."""
    pairs = set()
    for line in TERMINOLOGY.read_text(encoding="utf-8").splitlines():
        match = _ROW.match(line)
        if match and "://" in match.group(1):
            pairs.add((match.group(1), match.group(2).strip()))
        if line.startswith("| ") and line.split("|")[1].strip().isdigit():  # opioid product table (RxNorm)
            pairs.add((codes.SYSTEMS["rxnorm"], line.split("|")[1].strip()))
    return pairs


def tokens_in(value) -> list[str]:
    """Every 'system|code' string inside a parsed YAML document."""
    if isinstance(value, dict):
        return [t for key, v in value.items() for t in tokens_in(key) + tokens_in(v)]
    if isinstance(value, list):
        return [t for v in value for t in tokens_in(v)]
    return [value] if isinstance(value, str) and _TOKEN.match(value) and " " not in value else []


@pytest.mark.skipif(not SPEC_DIR and not TERMINOLOGY.is_file(), reason="spec/TERMINOLOGY.md is not beside the project")
def test_every_code_of_the_policies_and_mappings_is_in_terminology():
    assert TERMINOLOGY.is_file(), f"CDSHOOKS_SPEC_DIR has no TERMINOLOGY.md: {TERMINOLOGY}"
    known = listed()
    missing = set()
    for path in sorted(ROOT.glob("policies/*.yaml")) + sorted(ROOT.glob("mappings/*.yaml")):
        if path.name.endswith("_test.yaml"):
            continue
        for token in tokens_in(yaml.safe_load(path.read_text(encoding="utf-8"))):
            system_alias, _, code = token.partition("|")
            system = codes.SYSTEMS.get(system_alias, system_alias)
            written = {code, code.replace("–", "-"), code.rstrip("-").rstrip("."), code.replace(".-", "")}
            if not any((system, w) in known for w in written) and token not in FROM_SPEC_RULES:
                missing.add(f"{path.name}: {token}")
    assert not missing, "codes not in TERMINOLOGY.md:\n" + "\n".join(sorted(missing))


SPEC = TERMINOLOGY.parent
CORPUS = SPEC.parent / "real-records"
# a published value set (VSAC OID), a file of a public repository, or the FHIR specification itself
_PUBLISHED = re.compile(r"\b2\.16\.840\.1\.\d+(\.\d+)+\b|\b[\w.-]+/[\w.-]+ \S+\.(fsh|json|cql)\b|^FHIR R4 core ")


def _members(include: dict) -> list[str]:
    return [c["code"] for c in include.get("concept", [])] + [f["value"] for f in include.get("filter", [])]


def _source(include: dict) -> str:
    return next((e.get("valueString", "") for e in include.get("extension", [])
                 if e.get("url") == valuesets.SOURCE_EXTENSION), "")


def _corpus_codes() -> set[tuple[str, str]]:
    found = set()
    for path in CORPUS.glob("*.json"):
        text = path.read_text(encoding="utf-8")
        found |= set(re.findall(r'"system":\s*"([^"]+)",\s*"code":\s*"([^"]+)"', text))
        found |= {(s, c) for c, s in re.findall(r'"code":\s*"([^"]+)",\s*"system":\s*"([^"]+)"', text)}
    return found


@pytest.mark.skipif(not SPEC_DIR and not TERMINOLOGY.is_file(), reason="spec/TERMINOLOGY.md is not beside the project")
def test_every_value_set_member_has_a_checkable_source():
    known, corpus, missing = listed(), _corpus_codes() if CORPUS.is_dir() else None, []
    for path in sorted((ROOT / "valuesets").glob("*.json")):
        body = json.loads(path.read_text(encoding="utf-8"))
        for include in body.get("compose", {}).get("include", []):
            if "system" not in include:
                continue   # members of other sets, checked there
            system, source = include["system"], _source(include)
            for code in _members(include):
                where = f"{path.name}: {system}|{code} ({source or 'no source'})"
                # TERMINOLOGY writes hierarchies as "M51.-" / "G90.5-" and blocks as "C00–C96"
                written = {code, code.replace("-", "–"), code + "-", code + ".-"}
                if source.startswith("spec/TERMINOLOGY.md"):
                    ok = any((system, w) in known for w in written)
                elif source.startswith("spec/policies/"):
                    spec_text = (SPEC / source.split()[0].removeprefix("spec/")).read_text(encoding="utf-8")
                    ok = code in spec_text or f"{code}.-" in spec_text or code.replace("-", "–") in spec_text \
                        or f"icd10cm|{code.replace('-', '–')}" in FROM_SPEC_RULES
                elif source.startswith("real-records corpus"):
                    ok = corpus is None or (system, code) in corpus
                else:
                    ok = bool(_PUBLISHED.search(source))
                if not ok:
                    missing.append(where)
    assert not missing, "value-set members without a checkable source:\n" + "\n".join(missing)
