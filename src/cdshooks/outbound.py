"""Calls to the EHR's FHIR server: allow-list, bounded time and size, no redirects off the list.

A base URL is compared on its normalized parts (scheme, host, port, path prefix on segment
boundaries), so ``https://ehr.example`` admits ``https://ehr.example/fhir/Patient/1`` but not
``https://ehr.example.evil``, ``https://ehr.example@evil`` or ``https://ehr.example/fhirx``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from urllib.parse import urljoin
from urllib.parse import urlsplit

import requests

from cdshooks import jsonio

_DEFAULT_PORTS = {"http": 80, "https": 443}
_MAX_REDIRECTS = 3
CONNECT_TIMEOUT_S = 2.0


@dataclass(frozen=True)
class Origin:
    scheme: str
    host: str
    port: int
    path: str  # no trailing slash; "" for the root


class FetchError(Exception):
    """A FHIR call failed; the message is safe to log (no token, no response body)."""


def parse_origin(url: str) -> Origin | None:
    """Return the normalized parts of an http(s) URL, or None if it is not one we would call."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname or parts.username or parts.password:
        return None
    path = "/".join(segment for segment in parts.path.split("/") if segment)
    return Origin(scheme, parts.hostname.lower().rstrip("."), port or _DEFAULT_PORTS[scheme], path and "/" + path)


def is_allowed(url: str, allowlist: tuple[str, ...]) -> bool:
    """Whether ``url`` lies under one of the allow-listed base URLs."""
    target = parse_origin(url)
    if target is None:
        return False
    for base in allowlist:
        allowed = parse_origin(base)
        if allowed and (allowed.scheme, allowed.host, allowed.port) == (target.scheme, target.host, target.port):
            if target.path == allowed.path or target.path.startswith(allowed.path + "/"):
                return True
    return False


@dataclass(frozen=True)
class FhirClient:
    """GETs FHIR JSON from allow-listed URLs before a deadline (``time.monotonic`` seconds)."""

    allowlist: tuple[str, ...]
    token: str | None
    deadline: float
    max_bytes: int

    def get(self, url: str) -> dict | None:
        """Return the JSON resource at ``url``; None for 404/410; raise :class:`FetchError`."""
        for _ in range(_MAX_REDIRECTS + 1):
            if not is_allowed(url, self.allowlist):
                raise FetchError(f"refused: {_safe(url)} is not on CDSHOOKS_FHIR_ALLOWLIST")
            response = self._send(url)
            if response.is_redirect:
                url = urljoin(url, response.headers.get("Location", ""))
                response.close()
                continue
            return self._read(response, url)
        raise FetchError(f"too many redirects from {_safe(url)}")

    def post(self, url: str, resource: dict) -> str:
        """Create ``resource`` at ``url`` (no redirects followed); return its new reference.

        The reference comes from ``Location`` (``…/Type/id/_history/n``) or the returned body;
        an empty string when the server tells neither.
        """
        if not is_allowed(url, self.allowlist):
            raise FetchError(f"refused: {_safe(url)} is not on CDSHOOKS_FHIR_ALLOWLIST")
        remaining = self.deadline - time.monotonic()
        if remaining <= 0.01:
            raise FetchError("time budget exhausted")
        try:
            response = requests.post(
                url, data=jsonio.dumps(resource), headers=self._headers("application/fhir+json"),
                allow_redirects=False, timeout=(min(CONNECT_TIMEOUT_S, remaining), remaining),
            )
        except requests.RequestException as exc:
            raise FetchError(f"{type(exc).__name__} calling {_safe(url)}") from None
        with response:
            if response.status_code not in (200, 201):
                raise FetchError(f"HTTP {response.status_code} from {_safe(url)}")
            return _created_reference(response, resource.get("resourceType", ""))

    def _headers(self, content_type: str | None = None) -> dict:
        headers = {"Accept": "application/fhir+json"}
        if content_type:
            headers["Content-Type"] = content_type
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        return headers

    def _send(self, url: str) -> requests.Response:
        remaining = self.deadline - time.monotonic()
        if remaining <= 0.01:
            raise FetchError("time budget exhausted")
        try:
            return requests.get(
                url, headers=self._headers(), allow_redirects=False, stream=True,
                timeout=(min(CONNECT_TIMEOUT_S, remaining), remaining),
            )
        except requests.RequestException as exc:
            raise FetchError(f"{type(exc).__name__} calling {_safe(url)}") from None

    def _read(self, response: requests.Response, url: str) -> dict | None:
        with response:
            if response.status_code in (404, 410):
                return None
            if response.status_code != 200:
                raise FetchError(f"HTTP {response.status_code} from {_safe(url)}")
            body = bytearray()
            for chunk in response.iter_content(65536):
                body += chunk
                if len(body) > self.max_bytes:
                    raise FetchError(f"response from {_safe(url)} exceeds {self.max_bytes} bytes")
                if time.monotonic() > self.deadline:
                    raise FetchError("time budget exhausted while reading")
        try:
            value = jsonio.loads(bytes(body))
        except ValueError:
            raise FetchError(f"response from {_safe(url)} is not JSON") from None
        if not isinstance(value, dict) or not isinstance(value.get("resourceType"), str):
            raise FetchError(f"response from {_safe(url)} is not a FHIR resource")
        return value


def _created_reference(response: requests.Response, resource_type: str) -> str:
    segments = [s for s in urlsplit(response.headers.get("Location", "")).path.split("/") if s]
    if resource_type in segments and segments.index(resource_type) + 1 < len(segments):
        i = segments.index(resource_type)
        return f"{resource_type}/{segments[i + 1]}"
    try:
        body = jsonio.loads(response.content[:1_000_000])
    except ValueError:
        return ""
    rid = body.get("id") if isinstance(body, dict) else None
    return f"{resource_type}/{rid}" if isinstance(rid, str) and rid else ""


def _safe(url: str) -> str:
    """The URL without its query (which holds the patient id) for log and error text."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}{parts.path}"
