"""JSON Schemas of the hand-edited file formats, exported from the pydantic models."""

from __future__ import annotations

import json
from pathlib import Path


def documents(policies: Path, mappings: Path) -> dict[Path, dict]:
    """Schema path -> schema, for mappings, policies and policy test suites."""
    from cdshooks.facts.model import MappingFile
    from cdshooks.facts.site import SCHEMA_FILE as SITE_SCHEMA
    from cdshooks.facts.site import SiteFile
    from cdshooks.policy.loader import SCHEMA_FILE
    from cdshooks.policy.model import Policy
    from cdshooks.testing.cases import SCHEMA_FILE as TEST_SCHEMA
    from cdshooks.testing.cases import Suite

    return {
        mappings / "schema.json": _schema(MappingFile, "cdshooks mapping file"),
        policies / SCHEMA_FILE: _schema(Policy, "cdshooks policy file"),
        policies / TEST_SCHEMA: _schema(Suite, "cdshooks policy test suite"),
        mappings / SITE_SCHEMA: _schema(SiteFile, "cdshooks site file (site.yaml)"),
    }


def _schema(model, title: str) -> dict:
    schema = model.model_json_schema(by_alias=True)
    schema["title"] = title
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return schema


def render(schema: dict) -> str:
    return json.dumps(schema, indent=2, ensure_ascii=False, sort_keys=True) + "\n"


def write(policies: Path, mappings: Path) -> list[Path]:
    written = []
    for path, schema in documents(policies, mappings).items():
        path.write_text(render(schema), encoding="utf-8")
        written.append(path)
    return written
