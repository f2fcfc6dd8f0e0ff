"""Hand-edited data files (policies, mappings, test cases): YAML with line marks, one error record.

Every problem found in any file is a :class:`Problem` (``file``, ``line``, ``path``, ``kind``,
``detail``).  Loaders collect all of them before giving up, so ``cdshooks check`` and a failed
start-up list every mistake at once, sorted, as ``file:line: path: detail``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel
from pydantic import ValidationError

from cdshooks.files.suggest import did_you_mean
from cdshooks.files.suggest import keys_at


@dataclass(frozen=True, order=True)
class Problem:
    file: str
    line: int
    path: str
    kind: str
    detail: str

    def __str__(self) -> str:
        where = f"{self.path}: " if self.path else ""
        return f"{self.file}:{self.line}: {where}{self.detail} [{self.kind}]"


class DataFileError(Exception):
    """One or more data files are broken; ``problems`` holds every one, sorted."""

    def __init__(self, problems):
        self.problems = sorted(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


@dataclass(frozen=True)
class Document:
    """A parsed YAML file with the line of every node, by path."""

    file: str
    data: Any
    lines: dict[tuple, int]

    def line_of(self, path: tuple) -> int:
        """The line of ``path``, or of its nearest ancestor that has one."""
        while path and path not in self.lines:
            path = path[:-1]
        return self.lines.get(path, 1)

    def problem(self, path: tuple, kind: str, detail: str) -> Problem:
        return Problem(self.file, self.line_of(path), format_path(path, self.data), kind, detail)


_ITEM_NAMES = ("id", "name", "code")   # how a list item is named in a breadcrumb, when it has one


def format_path(path: tuple, data=None) -> str:
    """The breadcrumb of ``path`` in ``data``, as cfgv writes it: a list item with an id (name,
    code) is named by it, so the breadcrumb survives reordering and is found by search.

    Items named by the same key nest under the first: criteria ids are unique in their tree, so
    ``criteria.all.2.any.0.when`` reads ``criteria[I.B.3].when``; a key with a dot (a fact name)
    is bracketed too: ``facts[opioids.daily_mme].params``.  Without ``data``, items are numbered.
    """
    out, anchors = "", {}   # label key -> the breadcrumb its named items hang from
    for part in path:
        item = _step(data, part)
        label_key = _label_key(item)
        if isinstance(part, int):
            if label_key is None:
                out += f"[{part}]"
            else:
                out = anchors.setdefault(label_key, out) + f"[{item[label_key]}]"
        else:
            out += f"[{part}]" if "." in str(part) else (f".{part}" if out else str(part))
            if label_key is not None and out:   # a named node under a key (the root criterion)
                anchors.setdefault(label_key, out)
        data = item
    return out


def _step(data, part):
    if isinstance(part, int):
        return data[part] if isinstance(data, list) and 0 <= part < len(data) else None
    return data.get(part) if isinstance(data, dict) else None


def _label_key(item) -> str | None:
    return next((k for k in _ITEM_NAMES if isinstance(item, dict) and isinstance(item.get(k), str) and item[k]), None)


def read_name(path: Path, root: Path | None) -> str:
    """How problems name a file: relative to ``root`` when it is below it."""
    return str(path.relative_to(root)) if root and path.is_relative_to(root) else str(path)


def read(path: Path, root: Path | None = None) -> tuple[Document | None, list[Problem]]:
    """Parse one YAML file safely, keeping line numbers; return the document or its problems."""
    name = read_name(path, root)
    try:
        text = path.read_text(encoding="utf-8")
        node = yaml.compose(text, Loader=_LOADER)
    except (OSError, UnicodeDecodeError) as exc:
        return None, [Problem(name, 1, "", "unreadable", str(exc))]
    except yaml.MarkedYAMLError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else 1
        return None, [Problem(name, line, "", "yaml", f"{exc.problem or exc}")]
    lines: dict[tuple, int] = {}
    try:
        data = _construct(node, (), lines, yaml.constructor.SafeConstructor()) if node is not None else None
    except ValueError as exc:
        return None, [Problem(name, 1, "", "yaml", str(exc))]
    return Document(name, data, lines), []


def _construct(node, path: tuple, lines: dict, constructor):
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        out = {}
        for key_node, value_node in node.value:
            key = key_node.value
            if key in out:
                raise ValueError(f"line {key_node.start_mark.line + 1}: duplicate key '{key}'")
            lines[path + (key,)] = key_node.start_mark.line + 1
            out[key] = _construct(value_node, path + (key,), lines, constructor)
            lines[path + (key,)] = key_node.start_mark.line + 1  # the key's line, not its value's
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_construct(child, path + (i,), lines, constructor) for i, child in enumerate(node.value)]
    return constructor.construct_object(node, deep=True)


def validate(document: Document, model: type[BaseModel], context: dict | None = None, at: tuple = ()):
    """Validate the node at ``at`` of a document (default: all of it) against a pydantic model;
    return (instance or None, problems at their file, line and path)."""
    data = document.data
    for part in at:
        data = _step(data, part)
    return validate_value(document, model, data, at, context)


def validate_value(document: Document, model: type[BaseModel], value, at: tuple, context: dict | None = None):
    """Validate ``value`` (what the document holds at ``at``, perhaps with a site's changes) against a model."""
    try:
        return model.model_validate(value, context=context), []
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            path = tuple(p for p in error["loc"] if not (isinstance(p, str) and p.startswith("function-")))
            if error["type"] == "extra_forbidden":
                known = keys_at(model, path)
                detail = f"unknown key '{path[-1]}'{did_you_mean(path[-1], known)}" + \
                    (f"; known keys: {', '.join(known)}" if known and len(known) <= 12 else "")
                problems.append(document.problem(at + path, "unknown-key", detail))
            else:
                problems.append(document.problem(at + path, "schema", error["msg"]))
        return None, problems


SCHEMA_COMMENT = "# yaml-language-server: $schema="
# libyaml (bundled with PyYAML's wheels) parses ~10× faster than the pure-Python loader; both
# are "safe" and both keep line marks.
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def check_schema_comment(document_path: Path, document: Document, expected: str) -> list[Problem]:
    """Line 1 must point editors at the JSON Schema of the file's format."""
    first = document_path.read_text(encoding="utf-8").split("\n", 1)[0].strip()
    # a site's files sit elsewhere and point at the shipped schema by a relative path
    if first != SCHEMA_COMMENT + expected and not (first.startswith(SCHEMA_COMMENT) and first.endswith("/" + expected)):
        return [Problem(document.file, 1, "", "schema-ref", f"line 1 must be '{SCHEMA_COMMENT}{expected}'")]
    return []
