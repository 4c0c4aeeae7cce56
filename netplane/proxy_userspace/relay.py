"""Moves bytes between two connected TCP sockets with splice(2), so that the payload never
enters Python: each direction splices socket → pipe → socket in the kernel, and Python
only reacts to readiness (uvloop's level-triggered watchers).

Hand-written rather than asyncio transports: a transport copies every chunk into a
Python `bytes` and back (bench/proxy_userspace.py measures the difference). Per direction:
- read when the pipe is empty; after a read, flush at once;
- if the destination is full, stop reading the source and wait for the destination to be
  writable (backpressure both ways, bounded by one pipe per direction);
- end of stream half-closes the destination (shutdown SHUT_WR) once the pipe is drained,
  so protocols that half-close keep working; the relay ends when both directions ended;
- a reset or error on either side closes both.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import logging
import os
import socket
import struct
from collections.abc import Callable

log = logging.getLogger(__name__)

SPLICE_FLAGS = os.SPLICE_F_MOVE | os.SPLICE_F_NONBLOCK
F_SETPIPE_SZ = 1031
# Large enough that a bulk transfer costs few syscalls per MB, small enough that many idle
# connections do not pin much kernel memory (a pipe's pages are allocated as data arrives).
PIPE_SIZE = 256 * 1024
_FATAL = (ConnectionResetError, BrokenPipeError, ConnectionAbortedError, TimeoutError)
_LINGER_RESET = struct.pack("ii", 1, 0)  # close() then sends a reset, not a FIN


class PipePool:
    """Pipes are reused across connections: creating one costs two syscalls plus one to
    size it, which matters when every request is a new connection."""

    def __init__(self, keep: int = 256) -> None:
        self._free: list[tuple[int, int]] = []
        self._keep = keep
        self.created = 0

    def get(self) -> tuple[int, int]:
        if self._free:
            return self._free.pop()
        r, w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        # Over /proc/sys/fs/pipe-max-size for this user, the default 64 KiB works too.
        with contextlib.suppress(OSError):
            fcntl.fcntl(w, F_SETPIPE_SZ, PIPE_SIZE)
        self.created += 1
        return r, w

    def put(self, pipe: tuple[int, int], empty: bool) -> None:
        if empty and len(self._free) < self._keep:
            self._free.append(pipe)
        else:
            os.close(pipe[0])
            os.close(pipe[1])

    def close(self) -> None:
        for r, w in self._free:
            os.close(r)
            os.close(w)
        self._free.clear()


class _Direction:
    __slots__ = ("buffered", "done", "dst", "eof", "pipe", "relay", "src", "total")

    def __init__(self, relay: Relay, src: socket.socket, dst: socket.socket, pipe: tuple[int, int]) -> None:
        self.relay = relay
        self.src = src
        self.dst = dst
        self.pipe = pipe
        self.buffered = 0
        self.eof = False
        self.done = False
        self.total = 0

    def on_readable(self) -> None:
        try:
            n = os.splice(self.src.fileno(), self.pipe[1], PIPE_SIZE, flags=SPLICE_FLAGS)
        except BlockingIOError:
            return
        except _FATAL:
            self.relay.abort()
            return
        except OSError as exc:
            self.relay.abort(exc)
            return
        if n == 0:
            self.eof = True
            self.relay.loop.remove_reader(self.src.fileno())
        else:
            self.buffered += n
            self.total += n
        self.flush()

    def flush(self) -> None:
        """Moves what the pipe holds to the destination; on a full destination, parks the
        source until the destination drains."""
        loop = self.relay.loop
        while self.buffered:
            try:
                n = os.splice(self.pipe[0], self.dst.fileno(), self.buffered, flags=SPLICE_FLAGS)
            except BlockingIOError:
                if not self.eof:
                    loop.remove_reader(self.src.fileno())
                loop.add_writer(self.dst.fileno(), self.on_writable)
                return
            except _FATAL:
                self.relay.abort()
                return
            except OSError as exc:
                self.relay.abort(exc)
                return
            self.buffered -= n
        if self.eof:
            self._finish()

    def on_writable(self) -> None:
        self.relay.loop.remove_writer(self.dst.fileno())
        self.flush()
        if not self.buffered and not self.eof and not self.relay.closed:
            self.relay.loop.add_reader(self.src.fileno(), self.on_readable)

    def _finish(self) -> None:
        if self.done:
            return
        self.done = True
        # The peer may be gone already; the other direction will notice.
        with contextlib.suppress(OSError):
            self.dst.shutdown(socket.SHUT_WR)
        self.relay.direction_done()


class Relay:
    """Relays between `client` and `upstream` until both directions end; then closes both
    sockets and calls `on_close(relay)`. Both sockets must be connected and non-blocking."""

    __slots__ = ("_pool", "backward", "client", "closed", "endpoint", "forward", "loop",
                 "on_close", "upstream")

    def __init__(self, loop: asyncio.AbstractEventLoop, pool: PipePool, client: socket.socket,
                 upstream: socket.socket, endpoint: str, on_close: Callable[[Relay], None]) -> None:
        self.loop = loop
        self._pool = pool
        self.client = client
        self.upstream = upstream
        self.endpoint = endpoint
        self.on_close = on_close
        self.closed = False
        self.forward = _Direction(self, client, upstream, pool.get())
        self.backward = _Direction(self, upstream, client, pool.get())

    def start(self) -> None:
        self.loop.add_reader(self.client.fileno(), self.forward.on_readable)
        self.loop.add_reader(self.upstream.fileno(), self.backward.on_readable)

    @property
    def bytes_relayed(self) -> int:
        return self.forward.total + self.backward.total

    def direction_done(self) -> None:
        if self.forward.done and self.backward.done:
            self.close()

    def abort(self, exc: OSError | None = None) -> None:
        """A reset or error: pass the reset on to both sides (SO_LINGER 0) and close."""
        for sock in (self.client, self.upstream):
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
        if exc is not None and exc.errno not in (errno.ENOTCONN, errno.EBADF):
            log.debug("relay to %s ended: %s", self.endpoint, exc)
        self.close()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        loop = self.loop
        for sock in (self.client, self.upstream):
            fd = sock.fileno()
            if fd >= 0:
                loop.remove_reader(fd)
                loop.remove_writer(fd)
            sock.close()
        for d in (self.forward, self.backward):
            self._pool.put(d.pipe, empty=d.buffered == 0)
        self.on_close(self)
