"""Shared fixtures: an app on a temporary SQLite file, a client that polices every response."""

from __future__ import annotations

import json
import logging
import os
import sys
import uuid
from contextlib import contextmanager
from pathlib import Path

import pytest
import sqlalchemy
import yaml
from flask.testing import FlaskClient

from cdshooks import create_app
from cdshooks.store import connect

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "deploy"))   # loopback: the topology harness, shared with bench/
TODAY = "2025-06-15"
ALLOWED_EMPTY = {("cards",), ("systemActions",), ("services",)}
POSTGRES_URL = os.environ.get("CDSHOOKS_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


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


class _Collector(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record):
        self.lines.append(self.format(record))


def _private_values() -> set[str]:
    """Patient names and birth dates of every fixture, and every token the tests use."""
    values = {"tok-abc", "secret-token-123", "1990-04-02"}
    for path in list(ROOT.glob("policies/testdata/*.json")) + list(ROOT.glob("examples/*.json")):
        text = path.read_text(encoding="utf-8")
        for resource in _resources(json.loads(text)):
            if resource.get("resourceType") == "Patient":
                values.add(resource.get("birthDate", ""))
                for name in resource.get("name", []):
                    values.update([name.get("family", ""), *name.get("given", [])])
    return {v for v in values if v}


def _resources(value):
    if isinstance(value, list):
        for item in value:
            yield from _resources(item)
    elif isinstance(value, dict):
        if "resourceType" in value:
            yield value
        for child in value.values():
            if isinstance(child, (dict, list)):
                yield from _resources(child)


@pytest.fixture(scope="session", autouse=True)
def no_private_data_in_any_log_line():
    """Every log line the whole suite produces, at every level, is free of names, birth dates and tokens."""
    collector, root = _Collector(), logging.getLogger()
    collector.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
    previous = root.level
    root.addHandler(collector)
    root.setLevel(logging.DEBUG)
    yield collector
    root.removeHandler(collector)
    root.setLevel(previous)
    from test_auth import TOKENS_SEEN
    private = _private_values() | set(TOKENS_SEEN) | {t.split(".")[2] for t in TOKENS_SEEN
                                                      if t.count(".") == 2 and t.split(".")[2]}
    leaks = sorted({value for line in collector.lines for value in private if value in line})
    assert not leaks, f"private values in logs: {leaks}"


@pytest.fixture(autouse=True)
def _never_patch_the_test_run_for_gevent(monkeypatch):
    """`cdshooks serve` called in this process (cli tests) must not monkey-patch pytest's threads."""
    from cdshooks.cli import main as cli
    monkeypatch.setattr(cli, "_patch_for_gevent", lambda: None)


@pytest.fixture(autouse=True)
def _no_cdshooks_env(monkeypatch):
    """Tests never read the developer's CDSHOOKS_* environment."""
    for key in list(os.environ):
        if key.startswith("CDSHOOKS_") and key not in ("CDSHOOKS_REQUIRE_POSTGRES", "CDSHOOKS_SPEC_DIR",
                                                     "CDSHOOKS_REQUIRE_BROWSER", "CDSHOOKS_SCREENSHOTS",
                                                     "CDSHOOKS_REQUIRE_NGINX"):
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


@contextmanager
def fresh_postgres_url():
    """A URL whose connections use a fresh schema of our own on the shared PostgreSQL (dropped
    after); a context manager, so module-scoped fixtures can use it too.

    Skips when PostgreSQL is unreachable, or fails when CDSHOOKS_REQUIRE_POSTGRES is set (CI).
    """
    from loopback import fresh_schema

    probe = sqlalchemy.create_engine(connect.engine_url(POSTGRES_URL), connect_args={"connect_timeout": 2})
    try:
        with probe.connect():
            pass
    except sqlalchemy.exc.OperationalError:
        if os.environ.get("CDSHOOKS_REQUIRE_POSTGRES"):
            pytest.fail(f"PostgreSQL is required but unreachable at {POSTGRES_URL}")
        pytest.skip("PostgreSQL not reachable")
    finally:
        probe.dispose()
    with fresh_schema(POSTGRES_URL) as url:
        yield url


@pytest.fixture
def postgres_schema():
    """The name of a fresh schema of our own on the shared PostgreSQL (see fresh_postgres_url)."""
    with fresh_postgres_url() as url:
        yield url.rpartition("search_path%3D")[2]



def mapped_csf_products():
    """The CSF product table as the shipped mapping and value sets define it."""
    from cdshooks.facts.calculators.oncology.products import product_table
    from cdshooks.facts.loader import resolve_params
    from cdshooks.fhir import valuesets

    facts = yaml.safe_load((ROOT / "mappings" / "oncology.yaml").read_text(encoding="utf-8"))["facts"]
    params = resolve_params(facts["csf.product_family"]["params"], {"products"},
                            valuesets.load(ROOT / "valuesets")[0])
    return product_table(params["products"])
