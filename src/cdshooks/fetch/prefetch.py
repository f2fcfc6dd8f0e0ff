"""Prefetch: the templates we advertise, and the data each call actually gets.

Per key the client may send (CDS Hooks 2.0 §Prefetch):
  absent               -> fetch from ``fhirServer`` (allow-listed only); 412 if required and impossible
  null                 -> no data (a search found nothing)
  OperationOutcome     -> unavailable: criteria reading it are unknown
  searchset with next  -> follow the pages within the time budget; if that fails, unavailable
All fetching for one call runs in parallel and ends at the call's deadline.
"""

from __future__ import annotations

import logging
import re
import time
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import wait
from dataclasses import dataclass

from cdshooks import jsonio
from cdshooks.cds.protocol import HookRequest
from cdshooks.errors import InvalidRequest
from cdshooks.errors import PrefetchUnavailable
from cdshooks.fetch.outbound import FetchError
from cdshooks.fetch.outbound import FhirClient
from cdshooks.fhir.record import Slot

log = logging.getLogger(__name__)

_TOKEN = re.compile(r"\{\{\s*([A-Za-z.]+)\s*\}\}")
_USER_TOKENS = {
    "userPractitionerId": "Practitioner",
    "userPractitionerRoleId": "PractitionerRole",
    "userPatientId": "Patient",
    "userRelatedPersonId": "RelatedPerson",
}


@dataclass(frozen=True)
class Template:
    """One advertised prefetch key: ``key`` -> FHIR read/search over ``resource_type``."""

    key: str
    resource_type: str
    query: str


def render(query: str, request: HookRequest) -> str | None:
    """Fill ``{{…}}`` tokens from the context; None if a token has no value in this call."""
    context = request.context
    values = {
        "context.patientId": context.patientId,
        "context.userId": context.userId,
        "context.encounterId": context.encounterId,
    }
    user_type, _, user_id = (context.userId or "").partition("/")
    for token, resource_type in _USER_TOKENS.items():
        values[token] = user_id if user_type == resource_type and user_id else None
    missing = False

    def substitute(match: re.Match) -> str:
        nonlocal missing
        value = values.get(match.group(1))
        missing = missing or not value
        return value or ""

    rendered = _TOKEN.sub(substitute, query)
    return None if missing else rendered


def resolve(request: HookRequest, templates: tuple[Template, ...], required: frozenset[str],
            settings, deadline: float, wanted: frozenset[str] = frozenset(),
            examine: frozenset[str] | None = None) -> dict[str, Slot]:
    """Return a Slot per template key; raise 412 when a required key cannot be obtained.

    ``wanted`` keys are fetched like required ones when absent, but failing to get them is no error.
    Only the sent values of ``examine`` keys (None: all) are read whole: searched for an error
    OperationOutcome among their entries and followed to their next pages. What the call never
    reads cannot make any of its answers unknown, and reading it is most of a call's cost when no
    policy applies; such slots are told apart by their head and read only if a reference asks.
    """
    sent = request.prefetch or {}
    _within_entry_limit(sent, settings.MAX_PREFETCH_ENTRIES)
    if examine is None:
        sent = jsonio.whole(sent)
    slots: dict[str, Slot] = {}
    jobs: dict[str, tuple] = {}
    for template in templates:
        if template.key in sent and examine is not None and template.key not in examine:
            slots[template.key] = _unread(sent, template.key)   # nor are its further pages fetched
        elif template.key in sent:
            slot = _classify(sent[template.key])
            if slot.state == "data" and _next_link(slot.value):
                jobs[template.key] = (_follow_pages, slot.value)
            else:
                slots[template.key] = slot
        elif template.key in required or (template.key in wanted and request.fhirServer):
            query = render(template.query, request)
            jobs[template.key] = (_fetch_query, query) if query else (_unrenderable, template.query)
    if jobs:
        slots.update(_run(jobs, request, settings, deadline))
    _require(slots, required, request)
    for key in wanted - required - sent.keys():   # a wanted key we could not get is simply absent
        if key in slots and slots[key].state == "unavailable":
            del slots[key]
    return slots


def _within_entry_limit(sent, limit: int) -> None:
    total = sum(jsonio.array_length(sent, key, "entry") for key in sent)
    if total > limit:
        raise InvalidRequest(f"prefetch holds {total} entries; the limit is {limit}", "prefetch")


def _unread(sent, key) -> Slot:
    """A slot the call does not read: told apart by its head alone, its entries left unread until
    something asks for them (a reference to resolve)."""
    if not isinstance(sent, jsonio.Deferred):
        return _classify(sent[key], search_entries=False)
    slot = _classify(sent.head(key), search_entries=False)
    return Slot("data", sent.later(key)) if slot.state == "data" else slot


def _classify(value, search_entries: bool = True) -> Slot:
    if value is None:
        return Slot("none")
    if not isinstance(value, dict) or not isinstance(value.get("resourceType"), str):
        return Slot("unavailable", reason="not a FHIR resource")
    if value["resourceType"] == "OperationOutcome" or (search_entries and _has_error_outcome(value)):
        return Slot("unavailable", reason="the client reported an OperationOutcome")
    if value["resourceType"] == "Bundle" and not value.get("entry"):
        return Slot("none")
    return Slot("data", value)


