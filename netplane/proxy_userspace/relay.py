"""Moves bytes between two connected TCP sockets with as little Python per byte as the
kernel allows. Python only reacts to readiness (one epoll set, netplane/proxy_userspace/
poller.py); per direction, the bytes take one of two paths:
- small messages (requests, responses) are copied through one buffer shared by every
  relay of the loop: one recv_into and one send, the fewest syscalls for a few KB. While
  a direction is in that plain state the poller's C loop (_pump.c) does this copy without
  Python, and calls back `on_pumped` for a copy that needs the state machine below;
- once a read fills that buffer, the direction is a bulk stream and switches for good to
  splice(2), socket -> pipe -> socket, so the payload never enters Python at all.

Hand-written on raw sockets rather than asyncio transports: a transport turns every
chunk into a new `bytes` object and cannot splice, and asyncio's per-fd watchers cost
several epoll_ctl calls per connection (bench/proxy_userspace.py measures all of this
against HAProxy). Both paths keep:
- backpressure: a full destination parks the source until the destination drains, so
  at most one buffer's worth per direction waits in the proxy;
- half-close: the end of one direction shuts the other side's write half (SHUT_WR) once
  drained; the relay ends when both directions ended;
- resets: an error on either side closes both with a reset (SO_LINGER 0).

Both sockets are non-blocking (the listener makes them so; splice needs it), and every
copy call passes MSG_DONTWAIT as well.
"""

from __future__ import annotations

import _socket
import contextlib
import errno
import fcntl
import logging
import os
import select
import struct
from collections.abc import Callable

from netplane.proxy_userspace.poller import COPY_SIZE, IN, OUT, Poller

log = logging.getLogger(__name__)

SPLICE_FLAGS = os.SPLICE_F_MOVE | os.SPLICE_F_NONBLOCK
F_SETPIPE_SZ = 1031
# Large enough that a bulk transfer costs few syscalls per MB, small enough that many idle
# connections do not pin much kernel memory (a pipe's pages are allocated as data arrives).
PIPE_SIZE = 256 * 1024
_DONTWAIT = _socket.MSG_DONTWAIT
_NOSIGNAL_DONTWAIT = _socket.MSG_DONTWAIT | _socket.MSG_NOSIGNAL
# A peer's reset or hang-up ends a relay as a matter of course: not worth a log line.
_ROUTINE = (ConnectionResetError, BrokenPipeError, ConnectionAbortedError, TimeoutError)
_ROUTINE_ERRNOS = (errno.ENOTCONN, errno.EBADF)
_LINGER_RESET = struct.pack("ii", 1, 0)  # close() then sends a reset, not a FIN
_TROUBLE = select.EPOLLERR | select.EPOLLHUP


