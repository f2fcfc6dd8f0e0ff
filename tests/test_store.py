"""The store on SQLite and, where reachable, PostgreSQL: feedback idempotence, audit, replay cache."""

from __future__ import annotations

import datetime as dt
import os
import uuid

import pytest
import sqlalchemy

from cdshooks import store

POSTGRES_URL = os.environ.get("CDSHOOKS_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


def _postgres_reachable() -> bool:
    try:
        engine = sqlalchemy.create_engine(store.engine_url(POSTGRES_URL), connect_args={"connect_timeout": 2})
        with engine.connect():
            pass
        engine.dispose()
        return True
    except sqlalchemy.exc.OperationalError:
        return False


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'store.sqlite3'}"
        return
    if not _postgres_reachable():
        if os.environ.get("CDSHOOKS_REQUIRE_POSTGRES"):
            pytest.fail(f"PostgreSQL is required but unreachable at {POSTGRES_URL}")
        pytest.skip("PostgreSQL not reachable")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = sqlalchemy.create_engine(store.engine_url(POSTGRES_URL))
    with admin.begin() as conn:
        conn.execute(sqlalchemy.text(f"CREATE SCHEMA {schema}"))
    yield f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"
    with admin.begin() as conn:
        conn.execute(sqlalchemy.text(f"DROP SCHEMA {schema} CASCADE"))
    admin.dispose()


@pytest.fixture
def db(database_url):
    instance = store.Store(database_url)
    yield instance
    instance.dispose()


def feedback_item(card="card-1", outcome="overridden", when="2026-01-01T12:00:00.000Z", **extra):
    item = {"card": card, "outcome": outcome,
            "outcomeTimestamp": dt.datetime.fromisoformat(when.replace("Z", "+00:00"))}
    item.update(extra)
    return item


def test_feedback_is_stored_once_per_card_outcome_and_time(db):
    assert db.add_feedback("svc", [feedback_item()]) == 1
    assert db.add_feedback("svc", [feedback_item()]) == 0
    assert db.add_feedback("svc", [feedback_item(when="2026-01-01T12:00:01Z")]) == 1
    assert len(db.rows(store.feedback)) == 2


def test_feedback_keeps_reason_and_accepted_suggestions(db):
    db.add_feedback("svc", [
        feedback_item(overrideReason={"reason": {"system": "s", "code": "self-pay"}, "userComment": "n/a"}),
        feedback_item(card="card-2", outcome="accepted", acceptedSuggestions=[{"id": "sug-1"}]),
    ])
    rows = {r["card_uuid"]: r for r in db.rows(store.feedback)}
    assert '"self-pay"' in rows["card-1"]["override_reason"] and rows["card-1"]["user_comment"] == "n/a"
    assert rows["card-2"]["accepted_suggestions"] == '["sug-1"]'


def test_audit_rows_are_written_and_read_back(db):
    db.add_audit({"service_id": "svc", "hook": "order-sign", "hook_instance": "hi-1", "patient_id": "p-1",
                  "order_refs": ["ServiceRequest/1"], "decisions": [{"decision": "met"}],
                  "card_ids": ["c-1"], "latency_ms": 1.5, "status": 200})
    (row,) = db.rows(store.audit)
    assert row["hook_instance"] == "hi-1" and row["status"] == 200
    assert row["order_refs"] == '["ServiceRequest/1"]'


def test_replayed_token_is_refused_until_it_expires(db):
    later = dt.datetime.now(dt.timezone.utc) + dt.timedelta(minutes=5)
    assert db.remember_token("iss|jti-1", later) is True
    assert db.remember_token("iss|jti-1", later) is False
    assert db.remember_token("iss|jti-2", later) is True


def test_replay_cache_is_shared_by_two_store_instances(database_url):
    first, second = store.Store(database_url), store.Store(database_url)
    later = dt.datetime.now(dt.timezone.utc) + dt.timedelta(minutes=5)
    try:
        assert first.remember_token("iss|shared", later) is True
        assert second.remember_token("iss|shared", later) is False
    finally:
        first.dispose()
        second.dispose()


def test_committed_rows_survive_a_new_process_connection(database_url):
    first = store.Store(database_url)
    first.add_feedback("svc", [feedback_item()])
    first.dispose()  # as if the worker died
    second = store.Store(database_url)
    assert len(second.rows(store.feedback)) == 1
    second.dispose()


def test_postgres_urls_use_the_psycopg3_driver():
    assert store.engine_url("postgresql://u@h/db") == "postgresql+psycopg://u@h/db"
    assert store.engine_url("postgres://u@h/db") == "postgresql+psycopg://u@h/db"
    assert store.engine_url("sqlite:///x") == "sqlite:///x"


def test_form_launches_round_trip_expire_and_lose_their_tokens(db):
    now = dt.datetime.now(dt.timezone.utc)
    db.add_forms([
        {"ref": "live", "expires_at": now + dt.timedelta(hours=1), "content": "{}", "token_cipher": "c1",
         "token_expires_at": now + dt.timedelta(minutes=5)},
        {"ref": "old", "expires_at": now - dt.timedelta(seconds=1), "content": "{}", "token_cipher": None,
         "token_expires_at": None},
        {"ref": "stale-token", "expires_at": now + dt.timedelta(hours=1), "content": "{}", "token_cipher": "c2",
         "token_expires_at": now - dt.timedelta(seconds=1)},
    ])
    assert db.form("live")["token_cipher"] == "c1"
    assert db.form("old") is None
    db.add_forms([{"ref": "next", "expires_at": now + dt.timedelta(hours=1), "content": "{}", "token_cipher": None,
                   "token_expires_at": None}])
    assert {r["ref"] for r in db.rows(store.forms)} == {"live", "stale-token", "next"}
    assert db.form("stale-token")["token_cipher"] is None and db.form("live")["token_cipher"] == "c1"
    db.forget_form_token("live")
    assert db.form("live")["token_cipher"] is None
