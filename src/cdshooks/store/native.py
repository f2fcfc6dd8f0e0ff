"""Database calls off gevent's event loop: on native threads when gevent has patched this process.

Under ``cdshooks serve`` every greenlet of a worker shares one OS thread, and a driver call that
blocks (SQLite's commit and fsync, psycopg waiting for PostgreSQL) stops all of them: the answer
being sent and every other call of the worker waited for the audit writer's commit and for the
form-launch write (issue 16: ~0.8 ms and ~3 ms of a call). On a native thread the driver releases
the GIL while it waits; the greenlet that asked waits cooperatively and the others go on. Without
gevent (tests, the CLI) threads are native already and the standard executor is used.
"""

from __future__ import annotations

import sys
from concurrent.futures import Executor
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

# While a native thread writes, the event loop hands it the GIL after this long instead of 5 ms.
WRITING_SWITCH_S = 0.0005


def patched() -> bool:
    """Whether gevent has turned this process's threads into greenlets (``cdshooks serve``)."""
    try:
        from gevent import monkey
    except ImportError:  # pragma: no cover - gevent is a dependency
        return False
    return monkey.is_module_patched("threading")


def executor(workers: int, name: str) -> Executor:
    """A pool of native threads whose futures a greenlet can wait on without blocking the others."""
    if patched():
        from gevent.threadpool import ThreadPoolExecutor as NativeExecutor

        return NativeExecutor(workers)
    return ThreadPoolExecutor(workers, thread_name_prefix=name)


@contextmanager
def prompt_handoffs():
    """Let a native thread that writes get the GIL back quickly while it runs.

    sqlite3 (and psycopg) give the GIL up around every row and wait for it again; with a busy
    event loop holding it, each wait lasts the whole switch interval (5 ms), so the background
    writer managed ~200 rows a second and fell ever further behind saturating load (issue 16).
    Only for the writes: at c=1 a short interval all the time cost ~4 % of a one-order call.
    """
    before = sys.getswitchinterval()
    sys.setswitchinterval(WRITING_SWITCH_S)
    try:
        yield
    finally:
        sys.setswitchinterval(before)
