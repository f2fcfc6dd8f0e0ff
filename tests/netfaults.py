"""Network faults for tests: a TCP proxy that can freeze, a server that drips, a bounded wait.

Everything listens on 127.0.0.1 with an ephemeral port and is closed by ``close()``.
"""

from __future__ import annotations

import select
import socket
import threading
import time


def finishes_within(seconds: float, function, *args, **kwargs):
    """Run ``function`` in a thread; return (finished, result or exception) after at most ``seconds``.

    A hang becomes a failed assertion instead of a test run that never ends.
    """
    outcome: dict = {}

    def target():
        try:
            outcome["value"] = function(*args, **kwargs)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller
            outcome["value"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    return not thread.is_alive(), outcome.get("value")


class _Listener:
    """A loopback listener that hands each accepted connection to ``_connected`` in its own thread."""

    def __init__(self):
        self._stop = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self.connections = 0
        self._sockets: list[socket.socket] = [self._listener]
        self._threads: list[threading.Thread] = []
        self._spawn(self._accept)

    def _spawn(self, target, *args) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _accept(self) -> None:
        while not self._stop.is_set():
            ready, _, _ = select.select([self._listener], [], [], 0.1)
            if not ready:
                continue
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            self.connections += 1
            self._sockets.append(client)
            self._connected(client)

    def _connected(self, client: socket.socket) -> None:
        raise NotImplementedError

    def close(self) -> None:
        self._stop.set()
        for sock in self._sockets:
            try:
                sock.close()
            except OSError:
                pass
        for thread in self._threads:
            thread.join(2)


class FreezableProxy(_Listener):
    """Forwards each connection to ``upstream``; ``freeze()`` stops forwarding without closing.

    A frozen proxy looks to the client exactly like a stopped database: connections stay open,
    the kernel acknowledges what is sent, and nothing ever comes back.
    """

    def __init__(self, upstream: tuple[str, int]):
        self.upstream = upstream
        self.frozen = threading.Event()
        super().__init__()

    def freeze(self) -> None:
        self.frozen.set()

    def thaw(self) -> None:
        self.frozen.clear()

    def _connected(self, client: socket.socket) -> None:
        if self.frozen.is_set():  # a frozen server still completes the TCP handshake
            return
        upstream = socket.create_connection(self.upstream)
        self._sockets.append(upstream)
        self._spawn(self._pump, client, upstream)

    def _pump(self, a: socket.socket, b: socket.socket) -> None:
        peers = {a: b, b: a}
        while not self._stop.is_set():
            if self.frozen.is_set():
                time.sleep(0.05)
                continue
            try:
                ready, _, _ = select.select(list(peers), [], [], 0.1)
                for sock in ready:
                    data = sock.recv(65536)
                    if not data:
                        return
                    peers[sock].sendall(data)
            except OSError:
                return


class DrippingServer(_Listener):
    """An HTTP server that sends ``head`` then ``body`` one byte every ``interval`` seconds."""

    def __init__(self, body: bytes = b'{"resourceType": "Bundle", "type": "searchset"}', interval: float = 0.2,
                 drip_head: bool = False):
        self.body, self.interval, self.drip_head = body, interval, drip_head
        super().__init__()

    def _connected(self, client: socket.socket) -> None:
        self._spawn(self._serve, client)

    def _serve(self, client: socket.socket) -> None:
        try:
            client.recv(65536)
            head = (f"HTTP/1.1 200 OK\r\nContent-Type: application/fhir+json\r\n"
                    f"Content-Length: {len(self.body) * 100}\r\n\r\n").encode()
            if not self.drip_head:
                client.sendall(head)
            for byte in (head if self.drip_head else b"") + self.body * 100:
                if self._stop.wait(self.interval):
                    return
                client.sendall(bytes([byte]))
        except OSError:
            return