class PipePool:
    """Pipes are reused across connections: creating one costs three syscalls."""

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
    __slots__ = ("buffered", "dfd", "done", "dst", "eof", "other", "parked", "pending", "pipe", "recv_into",
                 "relay", "send", "sfd", "src", "view")

    def __init__(self, relay: Relay, src: _socket.socket, dst: _socket.socket) -> None:
        self.relay = relay
        self.src, self.dst = src, dst
        self.sfd, self.dfd = src.fileno(), dst.fileno()
        # Bound once: the copy path runs per message, and each lookup costs.
        self.recv_into, self.send = src.recv_into, dst.send
        self.view = relay.poller.view
        self.pipe: tuple[int, int] | None = None  # set once the direction turns bulk
        self.buffered = 0  # bytes in the pipe
        self.pending: bytes | None = None  # copied bytes the destination did not take yet
        self.parked = False  # the destination is full: the source is not read
        self.eof = False
        self.done = False

    @property
    def reading(self) -> bool:
        return not (self.eof or self.parked)

    def sync_copying(self) -> None:
        """Tells the poller whether the C loop may copy this direction: only in the plain
        state (reading, nothing held back, not bulk)."""
        relay = self.relay
        if self.pipe is None and not (self.eof or self.parked or relay.closed):
            relay.poller.copying(self.sfd, self.dfd, self.on_pumped)
        else:
            relay.poller.not_copying(self.sfd)

    def on_pumped(self, n: int, sent: int, err: int, leftover: bytes) -> None:
        """The C loop read `n` bytes of this direction (0: end of stream, -1: recv failed
        with `err`) and sent `sent` of them (-1: send failed with `err`); `leftover` are
        the bytes it could not send. The same steps as the end of on_readable."""
        if n < 0 or sent < 0:
            self.relay.abort(OSError(err, os.strerror(err)))  # the errno's own subclass
            return
        if n == 0:
            self._at_eof()
            return
        self._copied(n, leftover)

    def _copied(self, n: int, leftover: bytes | memoryview) -> None:
        """After a copy of `n` bytes of which `leftover` were not sent: a read that filled
        the buffer turns the stream bulk, and what the destination did not take waits."""
        if n == COPY_SIZE:
            self._turn_bulk()
        if leftover:
            self.pending = bytes(leftover)
            self._park()

    def on_event(self, ev: int) -> None:
        """Readiness of this direction's source, which is the other direction's destination."""
        if ev & OUT:
            self.other.on_writable()
        if self.relay.closed:
            return
        if not (self.eof or self.parked):
            self.on_readable()
        elif ev & _TROUBLE and not ev & (IN | OUT):
            self.relay.abort()  # hung up or failed while nothing waits on it: nothing to save

    def on_readable(self) -> None:
        if self.pipe is not None:
            self._splice_in()
            return
        view = self.view
        try:
            n = self.recv_into(view, 0, _DONTWAIT)
        except BlockingIOError:
            return
        except OSError as exc:
            self.relay.abort(exc)
            return
        if n == 0:
            self._at_eof()
            return
        try:
            sent = self.send(view[:n], _NOSIGNAL_DONTWAIT)
        except BlockingIOError:
            sent = 0
        except OSError as exc:
            self.relay.abort(exc)
            return
        if n == COPY_SIZE or sent < n:
            self._copied(n, view[sent:n])

    def _turn_bulk(self) -> None:
        self.pipe = self.relay.pool.get()
        self.relay.poller.not_copying(self.sfd)

    def _splice_in(self) -> None:
        assert self.pipe is not None
        try:
            n = os.splice(self.sfd, self.pipe[1], PIPE_SIZE, flags=SPLICE_FLAGS)
        except BlockingIOError:
            return
        except OSError as exc:
            self.relay.abort(exc)
            return
        if n == 0:
            self._at_eof()
            return
        self.buffered += n
        if self._flush_pipe():
            self._park()

    def _flush_pipe(self) -> bool:
        """Moves the pipe's bytes on; True if the destination is full."""
        assert self.pipe is not None
        while self.buffered:
            try:
                n = os.splice(self.pipe[0], self.dfd, self.buffered, flags=SPLICE_FLAGS)
            except BlockingIOError:
                return True
            except OSError as exc:
                self.relay.abort(exc)
                return False
            self.buffered -= n
        return False

    def _flush_pending(self) -> bool:
        """Sends the copied bytes left over; True if the destination is full."""
        assert self.pending is not None
        try:
            sent = self.dst.send(self.pending, _NOSIGNAL_DONTWAIT)
        except BlockingIOError:
            return True
        except OSError as exc:
            self.relay.abort(exc)
            return False
        self.pending = self.pending[sent:] or None
        return self.pending is not None

    def _park(self) -> None:
        if not self.relay.closed:
            self.parked = True
            self.relay.poller.not_copying(self.sfd)
            self.relay.update_interest()

    def on_writable(self) -> None:
        if not self.parked:
            return
        full = self.pending is not None and self._flush_pending()
        if not full and self.buffered and not self.relay.closed:
            full = self._flush_pipe()
        if full or self.relay.closed:
            return
        self.parked = False
        if self.eof:
            self._finish()
        else:
            self.sync_copying()
            self.relay.update_interest()

    def _at_eof(self) -> None:
        self.eof = True
        self.relay.poller.not_copying(self.sfd)
        if self.pending is None and not self.buffered:
            self._finish()
        else:
            self.relay.update_interest()

    def _finish(self) -> None:
        if self.done:
            return
        self.done = True
        relay = self.relay
        if self.other.done:
            # The last direction to end needs no half-close: closing both sockets sends
            # the FIN (a shutdown costs as much as a send).
            relay.close()
            return
        # The peer may be gone already; the other direction will notice.
        with contextlib.suppress(OSError):
            self.dst.shutdown(_socket.SHUT_WR)
        relay.update_interest()


class Relay:
    """Relays between `client` and `upstream` until both directions end; then closes both
    sockets and calls `on_close(relay)`. Both sockets must be connected and non-blocking;
    `upstream` must already be registered with `poller` (it was watched while dialing)."""

    __slots__ = (
        "backward",
        "cfd",
        "client",
        "closed",
        "endpoint",
        "forward",
        "on_close",
        "poller",
        "pool",
        "ufd",
        "upstream",
    )

    def __init__(self, poller: Poller, pool: PipePool, client: _socket.socket, upstream: _socket.socket,
                 endpoint: str, on_close: Callable[[Relay], None]) -> None:
        self.poller = poller
        self.pool = pool
        self.client = client
        self.upstream = upstream
        self.cfd, self.ufd = client.fileno(), upstream.fileno()
        self.endpoint = endpoint
        self.on_close = on_close
        self.closed = False
        self.forward = _Direction(self, client, upstream)
        self.backward = _Direction(self, upstream, client)
        self.forward.other, self.backward.other = self.backward, self.forward

    def start(self) -> None:
        self.poller.register(self.cfd, IN, self.forward.on_event)
        self.poller.rebind(self.ufd, IN, self.backward.on_event)
        # Clients speak first as a rule, and the request has usually arrived during the
        # dial: relay it now rather than one loop iteration later.
        self.forward.on_readable()
        self.forward.sync_copying()
        self.backward.sync_copying()

    def update_interest(self) -> None:
        if self.closed:
            return
        f, b = self.forward, self.backward
        self.poller.interest(self.cfd, (IN if f.reading else 0) | (OUT if b.parked else 0))
        self.poller.interest(self.ufd, (IN if b.reading else 0) | (OUT if f.parked else 0))

    def abort(self, exc: OSError | None = None) -> None:
        """A reset or error: pass the reset on to both sides (SO_LINGER 0) and close. An
        unusual `exc` is logged."""
        for sock in (self.client, self.upstream):
            with contextlib.suppress(OSError):
                sock.setsockopt(_socket.SOL_SOCKET, _socket.SO_LINGER, _LINGER_RESET)
        if exc is not None and not (isinstance(exc, _ROUTINE) or exc.errno in _ROUTINE_ERRNOS):
            log.debug("relay to %s ended: %s", self.endpoint, exc)
        self.close()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.poller.close_later(self.cfd, self.client.close)
        self.poller.close_later(self.ufd, self.upstream.close)
        for d in (self.forward, self.backward):
            if d.pipe is not None:
                self.pool.put(d.pipe, empty=d.buffered == 0)
        self.on_close(self)
