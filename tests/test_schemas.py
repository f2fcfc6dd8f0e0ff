"""The committed JSON Schemas match the pydantic models; every data file points at its schema."""

from __future__ import annotations

from pathlib import Path

from cdshooks.cli import schemas

ROOT = Path(__file__).resolve().parents[1]


def test_committed_schemas_are_up_to_date():
    stale = [str(path.relative_to(ROOT)) for path, schema in
             schemas.documents(ROOT / "policies", ROOT / "mappings").items()
             if not path.is_file() or path.read_text(encoding="utf-8") != schemas.render(schema)]
    assert not stale, f"run `cdshooks schemas` to refresh: {stale}"


def test_every_yaml_file_references_its_schema_on_line_1():
    for folder, policy_schema in (("policies", "schema.json"), ("mappings", "schema.json")):
        for path in (ROOT / folder).glob("*.yaml"):
            expected = "test-schema.json" if path.name.endswith("_test.yaml") else policy_schema
            first = path.read_text(encoding="utf-8").splitlines()[0]
            assert first == f"# yaml-language-server: $schema={expected}", path.name
