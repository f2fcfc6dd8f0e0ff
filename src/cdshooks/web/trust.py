"""Who may call us: trusted JWT issuers and their keys (pinned JWKS, or an allow-listed ``jku``).

A ``jku`` is only ever fetched when it is the one configured for the issuer; fetched key sets
are cached per worker and refreshed at most once per minute when a token names an unknown
``kid`` (so random kids cannot make us hammer the issuer).
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path

import jwt
import requests
from pydantic import BaseModel
from pydantic import ConfigDict
from pydantic import ValidationError
from pydantic import model_validator

from cdshooks.web.http import normalize_url

SANDBOX_PRESET = "sandbox"
JWKS_TIMEOUT_S = 3.0
JWKS_MAX_BYTES = 256 * 1024
JWKS_TTL_S = 3600.0
REFRESH_INTERVAL_S = 60.0


class TrustError(ValueError):
    """The trusted-issuers file cannot be used."""


class Issuer(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    jwks: dict | None = None
    jku: str | None = None

    @model_validator(mode="after")
    def _has_keys(self):
        if self.jwks is None and self.jku is None:
            raise ValueError("each issuer needs 'jwks' (pinned keys) or 'jku' (its key-set URL)")
        if self.jku is not None and not self.jku.lower().startswith(("https://", "http://localhost", "http://127.0.0.1")):
            raise ValueError("'jku' must be https (http only for localhost)")
        return self


def load_issuers(path: Path) -> dict[str, Issuer]:
    """Read the trusted-issuers file (or the ``sandbox`` preset); raise :class:`TrustError`."""
    if str(path) == SANDBOX_PRESET:
        path = Path(__file__).parents[1] / "data" / "sandbox-trusted-issuers.json"
    try:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
        issuers = {iss: Issuer.model_validate(cfg) for iss, cfg in raw.items()}
    except (OSError, ValueError, AttributeError, ValidationError) as exc:
        raise TrustError(f"CDSHOOKS_TRUSTED_ISSUERS ({path}): {exc}") from None
    for iss, issuer in issuers.items():
        if issuer.jwks is not None:
            try:
                jwt.PyJWKSet.from_dict(issuer.jwks)
            except jwt.PyJWTError as exc:
                raise TrustError(f"CDSHOOKS_TRUSTED_ISSUERS: issuer {iss}: bad jwks: {exc}") from None
    if not issuers:
        raise TrustError("CDSHOOKS_TRUSTED_ISSUERS names no issuer")
    return issuers


class KeyNotFound(Exception):
    """No key for this issuer and kid (after at most one refresh)."""


@dataclass
class KeyStore:
    """Verification keys by issuer and kid: pinned ones, plus fetched ones cached per worker."""

    issuers: dict[str, Issuer]
    fetched: dict[str, tuple[float, dict[str, jwt.PyJWK]]] = field(default_factory=dict)
    last_refresh: dict[str, float] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    pinned: dict[str, dict[str, jwt.PyJWK]] = field(init=False)   # parsed once, not per token

    def __post_init__(self):
        self.pinned = {iss: _by_kid(issuer.jwks) for iss, issuer in self.issuers.items() if issuer.jwks}

    def key(self, iss: str, kid: str) -> jwt.PyJWK:
        issuer = self.issuers[iss]
        key = self.pinned.get(iss, {}).get(kid) or self._cached(iss).get(kid)
        if key is None and issuer.jku and self._may_refresh(iss):
            key = self._fetch(iss, issuer.jku).get(kid)
        if key is None:
            raise KeyNotFound(kid)
        return key

    def _cached(self, iss: str) -> dict[str, jwt.PyJWK]:
        entry = self.fetched.get(iss)
        return entry[1] if entry and time.monotonic() - entry[0] < JWKS_TTL_S else {}

    def _may_refresh(self, iss: str) -> bool:
        with self.lock:
            now = time.monotonic()
            if now - self.last_refresh.get(iss, -REFRESH_INTERVAL_S) < REFRESH_INTERVAL_S:
                return False
            self.last_refresh[iss] = now
            return True

    def _fetch(self, iss: str, url: str) -> dict[str, jwt.PyJWK]:
        try:
            response = requests.get(url, timeout=JWKS_TIMEOUT_S, allow_redirects=False, stream=True)
            body = response.raw.read(JWKS_MAX_BYTES + 1, decode_content=True)
            if response.status_code != 200 or len(body) > JWKS_MAX_BYTES:
                return {}
            keys = _by_kid(json.loads(body))
        except (requests.RequestException, ValueError, jwt.PyJWTError):
            return {}
        self.fetched[iss] = (time.monotonic(), keys)
        return keys


def _by_kid(jwks: dict) -> dict[str, jwt.PyJWK]:
    keys = {}
    for entry in jwks.get("keys", []) if isinstance(jwks, dict) else []:
        if isinstance(entry, dict) and isinstance(entry.get("kid"), str):
            try:
                keys[entry["kid"]] = jwt.PyJWK.from_dict(entry)
            except jwt.PyJWTError:
                continue  # a key of a type we do not verify with; others still count
    return keys


def same_jku(a: str, b: str) -> bool:
    return normalize_url(a) == normalize_url(b)
