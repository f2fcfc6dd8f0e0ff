"""The store on SQLite and, where reachable, PostgreSQL: feedback idempotence, audit, replay cache."""

from __future__ import annotations

import datetime as dt
import logging
import os
import shutil
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import sqlalchemy

from cdshooks.errors import StoreUnavailable
from cdshooks.store import connect
from cdshooks.store import db as store
from cdshooks.store.writer import AUDIT
from conftest import POSTGRES_URL
from netfaults import FreezableProxy
from netfaults import finishes_within


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'store.sqlite3'}"
        return
    schema = request.getfixturevalue("postgres_schema")
    yield f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"


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
    db.write_rows([(AUDIT, {"service_id": "svc", "hook": "order-sign", "hook_instance": "hi-1", "patient_id": "p-1",
                  "order_refs": ["ServiceRequest/1"], "decisions": [{"decision": "met"}],
                  "card_ids": ["c-1"], "latency_ms": 1.5, "status": 200})])
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
    assert connect.engine_url("postgresql://u@h/db") == "postgresql+psycopg://u@h/db"
    assert connect.engine_url("postgres://u@h/db") == "postgresql+psycopg://u@h/db"
    assert connect.engine_url("sqlite:///x") == "sqlite:///x"


# ----------------------------------------------------------------------------- faults
@pytest.fixture
def frozen_able_postgres(postgres_schema):
    """A store reaching PostgreSQL through a proxy the test can freeze (as SIGSTOP would)."""
    parts = sqlalchemy.engine.make_url(connect.engine_url(POSTGRES_URL))
    proxy = FreezableProxy((parts.host or "127.0.0.1", parts.port or 5432))
    url = parts.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    instance = store.Store(f"{url}?options=-csearch_path%3D{postgres_schema}", timeout_s=1.0)
    yield instance, proxy
    proxy.close()
    instance.dispose()


def test_a_frozen_database_fails_feedback_within_the_time_limit_then_recovers(frozen_able_postgres):
    db, proxy = frozen_able_postgres
    assert db.add_feedback("svc", [feedback_item(card="before")]) == 1
    proxy.freeze()
    finished, outcome = finishes_within(15, db.add_feedback, "svc", [feedback_item(card="frozen")])
    assert finished, "a feedback write waited on a frozen database"
    assert isinstance(outcome, StoreUnavailable) and outcome.status == 503
    finished, outcome = finishes_within(15, db.check_writable)
    assert finished and isinstance(outcome, StoreUnavailable)
    proxy.thaw()
    assert db.add_feedback("svc", [feedback_item(card="after")]) == 1
    assert {r["card_uuid"] for r in db.rows(store.feedback)} == {"before", "after"}


def test_audit_rows_never_wait_for_a_frozen_database_and_are_written_once_it_answers(frozen_able_postgres):
    db, proxy = frozen_able_postgres
    db.check_writable()
    proxy.freeze()
    finished, _ = finishes_within(5, lambda: [db.add_audit(_audit_row(f"hi-{i}")) for i in range(20)])
    assert finished, "queuing an audit row waited on the database"
    assert not db.writer.flush(1.5)  # still waiting for the database
    proxy.thaw()
    assert db.writer.flush(30)
    assert sorted(r["hook_instance"] for r in db.rows(store.audit)) == sorted(f"hi-{i}" for i in range(20))


def test_a_full_audit_queue_drops_rows_and_logs_each_drop(tmp_path, caplog, monkeypatch):
    db = store.Store(f"sqlite:///{tmp_path / 's.sqlite3'}", queue_capacity=1, batch_s=0)
    release = threading.Event()
    monkeypatch.setattr(db.writer, "write", lambda batch: release.wait(10))
    with caplog.at_level(logging.ERROR, logger="cdshooks.store.writer"):
        db.add_audit(_audit_row("taken-by-the-writer"))
        deadline = time.monotonic() + 5
        while db.writer._queue.qsize() and time.monotonic() < deadline:
            time.sleep(0.01)
        db.add_audit(_audit_row("queued"))
        db.add_audit(_audit_row("dropped"))
    release.set()
    assert db.writer.dropped == 1
    assert "audit row dropped for hookInstance=dropped" in caplog.text
    assert db.writer.flush(10)
    db.dispose()


def test_audit_rows_are_cut_to_their_columns_and_lose_nul_characters(db):
    db.write_rows([(AUDIT, _audit_row("h\x00i" + "x" * 300))])
    (row,) = db.rows(store.audit)
    assert row["hook_instance"] == ("hi" + "x" * 300)[:store.ID_LENGTH]


def test_writes_to_a_removed_sqlite_folder_are_refused_not_silently_lost(tmp_path):
    folder = tmp_path / "data"
    db = store.Store(f"sqlite:///{folder / 's.sqlite3'}")
    assert db.add_feedback("svc", [feedback_item()]) == 1
    shutil.rmtree(folder)
    with pytest.raises(StoreUnavailable):
        db.add_feedback("svc", [feedback_item(card="lost")])
    with pytest.raises(StoreUnavailable):
        db.check_writable()
    db.dispose()


