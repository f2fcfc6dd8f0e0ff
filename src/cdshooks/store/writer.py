"""Writes off the response path: audit rows and form launches, queued and committed in batches.

A hook answer never waits on the database.  Each row is queued (never blocking) and one writer
thread per process commits what the queue holds in one transaction, after gathering rows for up
to ``linger_s`` (``CDSHOOKS_STORE_BATCH_MS``): one commit per batch instead of one per call is
what keeps the store's cost out of the answer (issue 16: a commit per call, even on a native
thread, cost a one-order call ~3 ms for its audit row and ~2 ms for its form launch).  Once a
whole batch waits, the writer stops gathering and writes: under saturating load the backlog stays
at about one batch instead of growing until rows are dropped.  While the
database is unavailable the writer keeps its batch and retries with back-off; rows arriving
meanwhile wait in the queue, and once the queue is full further rows are dropped, each drop
logged (an ERROR naming the hookInstance; a form launch that cannot be queued is refused, so its
card links the blank form).  A queued form launch is readable at once in this process
(:meth:`Writer.waiting`); other workers see it once its batch commits.

What can be lost: rows still queued when the process dies without a clean exit (SIGKILL, OOM,
power loss) — at most the queue size, normally the last ``linger_s`` of calls.  On a clean exit
(SIGTERM, reload) the writer gets a few seconds to drain the queue first.
"""

from __future__ import annotations

import atexit
import datetime as dt
import logging
import os
import queue
import threading
import time
from collections.abc import Callable

from cdshooks.errors import StoreUnavailable

log = logging.getLogger(__name__)

AUDIT, FORM = "audit", "form"   # the tables a batch writes (Store.write_rows)
BATCH = 1000               # rows per transaction, at most
GATHER_STEP_S = 0.02       # how often a gathering writer looks whether a whole batch waits
IDLE_EXIT_S = 30.0          # an idle writer thread ends; the next row starts a new one
RETRY_FIRST_S, RETRY_MAX_S = 0.5, 30.0
EXIT_DRAIN_S = 5.0          # for all writers of the process together
_exit_deadline: list[float] = []


class Writer:
    """Queue rows for ``write(batch)`` (a list of ``(table, row)``); one writer thread per process,
    started lazily, gathering each batch for ``linger_s`` unless a flush is waiting."""

    def __init__(self, write: Callable[[list[tuple[str, dict]]], None], capacity: int, linger_s: float):
        self.write, self.capacity, self.linger_s = write, capacity, linger_s
        self.dropped = 0
        self.failing = False  # the last write failed; the writer is waiting to retry
        self._queue: queue.Queue = queue.Queue(capacity)
        self._forms: dict[str, dict] = {}   # ref -> form launch row, until its batch is written
        self._hurry = threading.Event()     # a flush is waiting: write without gathering
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()
        self._closed = False
        atexit.register(self._drain_at_exit)

    def submit_audit(self, row: dict) -> None:
        """Queue an audit ``row`` (stamped now); drop it, logging the drop, if the queue is full."""
        row = {**row, "at": row.get("at") or dt.datetime.now(dt.timezone.utc)}
        if not self._put(AUDIT, row):
            log.error("audit row dropped for hookInstance=%s: %d rows already wait for the database "
                      "(%d dropped so far)", row.get("hook_instance"), self.capacity, self.dropped)

    def submit_forms(self, rows: list[dict]) -> None:
        """Queue form launch rows, all or none; StoreUnavailable when they cannot be (their links
        would not work): the queue is full or the database is failing."""
        if self.failing:
            raise StoreUnavailable("the database is not answering; the form launches were not queued")
        if self._queue.maxsize - self._queue.qsize() < len(rows):
            raise StoreUnavailable(f"{self.capacity} rows already wait for the database; "
                                   "the form launches were not queued")
        for row in rows:
            self._forms[row["ref"]] = row
            if not self._put(FORM, row):   # another thread filled the queue since the check
                self._forms.pop(row["ref"], None)
                raise StoreUnavailable("the form launches were not queued")

    def waiting(self, ref: str) -> dict | None:
        """The form launch ``ref`` if this process queued it and it is not written yet."""
        return self._forms.get(ref)

    def flush(self, timeout: float) -> bool:
        """Wait until every queued row is written (or given up); False if ``timeout`` passed first."""
        deadline = time.monotonic() + timeout
        self._hurry.set()
        try:
            with self._queue.all_tasks_done:
                while self._queue.unfinished_tasks:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        return False
                    self._queue.all_tasks_done.wait(remaining)
            return True
        finally:
            self._hurry.clear()

    def pending(self) -> int:
        return self._queue.unfinished_tasks

    def close(self) -> None:
        self._closed = True
        self._hurry.set()

    def after_fork(self) -> None:
        """A forked worker starts with an empty queue and no writer (threads do not survive fork)."""
        self._queue, self._forms = queue.Queue(self.capacity), {}
        self._thread, self._pid, self._lock = None, os.getpid(), threading.Lock()

    def _put(self, table: str, row: dict) -> bool:
        if self._pid != os.getpid():
            self.after_fork()
        try:
            self._queue.put_nowait((table, row))
        except queue.Full:
            self.dropped += 1
            return False
        self._ensure_writer()
        return True

    def _ensure_writer(self) -> None:
        # no Thread.is_alive(): under gevent it yields to the event loop, so the answer waited for
        # the writer's commit; the writer clears _thread itself whenever it ends
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="store-writer", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        try:
            self._loop()
        except Exception:  # never expected; a dead writer must not go unnoticed
            log.exception("store writer stopped")
        finally:
            with self._lock:
                if self._thread is threading.current_thread():
                    self._thread = None

    def _loop(self) -> None:
        while not self._closed:
            try:
                first = self._queue.get(timeout=IDLE_EXIT_S)
            except queue.Empty:
                with self._lock:  # a row queued after this check starts a new writer
                    if self._queue.empty():
                        self._thread = None
                        return
                continue
            self._gather()
            batch = [first]
            while len(batch) < BATCH:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            self._write(batch)

    def _gather(self) -> None:
        """Wait up to ``linger_s`` for more rows, less once a whole batch waits (a backlog under
        load is written at once, or the writer falls behind) or a flush is waiting."""
        deadline = time.monotonic() + self.linger_s
        while self._queue.qsize() < BATCH - 1:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self._hurry.wait(min(remaining, GATHER_STEP_S)):
                return

    def _write(self, batch: list[tuple[str, dict]]) -> None:
        delay = RETRY_FIRST_S
        try:
            while True:
                try:
                    self.write(batch)
                    self.failing = False
                    return
                except StoreUnavailable as exc:
                    self.failing = True
                    if not exc.transient:
                        log.error("store writer: %d rows refused by the database and dropped", len(batch))
                        return
                    if self._closed:
                        log.error("store writer: %d rows not written (store closed while unavailable)", len(batch))
                        return
                    log.error("store writer: %d rows wait for the database; retrying in %.1f s", len(batch), delay)
                    time.sleep(delay)
                    delay = min(delay * 2, RETRY_MAX_S)
        finally:
            for table, row in batch:
                if table == FORM:
                    self._forms.pop(row["ref"], None)
                self._queue.task_done()

    def _drain_at_exit(self) -> None:
        if self._pid != os.getpid() or not self._queue.unfinished_tasks:
            return
        if not _exit_deadline:
            _exit_deadline.append(time.monotonic() + EXIT_DRAIN_S)
        if self.failing or not self.flush(_exit_deadline[0] - time.monotonic()):
            log.error("store writer: %d rows not written at exit", self._queue.unfinished_tasks)
