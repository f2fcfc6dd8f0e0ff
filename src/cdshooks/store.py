"""Durable feedback, audit and JWT-replay records (SQLAlchemy Core; SQLite default, PostgreSQL).

Every write commits before the request returns, so a row acknowledged to a client survives a
crash of the worker.  The audit row holds ids, decisions and timings only.  A documentation-form
launch holds its questions (criterion ids and the record's answers) and, for the one write back to
the EHR, the call's FHIR token encrypted, until it is used or expires.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging

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
from sqlalchemy import create_engine
from sqlalchemy import delete
from sqlalchemy import event
from sqlalchemy import select
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import Engine

from cdshooks import settings

log = logging.getLogger(__name__)
EXTENSION_KEY = "cdshooks.store"

metadata = MetaData()

feedback = Table(
    "cdshooks_feedback",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("service_id", String(200), nullable=False),
    Column("card_uuid", String(200), nullable=False),
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
    Column("service_id", String(200), nullable=False),
    Column("hook", String(40)),
    Column("hook_instance", String(200)),
    Column("patient_id", String(200)),
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
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("content", Text, nullable=False),
    Column("token_cipher", Text),
    Column("token_expires_at", DateTime(timezone=True)),
)

jwt_replay = Table(
    "cdshooks_jwt_replay",
    metadata,
    Column("token_key", String(64), primary_key=True),
    Column("expires_at", DateTime(timezone=True), nullable=False),
)


def engine_url(url: str) -> str:
    """Return ``url`` with PostgreSQL mapped to the psycopg 3 driver we install."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


class Store:
    """The service's database: schema created on construction, one transaction per write."""

    def __init__(self, url: str):
        self.engine: Engine = _create_engine(engine_url(url))
        metadata.create_all(self.engine)
        self._insert = postgresql.insert if self.engine.dialect.name == "postgresql" else sqlite.insert

    def add_feedback(self, service_id: str, items: list[dict]) -> int:
        """Store feedback items idempotently (card uuid + outcome + timestamp); return new rows."""
        now = _utcnow()
        rows = [_feedback_row(service_id, item, now) for item in items]
        statement = self._insert(feedback).on_conflict_do_nothing(
            index_elements=["card_uuid", "outcome", "outcome_timestamp"]
        ).returning(feedback.c.id)  # rowcount is not reliable for ON CONFLICT across drivers
        inserted = 0
        with self.engine.begin() as conn:
            for row in rows:
                inserted += len(conn.execute(statement, row).all())
        return inserted

    def add_audit(self, row: dict) -> None:
        """Store one audit row for a hook call."""
        values = {**row, "at": row.get("at") or _utcnow()}
        for key in ("order_refs", "decisions", "card_ids"):
            if key in values and not isinstance(values[key], str):
                values[key] = json.dumps(values[key], separators=(",", ":"))
        with self.engine.begin() as conn:
            conn.execute(audit.insert(), values)

    def remember_token(self, key: str, expires_at: dt.datetime) -> bool:
        """Record a JWT (by ``iss`` + ``jti``) until it expires; False if it was already seen."""
        token_key = hashlib.sha256(key.encode()).hexdigest()
        now = _utcnow()
        statement = self._insert(jwt_replay).on_conflict_do_nothing(
            index_elements=["token_key"]).returning(jwt_replay.c.token_key)
        with self.engine.begin() as conn:
            conn.execute(delete(jwt_replay).where(jwt_replay.c.expires_at < now))
            inserted = conn.execute(statement, {"token_key": token_key, "expires_at": expires_at}).all()
        return bool(inserted)

    def add_forms(self, rows: list[dict]) -> None:
        """Store documentation-form launches (one transaction); drop expired ones and expired tokens."""
        now = _utcnow()
        with self.engine.begin() as conn:
            conn.execute(delete(forms).where(forms.c.expires_at < now))
            conn.execute(forms.update().where(forms.c.token_expires_at < now)
                         .values(token_cipher=None, token_expires_at=None))
            conn.execute(forms.insert(), rows)

    def form(self, ref: str) -> dict | None:
        """The unexpired form launch ``ref``, or None."""
        with self.engine.connect() as conn:
            row = conn.execute(select(forms).where(forms.c.ref == ref, forms.c.expires_at >= _utcnow())).first()
        return dict(row._mapping) if row else None

    def forget_form_token(self, ref: str) -> None:
        """Erase a launch's EHR token (after its one write, or when it failed for good)."""
        with self.engine.begin() as conn:
            conn.execute(forms.update().where(forms.c.ref == ref).values(token_cipher=None, token_expires_at=None))

    def rows(self, table: Table) -> list[dict]:
        """Return every row of ``table`` (for tests and the operator's inspection)."""
        with self.engine.connect() as conn:
            return [dict(row._mapping) for row in conn.execute(select(table).order_by(table.c[table.primary_key.columns.keys()[0]]))]

    def dispose(self) -> None:
        self.engine.dispose()


def _create_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 10})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True)


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    # WAL lets several gunicorn workers write; NORMAL keeps commits durable across a process crash.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


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


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def init_app(app: Flask) -> None:
    """Open the store named by ``CDSHOOKS_DATABASE_URL`` and create its schema."""
    app.extensions[EXTENSION_KEY] = Store(settings.get_from(app).DATABASE_URL)


def get() -> Store:
    """Return the store of the current app."""
    return current_app.extensions[EXTENSION_KEY]
