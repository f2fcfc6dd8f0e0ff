"""Opening the store's database: the engine, its bounds, the schema, and advice when it cannot start.

SQLite runs in WAL mode with a busy timeout; PostgreSQL connections are bounded by a watchdog that
closes the socket under a transaction that outlives its limit (a frozen server acknowledges every
packet, so nothing else ends the wait).
"""

from __future__ import annotations

import logging
import os
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import MetaData
from sqlalchemy import create_engine
from sqlalchemy import event
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import StaticPool

from cdshooks.cutoff import Cutoff

log = logging.getLogger(__name__)


class StoreStartError(RuntimeError):
    """The store cannot be opened at start-up; the message says what to do."""


def engine_url(url: str) -> str:
    """Return ``url`` with PostgreSQL mapped to the psycopg 3 driver we install."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


_SCHEMA_LOCK = 0x63647368  # "cdsh": the advisory lock instances take while creating the tables


def create_schema(engine: Engine, metadata: MetaData) -> None:
    """Create missing tables; instances starting together on an empty database must not race.

    PostgreSQL serialises them with a transaction-scoped advisory lock, so the second instance
    sees the first one's tables. SQLite's driver commits each CREATE on its own, so a creator
    that checked before another created a table fails with "already exists"; each retry sees at
    least one more table, so one retry per table is enough.
    """
    postgres = engine.dialect.name == "postgresql"
    for attempt in range(len(metadata.tables) + 1):
        try:
            with engine.begin() as conn:
                if postgres:
                    conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _SCHEMA_LOCK})
                metadata.create_all(conn)
            return
        except OperationalError:
            if postgres or attempt == len(metadata.tables):
                raise


@contextmanager
def watchdog(conn, timeout_s: float):
    """Shut the connection's socket down if the transaction outlives ``timeout_s``.

    A stopped or frozen PostgreSQL still has its kernel acknowledge every packet, so neither TCP
    keep-alives nor ``tcp_user_timeout`` ever fire, and libpq has no client-side statement
    timeout: closing the socket under the waiting call is the one way to end the wait.  (SQLite
    is bounded by ``busy_timeout`` instead.)
    """
    pgconn = getattr(conn.connection.dbapi_connection, "pgconn", None)
    if pgconn is None:
        yield
        return
    cutoff = Cutoff()
    try:
        cutoff.watch(pgconn.socket)
        cutoff.arm(timeout_s, "store-watchdog")
        yield
    finally:
        cutoff.close()
        if cutoff.fired:
            log.error("store: a transaction outlived its %.1f s limit; its connection was closed", timeout_s)


def create(url: str, timeout_s: float) -> Engine:
    if url.startswith("sqlite"):
        memory = make_url(url).database in (None, "", ":memory:")
        # one in-memory database shared by every thread (the audit writer's too), not one per thread
        shared = {"poolclass": StaticPool} if memory else {}
        connect = {"timeout": timeout_s, **({"check_same_thread": False} if memory else {})}
        engine = create_engine(url, connect_args=connect, hide_parameters=True, **shared)
        event.listen(engine, "connect", lambda conn, _record: _sqlite_pragmas(conn, timeout_s))
        return engine
    # No pool_pre_ping: its SELECT 1 would run before the watchdog can guard it; a connection
    # the server dropped fails its transaction once (503 / audit retry) and is replaced.
    return create_engine(url, hide_parameters=True, pool_timeout=timeout_s, pool_recycle=1800,
                         connect_args={"connect_timeout": max(1, round(timeout_s))})


def _sqlite_pragmas(dbapi_connection, timeout_s: float) -> None:
    # WAL lets several gunicorn workers write; each transaction chooses how hard it syncs
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout={int(timeout_s * 1000)}")  # first: WAL itself may wait for a lock
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.close()


def shared_connection(engine: Engine) -> bool:
    return isinstance(engine.pool, StaticPool)


def sqlite_file(engine: Engine) -> Path | None:
    database = engine.url.database if engine.dialect.name == "sqlite" else None
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database).resolve()


def file_identity(path: Path | None) -> tuple[int, int] | None:
    if path is None:
        return None
    try:
        stat = path.stat()
    except OSError:
        return (-1, -1)
    return stat.st_dev, stat.st_ino


def prepare_folder(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreStartError(_folder_advice(folder, exc.strerror or str(exc))) from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise StoreStartError(_folder_advice(folder, "not writable"))


def _folder_advice(folder: Path, why: str) -> str:
    return (f"cannot use the SQLite folder {folder}: {why} (this process runs as uid {os.getuid()}). "
            f"Make it writable for that user (for a Docker bind mount: `chown {os.getuid()} <host folder>` "
            f"or run the container with `--user $(id -u)`), or set CDSHOOKS_DATABASE_URL to another "
            f"database.")


def start_advice(sqlite_file: Path | None, exc: SQLAlchemyError) -> str:
    if sqlite_file is not None:
        return _folder_advice(sqlite_file.parent, f"cannot create {sqlite_file.name} ({type(exc).__name__})")
    return (f"cannot open the database named by CDSHOOKS_DATABASE_URL ({type(exc).__name__}: "
            f"{getattr(exc, 'orig', exc)}); check that it is reachable and the user may create tables.")
