"""Shared fixtures: an app on a temporary SQLite file, a client that polices every response."""

from __future__ import annotations

import json
import os
import uuid

import pytest
from flask.testing import FlaskClient

from cdshooks import create_app

TODAY = "2025-06-15"
ALLOWED_EMPTY = {("cards",), ("systemActions",), ("services",)}


def empties(value, path=()):
    """Paths in a JSON value that are null or empty (CDS Hooks 2.0 forbids both)."""
    if value is None or value == "" or value == [] or value == {}:
        if path not in ALLOWED_EMPTY:
            yield path
        return
    if isinstance(value, dict):
        for key, child in value.items():
            yield from empties(child, path + (key,))
    elif isinstance(value, list):
        for i, child in enumerate(value):
            yield from empties(child, path + (i,))


class CheckingClient(FlaskClient):
    """A test client that fails any test whose JSON response holds a null or empty value."""

    def open(self, *args, **kwargs):
        response = super().open(*args, **kwargs)
        if response.mimetype == "application/json" and response.data:
            body = json.loads(response.data)
            bad = list(empties(body))
            assert not bad, f"null/empty values at {bad} in {response.request.path}"
        return response


def make_app(tmp_path, **config):
    settings = {"TESTING": True, "DATABASE_URL": f"sqlite:///{tmp_path / 'test.sqlite3'}",
                "TODAY": TODAY, "PUBLIC_BASE_URL": "https://cds.example.org"}
    settings.update(config)
    app = create_app(settings)
    app.test_client_class = CheckingClient
    return app


@pytest.fixture
def app(tmp_path):
    return make_app(tmp_path)


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture(autouse=True)
def _no_cdshooks_env(monkeypatch):
    """Tests never read the developer's CDSHOOKS_* environment."""
    for key in list(os.environ):
        if key.startswith("CDSHOOKS_") and key != "CDSHOOKS_REQUIRE_POSTGRES":
            monkeypatch.delenv(key)


def hook_request(hook="order-sign", orders=None, prefetch=None, **context):
    """A minimal conformant request; ``orders`` are draft resources, ``prefetch`` is sent as is."""
    orders = orders if orders is not None else [service_request("sr-1", "81420")]
    ctx = {"userId": "Practitioner/pr-1", "patientId": "pat-1",
           "draftOrders": {"resourceType": "Bundle", "type": "collection",
                           "entry": [{"resource": r} for r in orders]}}
    if hook == "order-select":
        ctx["selections"] = [f"{orders[0]['resourceType']}/{orders[0]['id']}"] if orders else []
    ctx.update(context)
    body = {"hook": hook, "hookInstance": str(uuid.uuid4()), "context": ctx}
    if prefetch is not None:
        body["prefetch"] = prefetch
    return body


def service_request(rid, code, system="http://www.ama-assn.org/go/cpt", **extra):
    resource = {"resourceType": "ServiceRequest", "id": rid, "status": "draft", "intent": "order",
                "subject": {"reference": "Patient/pat-1"},
                "code": {"coding": [{"system": system, "code": code}]}}
    resource.update(extra)
    return resource


def patient(pid="pat-1", birth_date="1990-04-02"):
    return {"resourceType": "Patient", "id": pid, "birthDate": birth_date}


def bundle(*resources):
    return {"resourceType": "Bundle", "type": "searchset", "entry": [{"resource": r} for r in resources]}


def full_prefetch(app, **overrides):
    """Every advertised key answered: patient, others null unless overridden."""
    from cdshooks import registry
    with app.app_context():
        keys = [t.key for t in registry.get().templates]
    prefetch = {key: None for key in keys}
    prefetch["patient"] = patient()
    prefetch.update(overrides)
    return prefetch
