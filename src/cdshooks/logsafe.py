"""Log lines that cannot be forged or flooded by what a client sends.

Values interpolated into a log message (record ``args``) come from requests: a path, an issuer,
a URL.  Each one has its control characters escaped (a newline cannot start a forged line) and
is cut to ``MAX_VALUE`` characters (a 5 MB value does not write a 5 MB line).  The handler that
``cdshooks serve`` installs applies the same rule to the whole message, capped at ``MAX_LINE``.
Database errors are logged by class only, never with their statement or parameters (which hold
the clinician's free-text comment); see ``store``.
"""

from __future__ import annotations

import logging
import re

from flask import Flask

MAX_VALUE = 300
MAX_LINE = 4000
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def clean(text: str, limit: int = MAX_VALUE) -> str:
    """``text`` with control characters escaped (``\\n``, ``\\x00``) and cut to ``limit``."""
    text = _CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)
    if len(text) > limit:
        text = f"{text[:limit]}…[{len(text) - limit} more characters]"
    return text


def _clean_arg(value):
    if value is None or isinstance(value, (bool, int, float)):
        return value  # %d / %.1f need numbers; numbers cannot forge a line
    return clean(str(value))


class _SafeRecord(logging.LogRecord):
    """A record whose interpolated values are cleaned when it is created."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if isinstance(self.args, dict):
            self.args = {key: _clean_arg(value) for key, value in self.args.items()}
        elif self.args:
            self.args = tuple(_clean_arg(value) for value in self.args)


class SafeFormatter(logging.Formatter):
    """Escapes control characters in the formatted message and caps it (tracebacks kept as is)."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        return clean(super().formatMessage(record), MAX_LINE)


FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


def configure(level: int) -> logging.Handler:
    """Log to stderr through :class:`SafeFormatter` (``cdshooks serve``)."""
    handler = logging.StreamHandler()
    handler.setFormatter(SafeFormatter(FORMAT))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(level)
    logging.setLogRecordFactory(_SafeRecord)
    return handler


def init_app(app: Flask) -> None:
    """Clean the values of every log record created from now on (idempotent)."""
    logging.setLogRecordFactory(_SafeRecord)
