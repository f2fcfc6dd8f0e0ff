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
