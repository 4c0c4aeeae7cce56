"""A thread relay that makes a server on the host's loopback reachable at a socket inside
another network namespace (the tests' apiserver, for a node namespace), so that tests add
nothing to the host namespace."""

from __future__ import annotations

import contextlib
import socket
import threading


class Relay:
    """Forwards TCP connections accepted by `listener` (a socket in another network
    namespace) to `target` in ours."""

    def __init__(self, listener: socket.socket, target: tuple[str, int]) -> None:
        self.listener = listener
        self.target = target
        self._stop = threading.Event()
        self._conns: list[socket.socket] = []
        listener.settimeout(0.2)
        self._thread = threading.Thread(target=self._accept, name="relay", daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except (TimeoutError, OSError):
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                conn.close()
                continue
            conn.settimeout(None)
            upstream.settimeout(None)
            self._conns += [conn, upstream]
            for a, b in ((conn, upstream), (upstream, conn)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.listener.close()
        for conn in self._conns:
            with contextlib.suppress(OSError):
                conn.close()