def _has_error_outcome(value: dict) -> bool:
    if value["resourceType"] != "Bundle" or not isinstance(value.get("entry"), list):
        return False
    # every entry of every slot passes here: one comprehension with exact type checks (2x a loop)
    outcomes = [r for e in value["entry"] if type(e) is dict and type(r := e.get("resource")) is dict
                and r.get("resourceType") == "OperationOutcome"]
    for resource in outcomes:
        issues = resource.get("issue") if isinstance(resource.get("issue"), list) else []
        if any(isinstance(i, dict) and i.get("severity") in ("error", "fatal") for i in issues):
            return True
    return False


def _next_link(bundle: dict) -> str | None:
    if bundle.get("resourceType") != "Bundle" or not isinstance(bundle.get("link"), list):
        return None
    for link in bundle["link"]:
        if isinstance(link, dict) and link.get("relation") == "next" and isinstance(link.get("url"), str):
            return link["url"]
    return None


def _run(jobs: dict, request: HookRequest, settings, deadline: float) -> dict[str, Slot]:
    client = _client(request, settings, deadline)
    executor = ThreadPoolExecutor(max_workers=min(8, len(jobs)), thread_name_prefix="prefetch")
    futures = {}
    try:
        futures = {key: executor.submit(job, arg, client, request, settings) for key, (job, arg) in jobs.items()}
        wait(futures.values(), timeout=max(0.0, deadline - time.monotonic()))
    finally:
        executor.shutdown(wait=False, cancel_futures=True)  # jobs not started yet never start
        if client is not None:
            client.close()  # every socket still reading is shut: the running jobs end now
        # nothing outlives the call: reads were cut off above, so the jobs end within milliseconds
        _, running = wait(futures.values(), timeout=_JOIN_GRACE_S)
        if running:
            log.warning("prefetch: %d fetches still running after the deadline", len(running))
        else:   # every job is done: the pool's threads are only exiting, so joining them cannot hang
            executor.shutdown(wait=True)
    slots = {key: _slot(future) for key, future in futures.items()}
    for key, slot in slots.items():
        if slot.state == "unavailable":
            log.warning("prefetch key=%s unavailable: %s", key, slot.reason)
    return slots


_JOIN_GRACE_S = 0.25


def _slot(future) -> Slot:
    # a cancelled future is done(), and its exception() would raise CancelledError (a 500)
    if future.cancelled() or not future.done():
        return Slot("unavailable", reason="time budget exhausted")
    error = future.exception()
    if isinstance(error, FetchError):
        return Slot("unavailable", reason=str(error))
    if error is not None:  # not ours: its text may hold a URL with the patient id, so its class only
        return Slot("unavailable", reason=f"{type(error).__name__} while fetching")
    return future.result()


def _client(request: HookRequest, settings, deadline: float) -> FhirClient | None:
    if not request.fhirServer:
        return None
    auth = request.fhirAuthorization
    token = auth.access_token.get_secret_value() if auth else None
    return FhirClient(settings.FHIR_ALLOWLIST, token, deadline, settings.FHIR_MAX_RESPONSE_BYTES)


def _fetch_query(query: str, client: FhirClient | None, request: HookRequest, settings) -> Slot:
    if client is None:
        raise FetchError("no fhirServer in the request")
    value = client.get(request.fhirServer.rstrip("/") + "/" + query.lstrip("/"))
    if value is None:
        return Slot("none")
    slot = _classify(value)
    return _follow_pages(value, client, request, settings) if slot.state == "data" and _next_link(value) else slot


def _follow_pages(bundle: dict, client: FhirClient | None, _request, settings) -> Slot:
    if client is None:
        raise FetchError("searchset has a next page but the request has no fhirServer")
    entries = list(bundle.get("entry") or [])
    url, pages = _next_link(bundle), 1
    while url:
        if pages >= settings.FHIR_MAX_PAGES:
            raise FetchError(f"more than {settings.FHIR_MAX_PAGES} pages")
        page = client.get(url)
        if page is None or page.get("resourceType") != "Bundle":
            raise FetchError("next page is not a Bundle")
        entries.extend(page.get("entry") or [])
        if len(entries) > settings.MAX_PREFETCH_ENTRIES:
            raise FetchError(f"more than {settings.MAX_PREFETCH_ENTRIES} entries")
        url, pages = _next_link(page), pages + 1
    merged = {"resourceType": "Bundle", "type": "searchset", "entry": entries}
    return Slot("data", merged) if entries else Slot("none")


def _unrenderable(query: str, *_args) -> Slot:
    raise FetchError(f"template {query!r} has a token this request does not fill")


def _require(slots: dict[str, Slot], required: frozenset[str], request: HookRequest) -> None:
    missing = sorted(key for key in required if key not in slots or (
        slots[key].state == "unavailable" and key not in (request.prefetch or {})))
    if missing:
        reasons = "; ".join(f"{key}: {slots[key].reason if key in slots else 'absent'}" for key in missing)
        raise PrefetchUnavailable(
            f"required prefetch absent and not obtainable from the FHIR server ({reasons})",
            f"prefetch.{missing[0]}",
        )