def test_a_sqlite_folder_that_cannot_be_created_stops_start_up_with_advice(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(connect.StoreStartError) as error:
        store.Store(f"sqlite:///{blocker / 'data' / 's.sqlite3'}")
    message = str(error.value)
    assert str(blocker / "data") in message and "CDSHOOKS_DATABASE_URL" in message and "chown" in message


@pytest.mark.skipif(os.getuid() == 0, reason="root may write anywhere")
def test_a_sqlite_folder_owned_by_someone_else_stops_start_up_with_advice(tmp_path):
    folder = tmp_path / "mounted"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        with pytest.raises(connect.StoreStartError, match="not writable"):
            store.Store(f"sqlite:///{folder / 's.sqlite3'}")
    finally:
        folder.chmod(0o700)


def test_database_errors_never_carry_statement_parameters(tmp_path, caplog):
    db = store.Store(f"sqlite:///{tmp_path / 's.sqlite3'}")
    with db.engine.begin() as conn:
        conn.execute(sqlalchemy.text("DROP TABLE cdshooks_feedback"))
    secret = "free text the clinician typed"
    with caplog.at_level(logging.DEBUG), pytest.raises(StoreUnavailable) as error:
        db.add_feedback("svc", [feedback_item(overrideReason={"userComment": secret})])
    assert secret not in caplog.text and secret not in str(error.value)
    db.dispose()


def _audit_row(hook_instance: str) -> dict:
    return {"service_id": "svc", "hook": "order-sign", "hook_instance": hook_instance, "patient_id": "p-1",
            "order_refs": [], "decisions": [], "card_ids": [], "latency_ms": 1.0, "status": 200}

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
    assert db.form("live")["token_cipher"] == "c1"   # queued, not written yet: readable in this process
    assert db.form("old") is None
    assert db.writer.flush(10)
    assert db.form("live")["token_cipher"] == "c1"
    db.add_forms([{"ref": "next", "expires_at": now + dt.timedelta(hours=1), "content": "{}", "token_cipher": None,
                   "token_expires_at": None}])
    assert db.writer.flush(10)   # the next batch purges what expired before it
    assert {r["ref"] for r in db.rows(store.forms)} == {"live", "stale-token", "next"}
    assert db.form("stale-token")["token_cipher"] is None and db.form("live")["token_cipher"] == "c1"
    db.forget_form_token("live")
    assert db.form("live")["token_cipher"] is None


def _launch(ref: str) -> dict:
    return {"ref": ref, "expires_at": dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=1), "content": "{}",
            "token_cipher": None, "token_expires_at": None}


def test_a_form_launch_is_not_waited_for_and_another_worker_waits_for_its_batch(database_url):
    writer = store.Store(database_url, batch_s=1.0)
    reader = store.Store(database_url)
    try:
        writer.add_forms([_launch("a" * 32)])
        assert reader.form("a" * 32) is None   # add_forms returned before its batch committed
        assert reader.form("a" * 32, wait=True)["content"] == "{}"
        assert reader.form("b" * 32, wait=True) is None
    finally:
        writer.dispose()
        reader.dispose()


def test_form_launches_are_refused_while_the_queue_is_full_or_the_database_failing(tmp_path, monkeypatch):
    db = store.Store(f"sqlite:///{tmp_path / 's.sqlite3'}", queue_capacity=2, batch_s=0)
    release = threading.Event()
    monkeypatch.setattr(db.writer, "write", lambda batch: release.wait(10))
    db.add_forms([_launch("taken-by-the-writer")])
    deadline = time.monotonic() + 5
    while db.writer._queue.qsize() and time.monotonic() < deadline:
        time.sleep(0.01)
    with pytest.raises(StoreUnavailable):
        db.add_forms([_launch("one"), _launch("two"), _launch("three")])   # all or none
    assert db.form("one") is None
    db.writer.failing = True
    with pytest.raises(StoreUnavailable):
        db.add_forms([_launch("one")])
    release.set()
    db.dispose()


def test_instances_starting_together_on_an_empty_database_all_start(database_url):
    """Replicas that boot at once must not race on creating the tables (the loser used to exit)."""
    barrier = threading.Barrier(6)

    def start():
        barrier.wait()
        return store.Store(database_url)

    with ThreadPoolExecutor(6) as pool:
        started = [f.result(timeout=60) for f in [pool.submit(start) for _ in range(6)]]
    started[0].add_feedback("svc", [feedback_item()])
    assert started[-1].add_feedback("svc", [feedback_item()]) == 0  # one schema, seen by all
    for instance in started:
        instance.dispose()


def test_the_purge_of_expired_form_launches_uses_indexes_not_a_scan_of_live_ones(db):
    """Every hook call that opens a form purges expired launches; without these indexes its cost grew
    with the live launches of the last hour (12.7 ms per call at 5,000 on SQLite, 0.9 ms with them)."""
    indexed = {tuple(i["column_names"]) for i in sqlalchemy.inspect(db.engine).get_indexes("cdshooks_form")}
    assert ("expires_at",) in indexed and ("token_expires_at",) in indexed
