"""JSON in and out with orjson: parsing and serializing dominate a small hook call's cost.

A hook request's ``prefetch`` is most of its bytes and, when no policy applies to its orders, none
of what the call reads: :func:`loads_deferring` validates the whole body (simdjson's structural
pass) but builds Python objects only for the rest of it, and for each prefetch slot when it is
read (issue 16: 0.19 ms instead of 1.32 ms for a 1,000-resource body).
"""

from __future__ import annotations

from collections.abc import Mapping

import orjson
import simdjson
from flask import Response


def loads(data: bytes):
    """Parse JSON bytes; raise ``ValueError`` (orjson.JSONDecodeError) on anything invalid."""
    return orjson.loads(data)


def loads_deferring(data: bytes, member: str):
    """Parse JSON bytes as :func:`loads` does, but leave the top-level object's ``member`` (when an
    object itself) a :class:`Deferred`: its members become Python objects only when read.

    Whatever simdjson refuses or might read differently (a 65-bit integer, a duplicate key) is
    parsed by orjson instead, whose result or error stands.
    """
    try:
        parser = _IDLE_PARSERS.pop()
    except IndexError:
        parser = simdjson.Parser()
    try:
        doc = parser.parse(data)
    except (ValueError, RuntimeError):   # UnicodeDecodeError is a ValueError
        _idle(parser, len(data))
        return loads(data)
    deferred = doc.get(member) if isinstance(doc, simdjson.Object) else None
    if not isinstance(deferred, simdjson.Object) or _duplicated(doc) or _duplicated(deferred):
        _idle(parser, len(data))
        return loads(data)
    body = {key: _python(doc[key]) for key in doc.keys() if key != member}
    body[member] = Deferred(deferred, data, member, parser)
    return body


# Parsers whose documents nobody reads any more. A parser keeps its buffers (allocating them for
# each body cost ~1 ms of page faults at 1,000 resources) but can hold one document at a time, so
# one is taken per body and given back only when the body's Deferred is gone. Buffers grow with
# the largest body a parser has read: one that read a body past 4 MiB is let go, not kept.
_IDLE_PARSERS: list = []
_IDLE_PARSERS_KEPT = 2   # each holds a few MB; under concurrency the others are made per call
_KEPT_BODY_BYTES = 4 * 1024 * 1024


def _idle(parser, body_bytes: int) -> None:
    if body_bytes <= _KEPT_BODY_BYTES and len(_IDLE_PARSERS) < _IDLE_PARSERS_KEPT:
        _IDLE_PARSERS.append(parser)


class Deferred(Mapping):
    """A JSON object of a parsed body whose members are turned into Python objects when first read."""

    def __init__(self, parsed, source: bytes, member: str, parser=None):
        self._parsed, self._source, self._member, self._parser = parsed, source, member, parser
        self._keys = tuple(parsed.keys())
        self._known = frozenset(self._keys)
        self._read: dict = {}
        self._whole: dict | None = None

    def __getitem__(self, key):
        if key not in self._read:
            if key not in self._known:
                raise KeyError(key)
            self._read[key] = _python(self._parsed[key])
        return self._read[key]

    def __del__(self):
        if self._parser is not None:
            _idle(self._parser, len(self._source))   # nothing can read this document any more

    def __contains__(self, key) -> bool:   # Mapping's would read the member to find out
        return key in self._known

    def __iter__(self):
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)

    def later(self, key) -> Later:
        """Member ``key``, turned into Python objects only once something reads it."""
        return Later(self, key)

    def array_length(self, key, name: str) -> int:
        """How many items member ``key``'s array ``name`` has (0 when there is none), without reading them."""
        value = self._parsed[key]
        items = value.get(name) if isinstance(value, simdjson.Object) else None
        return len(items) if isinstance(items, simdjson.Array) else 0

    def head(self, key):
        """Member ``key`` without its nested values: an object's scalars, and its arrays and objects
        each as a stand-in of the same truthiness (enough to tell what kind of value it is)."""
        value = self._parsed[key]
        if not isinstance(value, simdjson.Object):
            return _python(value)
        return {name: _stand_in(value[name]) for name in value.keys()}

    def whole(self) -> dict:
        """Every member as Python objects (orjson, the faster way to read all of them)."""
        if self._whole is None:
            self._whole = loads(self._source)[self._member]
        return self._whole


class Later(Mapping):
    """A member of a :class:`Deferred` that is an object, read on first use (made only for such
    members: ``prefetch._unread`` tells them apart by their head first)."""

    def __init__(self, deferred: Deferred, key):
        self._deferred, self._key = deferred, key

    def _value(self) -> dict:
        return self._deferred[self._key]

    def __getitem__(self, key):
        return self._value()[key]

    def __iter__(self):
        return iter(self._value())

    def __len__(self) -> int:
        return len(self._value())


def whole(value):
    """``value`` with nothing left deferred (a :class:`Deferred` or :class:`Later` read whole;
    anything else as it is)."""
    if isinstance(value, Deferred):
        return value.whole()
    return value._value() if isinstance(value, Later) else value


def array_length(mapping: Mapping, key, name: str) -> int:
    """How many items ``mapping[key][name]`` has when it is an array (0 otherwise), reading no more than needed."""
    if isinstance(mapping, Deferred):
        return mapping.array_length(key, name)
    value = mapping[key]
    items = value.get(name) if isinstance(value, dict) else None
    return len(items) if isinstance(items, list) else 0


def _python(value):
    if isinstance(value, simdjson.Object):
        return value.as_dict()
    if isinstance(value, simdjson.Array):
        return value.as_list()
    return value


def _stand_in(value):
    if isinstance(value, simdjson.Array):
        return [None] if len(value) else []
    if isinstance(value, simdjson.Object):
        return {"": None} if len(value) else {}
    return value


def _duplicated(parsed) -> bool:
    keys = list(parsed.keys())
    return len(set(keys)) != len(keys)


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
