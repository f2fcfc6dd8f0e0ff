"""The floor: a minimal WSGI app that parses the same request body and answers ``{"cards": []}``.

Served by gunicorn with the same settings as the service, it measures what any Python CDS
service pays before doing anything useful: the HTTP server, reading and parsing the body.
"""

from __future__ import annotations

import orjson

EMPTY = b'{"cards":[]}'


def app(environ, start_response):
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = orjson.loads(environ["wsgi.input"].read(length)) if length else {}
    status = "200 OK" if isinstance(body, dict) else "400 Bad Request"
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(EMPTY)))])
    return [EMPTY]
