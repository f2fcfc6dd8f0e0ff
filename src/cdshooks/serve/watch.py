"""``cdshooks serve --reload`` (development): watch the data folders and reload when they change.

A thread in the gunicorn master polls the folders the app loads from (policies, mappings, value
sets, the site folder) once a second and, when any file was added, removed or changed, sends the
master SIGHUP — the same reload an operator triggers: the new configuration is validated first
and, when a file is broken, every problem is logged and the last good configuration keeps serving.
Polling (not inotify) keeps it dependency-free and works on every file system; a few hundred files
are stat()ed per second.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from pathlib import Path
from typing import Callable

log = logging.getLogger(__name__)

_SUFFIXES = (".yaml", ".yml", ".json")


def fingerprint(folders) -> frozenset:
    """(path, mtime, size) of every data file below ``folders`` — what a change changes."""
    out = set()
    for folder in folders:
        if folder is None or not Path(folder).is_dir():
            continue
        for root, _dirs, files in os.walk(folder):
            for name in files:
                if name.endswith(_SUFFIXES):
                    path = os.path.join(root, name)
                    try:
                        stat = os.stat(path)
                    except OSError:   # removed between listing and stat: the next poll sees it
                        continue
                    out.add((path, stat.st_mtime_ns, stat.st_size))
    return frozenset(out)


class Watcher:
    """Calls ``on_change`` once per settled change of the watched folders."""

    def __init__(self, folders, on_change: Callable[[], None], interval: float = 1.0):
        self.folders = [f for f in folders if f is not None]
        self.on_change = on_change
        self.interval = interval
        self._stop = threading.Event()
        self._last = fingerprint(self.folders)

    def poll(self) -> bool:
        """One look: True (and ``on_change`` called) when something changed since the last look."""
        now = fingerprint(self.folders)
        if now == self._last:
            return False
        self._last = now
        self.on_change()
        return True

    def start(self) -> threading.Thread:
        thread = threading.Thread(target=self._run, name="cdshooks-reload-watcher", daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.poll()
            except Exception:  # never let the watcher die silently: say so and keep watching
                log.exception("reload watcher: could not scan the data folders")


def folders_of(config) -> list[Path]:
    """The folders a configuration loads data files from."""
    valuesets = config.VALUESETS or config.MAPPINGS.parent / "valuesets"
    return [config.POLICIES, config.MAPPINGS, valuesets] + ([config.SITE] if config.SITE else [])


def send_hangup() -> None:
    log.info("data files changed: reloading (SIGHUP)")
    os.kill(os.getpid(), signal.SIGHUP)


def when_ready(app):
    """A gunicorn ``when_ready`` hook (runs in the master once it listens) starting the watcher
    over the folders ``app`` was loaded from."""
    from cdshooks import settings

    folders = folders_of(settings.get_from(app))

    def hook(_server) -> None:
        Watcher(folders, send_hangup).start()
        log.info("watching %s for changes (--reload)", ", ".join(str(f) for f in folders))

    return hook
