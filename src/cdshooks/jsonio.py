"""JSON in and out with orjson: parsing and serializing dominate a small hook call's cost."""

from __future__ import annotations

import orjson
from flask import Response


def loads(data: bytes):
    """Parse JSON bytes; raise ``ValueError`` (orjson.JSONDecodeError) on anything invalid."""
    return orjson.loads(data)


def dumps(value) -> bytes:
    """Serialize to compact UTF-8 JSON bytes."""
    return orjson.dumps(value)


def response(body, status: int = 200) -> Response:
    """Return a JSON response."""
    return Response(dumps(body), status=status, mimetype="application/json")


def prune(value):
    """Drop ``None``, empty strings, lists and objects, recursively (CDS Hooks 2.0 §JSON rules)."""
    if isinstance(value, dict):
        out = {k: pv for k, v in value.items() if (pv := prune(v)) is not None}
        return out or None
    if isinstance(value, list):
        out = [pv for v in value if (pv := prune(v)) is not None]
        return out or None
    if value is None or value == "":
        return None
    return value
