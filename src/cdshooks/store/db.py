"""Durable feedback, audit and JWT-replay records (SQLAlchemy Core; SQLite default, PostgreSQL).

A write is acknowledged only after it committed to the database the service opened: on SQLite
the file must still be the one opened (a removed folder leaves writes going to an unlinked file,
which would be lost), on PostgreSQL the commit returned.  Every database operation is bounded in
time (connect, pool wait, the transaction itself); past that it fails with
:class:`~cdshooks.errors.StoreUnavailable` (503) instead of holding the call.  The audit row holds
ids, decisions and timings only.  A documentation-form launch holds its questions (criterion ids
and the record's answers) and, for the one write back to the EHR, the call's FHIR token
encrypted, until it is used or expires.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import logging
import os
import threading
import time
from contextlib import contextmanager

from flask import Flask
from flask import current_app
from sqlalchemy import Column
from sqlalchemy import DateTime
from sqlalchemy import Float
from sqlalchemy import Integer
from sqlalchemy import MetaData
from sqlalchemy import String
from sqlalchemy import Table
from sqlalchemy import Text
from sqlalchemy import UniqueConstraint
from sqlalchemy import delete
from sqlalchemy import select
from sqlalchemy import update
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import Engine
from sqlalchemy.exc import InterfaceError
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.exc import TimeoutError

from cdshooks import settings
from cdshooks.errors import StoreUnavailable
from cdshooks.store import connect
from cdshooks.store import native
from cdshooks.store.writer import AUDIT
from cdshooks.store.writer import FORM
from cdshooks.store.writer import Writer

log = logging.getLogger(__name__)
EXTENSION_KEY = "cdshooks.store.db"
ID_LENGTH = 200  # every String(200) column; longer values are refused (feedback) or cut (audit)
DOWN_S = 30.0    # after a failure, form launches are refused this long, or until a write succeeds
FORM_POLL_S = 0.05   # how often a form page asks for a launch another worker has not written yet

metadata = MetaData()

feedback = Table(
    "cdshooks_feedback",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("service_id", String(ID_LENGTH), nullable=False),
    Column("card_uuid", String(ID_LENGTH), nullable=False),
    Column("outcome", String(20), nullable=False),
    Column("outcome_timestamp", DateTime(timezone=True), nullable=False),
    Column("accepted_suggestions", Text),
    Column("override_reason", Text),
    Column("user_comment", Text),
    Column("received_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("card_uuid", "outcome", "outcome_timestamp", name="uq_cdshooks_feedback"),
)

audit = Table(
    "cdshooks_audit",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("service_id", String(ID_LENGTH), nullable=False),
    Column("hook", String(40)),
    Column("hook_instance", String(ID_LENGTH)),
    Column("patient_id", String(ID_LENGTH)),
    Column("order_refs", Text),
    Column("decisions", Text),
    Column("card_ids", Text),
    Column("latency_ms", Float, nullable=False),
    Column("status", Integer, nullable=False),
)

forms = Table(  # documentation-form launches: short-lived, the EHR token only encrypted (forms.py)
    "cdshooks_form",
    metadata,
    Column("ref", String(64), primary_key=True),
    # indexed: every launch write purges the expired rows, which must not scan the live ones
    Column("expires_at", DateTime(timezone=True), nullable=False, index=True),
    Column("content", Text, nullable=False),
    Column("token_cipher", Text),
    Column("token_expires_at", DateTime(timezone=True), index=True),
)

jwt_replay = Table(
    "cdshooks_jwt_replay",
    metadata,
    Column("token_key", String(64), primary_key=True),
    Column("expires_at", DateTime(timezone=True), nullable=False),
)

health = Table(  # one row, rewritten by /healthz to prove the store can write
    "cdshooks_health",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("checked_at", DateTime(timezone=True), nullable=False),
)


class Store:
    """The service's database: schema created on construction, one bounded transaction per write."""

    def __init__(self, url: str, timeout_s: float = 2.0, queue_capacity: int = 10_000, batch_s: float = 0.25):
        self.timeout_s = timeout_s
        self.engine: Engine = connect.create(connect.engine_url(url), timeout_s)
        self._sqlite_file = connect.sqlite_file(self.engine)
        if self._sqlite_file is not None:
            connect.prepare_folder(self._sqlite_file.parent)
        try:
            connect.create_schema(self.engine, metadata)
        except SQLAlchemyError as exc:
            raise connect.StoreStartError(connect.start_advice(self._sqlite_file, exc)) from None
        self._identity = connect.file_identity(self._sqlite_file)
        self._down_until = 0.0
        self._side, self._side_pid = None, None
        # an in-memory SQLite database is one connection shared by every thread: one transaction at a time
        self._one_at_a_time = threading.Lock() if connect.shared_connection(self.engine) else contextlib.nullcontext()
        self._insert = postgresql.insert if self.engine.dialect.name == "postgresql" else sqlite.insert
        self.writer = Writer(self.write_rows, queue_capacity, batch_s)

    def add_feedback(self, service_id: str, items: list[dict]) -> int:
        """Store feedback items idempotently (card uuid + outcome + timestamp); return new rows.

        Returns only once the rows are durably committed; raises StoreUnavailable otherwise.
        """
        now = _utcnow()
        rows = [_feedback_row(service_id, item, now) for item in items]
        statement = self._insert(feedback).on_conflict_do_nothing(
            index_elements=["card_uuid", "outcome", "outcome_timestamp"]
        ).returning(feedback.c.id)  # rowcount is not reliable for ON CONFLICT across drivers
        inserted = 0
        with self.transaction("feedback") as conn:
            for row in rows:
                inserted += len(conn.execute(statement, row).all())
        return inserted

    def add_audit(self, row: dict) -> None:
        """Queue one audit row for the background writer; never waits on the database."""
        self.writer.submit_audit(row)

    def write_rows(self, batch: list[tuple[str, dict]]) -> None:
        """Write a batch of ``(table, row)`` now, in one transaction (the background writer calls this)."""
        if native.patched():   # the writer is a greenlet: commit on a native thread, not the event loop
            with native.prompt_handoffs():
                return self._native().submit(self._write_rows, batch).result()
        return self._write_rows(batch)

    def _write_rows(self, batch: list[tuple[str, dict]]) -> None:
        now = _utcnow()
        launches = [_unexpired(row, now) for table, row in batch if table == FORM and row["expires_at"] >= now]
        audits = [audit_values(row) for table, row in batch if table == AUDIT]
        with self.transaction("audit and form launch", durable=False) as conn:
            if launches:   # what expired before this batch goes, the queued rows' expired tokens too
                conn.execute(delete(forms).where(forms.c.expires_at < now))
                conn.execute(forms.update().where(forms.c.token_expires_at < now)
                             .values(token_cipher=None, token_expires_at=None))
                conn.execute(forms.insert(), launches)
            if audits:
                conn.execute(audit.insert(), audits)

    def remember_token(self, key: str, expires_at: dt.datetime) -> bool:
        """Record a JWT (by ``iss`` + ``jti``) until it expires; False if it was already seen."""
        token_key = hashlib.sha256(key.encode()).hexdigest()
        now = _utcnow()
        statement = self._insert(jwt_replay).on_conflict_do_nothing(
            index_elements=["token_key"]).returning(jwt_replay.c.token_key)
        with self.transaction("JWT replay cache") as conn:
            conn.execute(delete(jwt_replay).where(jwt_replay.c.expires_at < now))
            inserted = conn.execute(statement, {"token_key": token_key, "expires_at": expires_at}).all()
        return bool(inserted)

    def add_forms(self, rows: list[dict]) -> None:
        """Queue documentation-form launches for the background writer, which also drops expired
        launches and tokens; StoreUnavailable at once when the store is known to be down or the
        queue is full (the cards then link the blank forms).

        Never waited for: a launch is readable at once in this process and, once its batch commits
        (within ``batch_s``), on every worker; :meth:`form` waits that long for one it does not see
        yet. Committed on SQLite without the log sync of a durable write: a crash of the process
        loses the launches still queued, a power loss or OS crash can lose the last written ones;
        their links then show the "form gone" page (the card's advice and the policy's blank form
        are unaffected).
        """
        if time.monotonic() < self._down_until:
            raise StoreUnavailable("the database is not answering; the form launches were not queued")
        self.writer.submit_forms(rows)

    def _native(self):
        """This process's pool of native threads for writes off the caller's path (see native.py)."""
        if self._side_pid != os.getpid():  # threads do not survive a fork
            self._side, self._side_pid = native.executor(2, "store"), os.getpid()
        return self._side

    def form(self, ref: str, wait: bool = False) -> dict | None:
        """The unexpired form launch ``ref``, or None; with ``wait``, one that no worker has
        written yet is waited for as long as a batch may take to commit."""
        deadline = time.monotonic() + (self.writer.linger_s + self.timeout_s if wait else 0)
        while True:
            row = self.writer.waiting(ref)
            if row is None:
                with self.transaction("form read", durable=False) as conn:
                    found = conn.execute(select(forms).where(forms.c.ref == ref)).first()
                row = dict(found._mapping) if found else None
            if row is not None:
                row = {**row, **{k: _aware(row[k]) for k in ("expires_at", "token_expires_at") if row[k]}}
                return row if row["expires_at"] >= _utcnow() else None
            if time.monotonic() >= deadline:
                return None
            time.sleep(FORM_POLL_S)

    def forget_form_token(self, ref: str) -> None:
        """Erase a launch's EHR token (after its one write, or when it failed for good)."""
        if self.writer.waiting(ref) is not None:   # the update must find the row
            self.writer.flush(self.timeout_s)
        with self.transaction("form token") as conn:
            conn.execute(forms.update().where(forms.c.ref == ref).values(token_cipher=None, token_expires_at=None))

    def check_writable(self) -> None:
        """Write and commit the health row; raise StoreUnavailable if the store cannot write."""
        now = _utcnow()
        with self.transaction("health check", durable=False) as conn:
            if not conn.execute(update(health).where(health.c.id == 1).values(checked_at=now)).rowcount:
                conn.execute(self._insert(health).values(id=1, checked_at=now).on_conflict_do_nothing())

    @contextmanager
    def transaction(self, what: str, durable: bool = True):
        """One transaction that commits within ``timeout_s`` or raises StoreUnavailable.

        ``durable``: the commit survives a power loss (SQLite syncs its log at this commit; the
        audit trail, the health row and form launches settle for surviving a crash of the process,
        which is cheaper).
        """
        self._same_file(what)
        try:
            with self._one_at_a_time, self.engine.connect() as conn, connect.watchdog(conn, self.timeout_s):
                if self._sqlite_file is not None:  # outside any transaction, on the driver itself
                    conn.connection.driver_connection.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
                with conn.begin():
                    yield conn
        except SQLAlchemyError as exc:
            # the statement and its parameters (free text) stay out of the log: the class says enough
            log.error("store unavailable (%s): %s", what, type(exc).__name__)
            error = StoreUnavailable(f"the database did not accept the {what} write; nothing was stored; "
                                     "retry later")
            error.transient = isinstance(exc, (OperationalError, InterfaceError, TimeoutError)) or \
                getattr(exc, "connection_invalidated", False)
            if error.transient:
                self._down_until = time.monotonic() + DOWN_S
            raise error from None
        self._same_file(what)
        self._down_until = 0.0

    def rows(self, table: Table) -> list[dict]:
        """Return every row of ``table`` (for tests and the operator's inspection)."""
        key = table.c[table.primary_key.columns.keys()[0]]
        with self.engine.connect() as conn:
            return [dict(row._mapping) for row in conn.execute(select(table).order_by(key))]

    def dispose(self) -> None:
        self.writer.close()
        if self._side is not None:
            self._side.shutdown(wait=False)
        self.engine.dispose()

    def after_fork(self) -> None:
        """In a new worker process: drop the parent's connections and background writer."""
        self.engine.dispose(close=False)
        self.writer.after_fork()

    def _same_file(self, what: str) -> None:
        if self._sqlite_file is None:
            return
        if connect.file_identity(self._sqlite_file) != self._identity:
            self.engine.dispose()  # connections still point at the old, unlinked file
            log.error("store unavailable (%s): %s is gone or was replaced", what, self._sqlite_file)
            raise StoreUnavailable(f"the SQLite database {self._sqlite_file} is gone or was replaced; "
                                   f"the {what} write would not be kept; nothing was stored")


