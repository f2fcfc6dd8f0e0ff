"""Production serving: gunicorn, gevent workers, the app loaded once in the master.

``cdshooks serve`` patches the standard library for gevent before anything else is imported (see
``cli._serve``), loads and warms the app in the gunicorn master, and forks workers from it
(:mod:`cdshooks.serve.worker`).  SIGHUP reloads: the master builds a new app from the files first; if
any file is broken it logs every problem (``file:line``) and keeps serving the last good
configuration, otherwise new workers start with the new app and the old ones finish their calls.
"""

from __future__ import annotations

import gc
import json
import logging
import os
import secrets
import sys

from gunicorn.app.base import BaseApplication

from cdshooks.errors import StoreUnavailable
from cdshooks.files.datafile import DataFileError
from cdshooks.settings import SettingsError
from cdshooks.store import db as store
from cdshooks.store.connect import StoreStartError

log = logging.getLogger(__name__)


class _Gunicorn(BaseApplication):
    def __init__(self, options: dict, app):
        self.options = options
        super().__init__()
        self.callable = app

    def load_config(self):
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self):
        return self.callable

    def reload(self):
        """SIGHUP: swap in a new app only if every file loads; else keep the last good one."""
        super().reload()
        try:
            app = load_app()
        except (DataFileError, SettingsError, StoreStartError) as exc:
            problems = getattr(exc, "problems", None) or [exc]
            log.error("reload refused: %d problem(s); still serving the last good configuration",
                      len(problems))
            for problem in problems:
                log.error("reload: %s", problem)
            return
        old, self.callable = self.callable, app
        _release(old)
        log.info("reloaded: %d policies", len(_registry(app).policies.by_id))


def load_app():
    """Create the app, warm it and leave no connection open (workers open their own)."""
    from cdshooks import create_app

    app = create_app()
    warm_up(app)
    app.extensions[store.EXTENSION_KEY].engine.dispose()
    gc.unfreeze()  # the previous app (if any) may now be collected
    freeze_heap()
    return app


def _release(app) -> None:
    app.extensions[store.EXTENSION_KEY].engine.dispose()


def _registry(app):
    from cdshooks import registry

    with app.app_context():
        return registry.get()


def _post_fork(_server, worker) -> None:
    worker.app.callable.extensions[store.EXTENSION_KEY].after_fork()


def _post_worker_init(worker) -> None:
    """Open this worker's database connection before the first call (and say if it cannot write)."""
    try:
        worker.wsgi.extensions[store.EXTENSION_KEY].check_writable()
    except StoreUnavailable as exc:
        log.error("worker %s: %s", worker.pid, exc.diagnostics)


def freeze_heap() -> None:
    """Move everything alive after start-up out of the collector's sight (before workers fork).

    The loaded app (models, policies, compiled paths) never becomes garbage, yet every full
    collection re-scanned it: p99 of a 200-resource order-sign was ~60 ms, ~8 ms frozen. Raising
    the collection thresholds as well bought nothing and let RSS grow 15 % before levelling off.
    """
    gc.collect()
    gc.freeze()


def warm_up(app) -> int:
    """Evaluate the first test case of each policy once, before the first clinician's request.

    Lazy imports, compiled caches and allocator pools fill here instead of in the first calls.
    Nothing is audited or logged as a hook call. Returns how many requests were evaluated.
    """
    from cdshooks import pipeline
    from cdshooks import registry
    from cdshooks import settings
    from cdshooks.errors import CdsHooksError
    from cdshooks.testing import cases

    with app.app_context():
        config, loaded = settings.get(), registry.get()
    policies = config.POLICIES
    suites, problems = cases.load_suites(policies)
    done = 0
    for _, suite in [] if problems else suites:
        case = suite.cases[0]
        body, _ = cases.request_for(policies, suite.policy, case, loaded.templates)
        service = next(s for s in loaded.services.values() if s.hook == case.hook)
        try:
            pipeline.answer(loaded, config, pipeline.offline_call(service, body, config))  # no launch kept
            done += 1
        except CdsHooksError as exc:
            log.warning("warm-up request for %s refused: %s", suite.policy, exc.diagnostics)
    return done


def options(host: str, port: int, workers: int) -> dict:
    """The gunicorn settings of ``cdshooks serve``."""
    return {
        "bind": f"{host}:{port}", "workers": workers, "worker_class": "cdshooks.serve.worker.Worker",
        "worker_connections": 1000, "preload_app": True, "post_fork": _post_fork,
        "post_worker_init": _post_worker_init,
        "control_socket_disable": True,  # signals are the interface; no socket in $HOME
        "logger_class": "cdshooks.serve.worker.GunicornLogger", "accesslog": None,
        "timeout": 30, "graceful_timeout": 10,
        "keepalive": 5,  # also the time a request head may take to arrive (gevent worker)
        "limit_request_line": 8190, "limit_request_fields": 100, "limit_request_field_size": 8190,
    }


def run(host: str, port: int, workers: int, reload: bool = False) -> int:
    """Check that the app starts (every data-file problem listed at once), then serve it."""
    # Workers must share the key that encrypts the EHR tokens form launches keep (forms.py): without
    # a configured one, the master makes one for this run (a reload keeps it) and workers inherit it.
    os.environ.setdefault("CDSHOOKS_SECRET_KEY", json.dumps(secrets.token_urlsafe(32)))
    try:
        app = load_app()  # fail fast in the master, before any worker forks
    except (DataFileError, SettingsError, StoreStartError) as exc:
        print(exc, file=sys.stderr)
        return 1
    settings = options(host, port, workers)
    if reload:  # development: a watcher in the master sends the SIGHUP reload above on every change
        from cdshooks.serve import watch

        settings["when_ready"] = watch.when_ready(app)
    _Gunicorn(settings, app).run()
    return 0
