"""Client JWT verification (CDS Hooks 2.0 "Trusting CDS Clients") on discovery, services, feedback.

Rules, each failure a bare 401 and a log line naming the reason class (never the token):
``iss`` configured; ``jku`` in the header only if it is the configured one (never fetched
otherwise); ``kid`` required and found (pinned, cached, or after one refresh); ``alg`` ES384,
RS384, ES256 or RS256 — never ``none`` or HMAC; ``typ`` JWT; ``aud`` equal to the called URL under
``CDSHOOKS_PUBLIC_BASE_URL`` (both normalized); ``exp`` and ``iat`` required with 60 s leeway;
``jti`` required and never accepted twice before it expires (the replay cache is in the store, so
it holds across workers and restarts).
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import Callable

import jwt
from flask import Flask
from flask import current_app
from flask import request

from cdshooks import settings
from cdshooks.errors import Unauthorized
from cdshooks.settings import SettingsError
from cdshooks.store import db as store
from cdshooks.web.http import normalize_url
from cdshooks.web.trust import KeyNotFound
from cdshooks.web.trust import KeyStore
from cdshooks.web.trust import TrustError
from cdshooks.web.trust import load_issuers
from cdshooks.web.trust import same_jku

log = logging.getLogger(__name__)
EXTENSION_KEY = "cdshooks.web.auth"
ALGORITHMS = ("ES384", "RS384", "ES256", "RS256")
LEEWAY_S = 60
REQUIRED_CLAIMS = ("iss", "aud", "exp", "iat", "jti")
PROTECTED_ENDPOINTS = frozenset({"cds.discovery", "cds.invoke", "cds.feedback"})

_REASONS = (
    (jwt.ExpiredSignatureError, "expired"),
    (jwt.ImmatureSignatureError, "not-yet-valid"),
    (jwt.InvalidSignatureError, "signature"),
    (jwt.MissingRequiredClaimError, "claim-missing"),
    (jwt.InvalidAlgorithmError, "algorithm"),
    (jwt.DecodeError, "malformed"),
    (jwt.PyJWTError, "invalid"),
)


class TokenRejected(Exception):
    """A JWT that must not be trusted; ``reason`` is a short class name, safe to log."""

    def __init__(self, reason: str, issuer: str | None = None):
        super().__init__(reason)
        self.reason = reason
        self.issuer = issuer


@dataclass(frozen=True)
class Verifier:
    keys: KeyStore
    remember: Callable[[str, dt.datetime], bool]   # False when (iss, jti) was seen before

    def verify(self, token: str, audience: str, now: dt.datetime | None = None) -> dict:
        """Return the verified claims of ``token`` for ``audience``, or raise :class:`TokenRejected`."""
        header, iss = self._header_and_issuer(token)
        try:
            key = self.keys.key(iss, header["kid"])
        except KeyNotFound:
            raise TokenRejected("kid-unknown", iss) from None
        claims = self._decode(token, key, header["alg"], iss)
        self._check_times_and_audience(claims, audience, iss, now or dt.datetime.now(dt.timezone.utc))
        if not isinstance(claims["jti"], str) or not claims["jti"]:
            raise TokenRejected("claim-missing", iss)
        expires = dt.datetime.fromtimestamp(claims["exp"], dt.timezone.utc) + dt.timedelta(seconds=LEEWAY_S)
        if not self.remember(f"{iss}|{claims['jti']}", expires):
            raise TokenRejected("replayed", iss)
        return claims

    def _header_and_issuer(self, token: str) -> tuple[dict, str]:
        try:
            header = jwt.get_unverified_header(token)
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError:
            raise TokenRejected("malformed") from None
        if header.get("alg") not in ALGORITHMS:
            raise TokenRejected("algorithm")
        if str(header.get("typ", "")).upper() != "JWT":
            raise TokenRejected("typ")
        if not isinstance(header.get("kid"), str) or not header["kid"]:
            raise TokenRejected("kid-missing")
        iss = unverified.get("iss") if isinstance(unverified, dict) else None
        issuer = self.keys.issuers.get(iss) if isinstance(iss, str) else None
        if issuer is None:
            raise TokenRejected("issuer-unknown")
        jku = header.get("jku")
        if jku is not None and not (isinstance(jku, str) and issuer.jku and same_jku(jku, issuer.jku)):
            raise TokenRejected("jku-not-allowed", iss)
        return header, iss

    @staticmethod
    def _decode(token: str, key: jwt.PyJWK, alg: str, iss: str) -> dict:
        try:
            return jwt.decode(
                token, key.key, algorithms=[alg], issuer=iss, leeway=LEEWAY_S,
                options={"require": list(REQUIRED_CLAIMS), "verify_aud": False},
            )
        except jwt.PyJWTError as exc:
            reason = next(name for cls, name in _REASONS if isinstance(exc, cls))
            raise TokenRejected(reason, iss) from None

    @staticmethod
    def _check_times_and_audience(claims: dict, audience: str, iss: str, now: dt.datetime) -> None:
        issued = claims.get("iat")
        if not isinstance(issued, (int, float)) or issued > now.timestamp() + LEEWAY_S:
            raise TokenRejected("not-yet-valid", iss)
        audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
        wanted = normalize_url(audience)
        if not any(isinstance(a, str) and normalize_url(a) == wanted for a in audiences):
            raise TokenRejected("aud-mismatch", iss)


def _guard():
    if request.method == "OPTIONS" or request.endpoint not in PROTECTED_ENDPOINTS:
        return None
    verifier: Verifier = current_app.extensions[EXTENSION_KEY]
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    try:
        if scheme.lower() != "bearer" or not token.strip():
            raise TokenRejected("missing")
        verifier.verify(token.strip(), settings.get().PUBLIC_BASE_URL.rstrip("/") + request.path)
    except TokenRejected as exc:
        log.warning("JWT refused: reason=%s iss=%s path=%s", exc.reason, exc.issuer or "-", request.path)
        raise Unauthorized(exc.reason) from None
    return None


def init_app(app: Flask) -> None:
    """Require a valid JWT when trusted issuers are configured; otherwise say loudly that it is off."""
    config = settings.get_from(app)
    if config.TRUSTED_ISSUERS is None:
        log.warning(
            "JWT verification is OFF: CDSHOOKS_TRUSTED_ISSUERS is not set, so any caller may invoke "
            "the services. Set it before exposing this service beyond localhost."
        )
        return
    if not config.PUBLIC_BASE_URL:
        raise SettingsError("CDSHOOKS_PUBLIC_BASE_URL is required with CDSHOOKS_TRUSTED_ISSUERS: "
                            "the JWT aud is checked against it, never against the request's Host header")
    try:
        issuers = load_issuers(config.TRUSTED_ISSUERS)
    except TrustError as exc:
        raise SettingsError(str(exc)) from None
    if "https://sandbox.cds-hooks.org" in issuers:
        log.warning("trusting the public CDS Hooks sandbox: its private key is published, so its "
                    "tokens prove nothing — development and testing only")
    remember = app.extensions[store.EXTENSION_KEY].remember_token
    app.extensions[EXTENSION_KEY] = Verifier(KeyStore(issuers), remember)
    app.before_request(_guard)
