"""ARCHITECTURE.md's rules that no linter checks: small modules, and every room says what it owns."""

from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "cdshooks"
MAX_LINES = 400


def _modules():
    return sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_source_module_is_over_400_lines(path):
    lines = path.read_text(encoding="utf-8").count("\n")
    assert lines <= MAX_LINES, f"{path.relative_to(PACKAGE)} has {lines} lines: split it by what its parts own"


def test_every_room_says_what_it_owns_and_architecture_md_names_it():
    text = (PACKAGE.parents[1] / "ARCHITECTURE.md").read_text(encoding="utf-8")
    rooms = [p.parent for p in PACKAGE.glob("*/__init__.py")]
    assert rooms
    for room in rooms:
        assert (room / "__init__.py").read_text(encoding="utf-8").startswith('"""'), room.name
        assert f"`{room.name}/`" in text, f"ARCHITECTURE.md does not name the room {room.name}/"
