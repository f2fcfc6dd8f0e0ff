"""End blocking socket calls from outside: the one bound that holds against a peer that stalls.

A peer that stops answering but keeps its connection open (a frozen database; a FHIR server that
sends one byte a second) defeats per-call socket timeouts: each read succeeds or waits anew.
Shutting the socket down makes every pending and later read on it return at once, in whatever
thread or greenlet it blocks.  Sockets are held through duplicated descriptors, so shutting one
down can never hit an unrelated socket that reused a closed descriptor number.
"""

from __future__ import annotations

import os
import socket
import threading


class Cutoff:
    """Sockets to shut down together when ``fire()`` is called (or the timer of ``arm`` runs out)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._timer: threading.Timer | None = None
        self.fired = False

    def watch(self, fd: int) -> None:
        """Shut the socket behind ``fd`` down on ``fire()`` (at once if it already fired)."""
        sock = socket.socket(fileno=os.dup(fd))
        with self._lock:
            self._sockets.append(sock)
            if self.fired:
                _shut(sock)

    def arm(self, seconds: float, name: str) -> None:
        """Fire after ``seconds`` unless ``close()`` comes first."""
        self._timer = threading.Timer(max(0.0, seconds), self.fire)
        self._timer.name, self._timer.daemon = name, True
        self._timer.start()

    def fire(self) -> None:
        with self._lock:
            self.fired = True
            for sock in self._sockets:
                _shut(sock)

    def close(self) -> None:
        """Disarm and release the duplicated descriptors (the watched sockets stay as they are)."""
        if self._timer is not None:
            self._timer.cancel()
            if self._timer is not threading.current_thread():
                self._timer.join()
        with self._lock:
            for sock in self._sockets:
                sock.close()
            self._sockets.clear()

    def __enter__(self):
        return self

    def __exit__(self, *_exc):
        self.close()


def _shut(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:  # already closed by its owner
        pass