def audit_values(row: dict) -> dict:
    """An audit row as stored: lists as compact JSON, ids cut to their column, no NUL characters."""
    values = {**row, "at": row.get("at") or _utcnow()}
    for key in ("order_refs", "decisions", "card_ids"):
        if key in values and not isinstance(values[key], str):
            values[key] = json.dumps(values[key], separators=(",", ":"))
    for key, value in values.items():
        if isinstance(value, str):
            value = value.replace("\x00", "")
            values[key] = value[:ID_LENGTH] if key in ("service_id", "hook", "hook_instance", "patient_id") else value
    return values


def _feedback_row(service_id: str, item: dict, now: dt.datetime) -> dict:
    reason = item.get("overrideReason") or {}
    accepted = item.get("acceptedSuggestions")
    return {
        "service_id": service_id,
        "card_uuid": item["card"],
        "outcome": item["outcome"],
        "outcome_timestamp": item["outcomeTimestamp"],
        "accepted_suggestions": json.dumps([s["id"] for s in accepted]) if accepted else None,
        "override_reason": json.dumps(reason["reason"]) if reason.get("reason") else None,
        "user_comment": reason.get("userComment"),
        "received_at": now,
    }


def _unexpired(launch: dict, now: dt.datetime) -> dict:
    """A form launch row without its token once the token has expired."""
    expires = launch["token_expires_at"]
    return launch if expires is None or expires >= now else {**launch, "token_cipher": None, "token_expires_at": None}


def _aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)  # SQLite drops the zone


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def init_app(app: Flask) -> None:
    """Open the store named by ``CDSHOOKS_DATABASE_URL`` and create its schema."""
    config = settings.get_from(app)
    app.extensions[EXTENSION_KEY] = Store(config.DATABASE_URL, config.STORE_TIMEOUT_MS / 1000,
                                          config.AUDIT_QUEUE_SIZE, config.STORE_BATCH_MS / 1000)


def get() -> Store:
    """Return the store of the current app."""
    return current_app.extensions[EXTENSION_KEY]
