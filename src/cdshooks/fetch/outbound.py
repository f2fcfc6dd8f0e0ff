"""Calls to the EHR's FHIR server: allow-list, bounded time and size, no redirects off the list.

A base URL is compared on its normalized parts (scheme, host, port, path prefix on segment
boundaries), so ``https://ehr.example`` admits ``https://ehr.example/fhir/Patient/1`` but not
``https://ehr.example.evil``, ``https://ehr.example@evil`` or ``https://ehr.example/fhirx``.

One :class:`FhirClient` serves one hook call: its connections live in its own session and every
socket it opens is shut down at the call's deadline (:mod:`cdshooks.cutoff`), so a server that
drips bytes cannot keep a read — or the thread doing it — alive past the call.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from urllib.parse import urljoin
from urllib.parse import urlsplit

import requests
import urllib3
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection
from urllib3.connection import HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool
from urllib3.connectionpool import HTTPSConnectionPool

from cdshooks import jsonio
from cdshooks.cutoff import Cutoff

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


class FhirClient:
    """GETs FHIR JSON from allow-listed URLs before a deadline (``time.monotonic`` seconds).

    Use as a context manager (or call ``close``): that ends the session and its deadline timer.
    """

    def __init__(self, allowlist: tuple[str, ...], token: str | None, deadline: float, max_bytes: int):
        self.allowlist, self.token, self.deadline, self.max_bytes = allowlist, token, deadline, max_bytes
        self.cutoff = Cutoff()
        self.cutoff.arm(deadline - time.monotonic(), "prefetch-deadline")
        self.session = requests.Session()
        self.session.trust_env = False  # no proxies or netrc from the environment: the allow-list decides
        adapter = _CutoffAdapter(self.cutoff)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)

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
        if remaining <= 0.01 or self.cutoff.fired:
            raise FetchError("time budget exhausted")
        try:
            response = self.session.post(
                url, data=jsonio.dumps(resource), headers=self._headers("application/fhir+json"),
                allow_redirects=False, timeout=(min(CONNECT_TIMEOUT_S, remaining), remaining),
            )
        except requests.RequestException as exc:
            raise FetchError(f"{self._failure(exc)} calling {_safe(url)}") from None
        with response:
            if response.status_code not in (200, 201):
                raise FetchError(f"HTTP {response.status_code} from {_safe(url)}")
            return _created_reference(response, resource.get("resourceType", ""))

    def close(self) -> None:
        self.cutoff.fire()   # anything still reading ends now
        self.session.close()
        self.cutoff.close()

    def __enter__(self):
        return self

    def __exit__(self, *_exc):
        self.close()

    def _headers(self, content_type: str | None = None) -> dict:
        headers = {"Accept": "application/fhir+json"}
        if content_type:
            headers["Content-Type"] = content_type
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        return headers

    def _send(self, url: str) -> requests.Response:
        remaining = self.deadline - time.monotonic()
        if remaining <= 0.01 or self.cutoff.fired:
            raise FetchError("time budget exhausted")
        try:
            return self.session.get(
                url, headers=self._headers(), allow_redirects=False, stream=True,
                timeout=(min(CONNECT_TIMEOUT_S, remaining), remaining),
            )
        except requests.RequestException as exc:
            raise FetchError(f"{self._failure(exc)} calling {_safe(url)}") from None

    def _read(self, response: requests.Response, url: str) -> dict | None:
        with response:
            if response.status_code in (404, 410):
                return None
            if response.status_code != 200:
                raise FetchError(f"HTTP {response.status_code} from {_safe(url)}")
            body = bytearray()
            try:
                for chunk in response.iter_content(65536):
                    body += chunk
                    if len(body) > self.max_bytes:
                        raise FetchError(f"response from {_safe(url)} exceeds {self.max_bytes} bytes")
            except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
                raise FetchError(f"{self._failure(exc)} reading {_safe(url)}") from None
            if self.cutoff.fired:
                raise FetchError("time budget exhausted while reading")
        try:
            value = jsonio.loads(bytes(body))
        except ValueError:
            raise FetchError(f"response from {_safe(url)} is not JSON") from None
        if not isinstance(value, dict) or not isinstance(value.get("resourceType"), str):
            raise FetchError(f"response from {_safe(url)} is not a FHIR resource")
        return value

    def _failure(self, exc: Exception) -> str:
        return "time budget exhausted" if self.cutoff.fired else type(exc).__name__


class _Watched:
    """A urllib3 connection whose socket the client's cutoff shuts down at the deadline."""

    cutoff: Cutoff | None = None

    def _new_conn(self):
        sock = super()._new_conn()
        if self.cutoff is not None:
            self.cutoff.watch(sock.fileno())  # before TLS: a dripping handshake is cut off too
        return sock


class _WatchedHTTPConnection(_Watched, HTTPConnection):
    pass


class _WatchedHTTPSConnection(_Watched, HTTPSConnection):
    pass


class _PassesCutoff:
    """A pool that hands its cutoff to every connection it makes."""

    cutoff: Cutoff | None = None

    def _new_conn(self):
        conn = super()._new_conn()
        conn.cutoff = self.cutoff
        return conn


class _WatchedPool(_PassesCutoff, HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _WatchedHTTPSPool(_PassesCutoff, HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


class _CutoffPoolManager(urllib3.PoolManager):
    def __init__(self, cutoff: Cutoff, **kwargs):
        super().__init__(**kwargs)
        self.cutoff = cutoff
        self.pool_classes_by_scheme = {"http": _WatchedPool, "https": _WatchedHTTPSPool}

    def _new_pool(self, scheme, host, port, request_context=None):
        pool = super()._new_pool(scheme, host, port, request_context)
        pool.cutoff = self.cutoff
        return pool


class _CutoffAdapter(HTTPAdapter):
    def __init__(self, cutoff: Cutoff):
        self.cutoff = cutoff
        super().__init__(max_retries=0)

    def init_poolmanager(self, connections, maxsize, block=False, **pool_kwargs):
        self.poolmanager = _CutoffPoolManager(self.cutoff, num_pools=connections, maxsize=maxsize,
                                              block=block, **pool_kwargs)


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
    """The URL as given, port included, without credentials or query (which holds the patient id)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}{parts.path}"
