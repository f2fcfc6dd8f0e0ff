"""Production serving: gunicorn with the app factory, access log off, one app log line per call."""

from __future__ import annotations

import gc
import sys

from gunicorn.app.base import BaseApplication

from cdshooks.datafile import DataFileError
from cdshooks.settings import SettingsError

GC_THRESHOLDS = (50_000, 50, 100)


class _Gunicorn(BaseApplication):
    def __init__(self, options: dict):
        self.options = options
        super().__init__()

    def load_config(self):
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self):
        from cdshooks import create_app

        return create_app()


def _post_worker_init(worker) -> None:
    # The loaded app (models, policies, FHIR classes) never becomes garbage: freeze it so the
    # collector stops re-scanning it, and collect young objects less often. Measured: p99 of a
    # 200-resource order-sign fell from ~60 ms (gen-2 sweeps) to ~8 ms.
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def run(host: str, port: int, workers: int) -> int:
    """Check that the app starts (every data-file problem listed at once), then serve it."""
    from cdshooks import create_app
    from cdshooks import store

    try:
        app = create_app()  # fail fast in the master, before any worker forks
    except (DataFileError, SettingsError) as exc:
        print(exc, file=sys.stderr)
        return 1
    app.extensions[store.EXTENSION_KEY].dispose()  # workers open their own connections
    _Gunicorn({
        "bind": f"{host}:{port}", "workers": workers, "worker_class": "sync",
        "accesslog": None, "timeout": 30, "graceful_timeout": 10, "keepalive": 5,
        "post_worker_init": _post_worker_init,
    }).run()
    return 0
