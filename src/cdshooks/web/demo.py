"""A demo order-entry page (``/demo``, only with ``CDSHOOKS_DEMO=true``) that acts as the EHR.

It lists the synthetic patients of ``CDSHOOKS_DEMO_PATIENTS`` (hook requests, as in ``examples/``):
the resources of each file's prefetch are the patient's record, from which the page answers every
prefetch template as an EHR would, and its draft orders are what the page offers to order. The
browser then makes the real calls an EHR makes — discovery, order-select, order-sign, feedback —
against this service, and opens the documentation form from the cards.

A file may say when its record was written (``extension["cdshooks.demo"].asOf``); every date in
it is then moved by the days between that date and the service's evaluation date, so a pregnancy
is still 8 weeks along and a wean still 30 days old whatever the calendar says.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path

from flask import Blueprint
from flask import Flask
from flask import current_app
from flask import render_template

from cdshooks import jsonio
from cdshooks import settings

log = logging.getLogger(__name__)
EXTENSION_KEY = "cdshooks.web.demo"
_DATE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})(?=$|T)")

bp = Blueprint("demo", __name__)


@dataclass(frozen=True)
class Patient:
    key: str
    label: str
    as_of: dt.date | None
    resources: tuple[dict, ...]   # the record: every resource of the file's prefetch, Patient first
    orders: tuple[dict, ...]


@bp.get("/demo")
def page():
    return render_template("demo.html", today=settings.get().today().isoformat())


@bp.get("/demo/patients")
def patients():
    """Every demo patient with its record and orders, dates moved to the evaluation date."""
    today = settings.get().today()
    out = []
    for patient in current_app.extensions[EXTENSION_KEY]:
        days = (today - patient.as_of).days if patient.as_of else 0
        out.append({"key": patient.key, "label": patient.label, "shiftedDays": days,
                    "resources": shift_dates(list(patient.resources), days),
                    "orders": shift_dates(list(patient.orders), days)})
    return jsonio.response({"today": today.isoformat(), "patients": out})


def shift_dates(value, days: int):
    """``value`` with every FHIR date/dateTime string moved by ``days`` (time and zone kept)."""
    if days == 0:
        return value
    if isinstance(value, dict):
        return {k: shift_dates(v, days) for k, v in value.items()}
    if isinstance(value, list):
        return [shift_dates(v, days) for v in value]
    if isinstance(value, str) and (match := _DATE.match(value)):
        try:
            moved = dt.date(*map(int, match.groups())) + dt.timedelta(days=days)
        except ValueError:
            return value
        return moved.isoformat() + value[match.end():]
    return value


def load_patients(folder: Path) -> list[Patient]:
    """Read each ``*.json`` hook request of ``folder``; a file that is not one is skipped, loudly."""
    found = []
    for path in sorted(folder.glob("*.json")):
        try:
            found.append(_patient(path))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("demo: %s skipped (%s)", path.name, type(exc).__name__)
    return found


def _patient(path: Path) -> Patient:
    body = json.loads(path.read_text(encoding="utf-8"))
    meta = (body.get("extension") or {}).get("cdshooks.demo") or {}
    prefetch = body["prefetch"]
    if not isinstance(prefetch.get("patient"), dict):
        raise ValueError("no patient")
    resources = [prefetch["patient"]]
    for key, value in prefetch.items():
        if key != "patient" and isinstance(value, dict):
            resources += ([e["resource"] for e in value.get("entry", [])]
                          if value.get("resourceType") == "Bundle" else [value])
    orders = tuple(e["resource"] for e in body["context"]["draftOrders"]["entry"])
    as_of = dt.date.fromisoformat(meta["asOf"]) if meta.get("asOf") else None
    return Patient(path.stem, meta.get("label") or path.stem.replace("-", " "), as_of, tuple(resources), orders)


def init_app(app: Flask) -> None:
    """Serve the demo only when ``CDSHOOKS_DEMO`` is true; otherwise ``/demo`` is a plain 404."""
    config = settings.get_from(app)
    if not config.DEMO:
        return
    app.extensions[EXTENSION_KEY] = tuple(load_patients(config.DEMO_PATIENTS))
    log.warning("demo order-entry page enabled at /demo with %d synthetic patients (not for production)",
                len(app.extensions[EXTENSION_KEY]))
    app.register_blueprint(bp)
