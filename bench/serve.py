"""Serve the service or the floor for the benchmark on a socket the benchmark already bound.

``python bench/serve.py --fd N --workers 2 [--floor]``: the parent binds 127.0.0.1:0, listens and
passes the socket down, so the port is known before the server starts and no other process can
take it in between (picking a "free" port and binding it later races with everyone else).

Both servers get the gunicorn settings of ``cdshooks serve`` (:func:`cdshooks.serve.server.options`):
gevent workers, the same connection, keep-alive and timeout limits.  The service runs exactly as
``cdshooks serve`` does (app loaded and warmed in the master, its own worker class); the floor runs
gunicorn's plain gevent worker, since the service's worker reads its limits from the service's
settings, which the floor does not have.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from gevent import monkey

monkey.patch_all()   # as `cdshooks serve` does, before anything else is imported

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cdshooks import logsafe  # noqa: E402
from cdshooks.serve import server  # noqa: E402

FLOOR_ONLY = ("post_fork", "post_worker_init", "logger_class")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--fd", type=int, required=True)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--floor", action="store_true")
    args = parser.parse_args()
    options = {**server.options("127.0.0.1", 0, args.workers), "bind": f"fd://{args.fd}"}
    if args.floor:
        import floor

        options = {k: v for k, v in options.items() if k not in FLOOR_ONLY}
        server.freeze_heap()   # as the service's master does: without it, a full collection scanning
        # the start-up heap cost the floor ~55 % of its CPU at 1,000 resources (p90 ~29 ms)
        server._Gunicorn({**options, "worker_class": "gevent"}, floor.app).run()
        return 0
    logsafe.configure(20)
    app = server.load_app()
    server._Gunicorn(options, app).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
