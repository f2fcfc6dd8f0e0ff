"""The audit trail off the response path: a bounded queue drained by one background writer.

A hook answer never waits on the database.  Each row is queued (never blocking) and a writer
thread commits queued rows in batches.  While the database is unavailable the writer keeps its
batch and retries with back-off; rows arriving meanwhile wait in the queue, and once the queue is
full further rows are dropped, each drop logged (an ERROR line naming the hookInstance).

What can be lost: rows still queued when the process dies without a clean exit (SIGKILL, OOM,
power loss) — at most the queue size, normally the last few milliseconds of calls.  On a clean
exit (SIGTERM, reload) the writer gets a few seconds to drain the queue first.
"""

from __future__ import annotations

import atexit
import datetime as dt
import logging
import os
import queue
import threading
import time

from cdshooks.errors import StoreUnavailable

log = logging.getLogger(__name__)

BATCH = 200
IDLE_EXIT_S = 30.0          # an idle writer thread ends; the next row starts a new one
RETRY_FIRST_S, RETRY_MAX_S = 0.5, 30.0
EXIT_DRAIN_S = 5.0          # for all writers of the process together
_exit_deadline: list[float] = []


class AuditWriter:
    """Queue audit rows for ``store.write_audit``; one writer thread per process, started lazily."""

    def __init__(self, store, capacity: int):
        self.store = store
        self.capacity = capacity
        self.dropped = 0
        self.failing = False  # the last write failed; the writer is waiting to retry
        self._queue: queue.Queue = queue.Queue(capacity)
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()
        self._closed = False
        atexit.register(self._drain_at_exit)

    def submit(self, row: dict) -> None:
        """Queue ``row`` (stamped now); drop it, logging the drop, if the queue is full."""
        row = {**row, "at": row.get("at") or dt.datetime.now(dt.timezone.utc)}
        try:
            self._queue.put_nowait(row)
        except queue.Full:
            self.dropped += 1
            log.error("audit row dropped for hookInstance=%s: %d rows already wait for the database "
                      "(%d dropped so far)", row.get("hook_instance"), self.capacity, self.dropped)
            return
        self._ensure_writer()

    def flush(self, timeout: float) -> bool:
        """Wait until every queued row is written (or given up); False if ``timeout`` passed first."""
        deadline = time.monotonic() + timeout
        with self._queue.all_tasks_done:
            while self._queue.unfinished_tasks:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._queue.all_tasks_done.wait(remaining)
        return True

    def pending(self) -> int:
        return self._queue.unfinished_tasks

    def close(self) -> None:
        self._closed = True

    def after_fork(self) -> None:
        """A forked worker starts with an empty queue and no writer (threads do not survive fork)."""
        self._queue = queue.Queue(self.capacity)
        self._thread, self._pid, self._lock = None, os.getpid(), threading.Lock()

    def _ensure_writer(self) -> None:
        if self._pid != os.getpid():
            self.after_fork()
        # no Thread.is_alive(): under gevent it yields to the event loop, so the answer waited for
        # the writer's commit; the writer clears _thread itself whenever it ends
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="audit-writer", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        try:
            self._loop()
        except Exception:  # never expected; a dead writer must not go unnoticed
            log.exception("audit writer stopped")
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
            batch = [first]
            while len(batch) < BATCH:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            self._write(batch)

    def _write(self, batch: list[dict]) -> None:
        delay = RETRY_FIRST_S
        try:
            while True:
                try:
                    self.store.write_audit(batch)
                    self.failing = False
                    return
                except StoreUnavailable as exc:
                    self.failing = True
                    if not exc.transient:
                        log.error("audit: %d rows refused by the database and dropped", len(batch))
                        return
                    if self._closed:
                        log.error("audit: %d rows not written (store closed while unavailable)", len(batch))
                        return
                    log.error("audit: %d rows wait for the database; retrying in %.1f s", len(batch), delay)
                    time.sleep(delay)
                    delay = min(delay * 2, RETRY_MAX_S)
        finally:
            for _ in batch:
                self._queue.task_done()

    def _drain_at_exit(self) -> None:
        if self._pid != os.getpid() or not self._queue.unfinished_tasks:
            return
        if not _exit_deadline:
            _exit_deadline.append(time.monotonic() + EXIT_DRAIN_S)
        if self.failing or not self.flush(_exit_deadline[0] - time.monotonic()):
            log.error("audit: %d rows not written at exit", self._queue.unfinished_tasks)
