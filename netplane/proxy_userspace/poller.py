"""One epoll set for every relayed socket, read by a single uvloop watcher.

uvloop's add_reader/remove_reader cost a libuv poll handle each and several epoll_ctl
calls per change (strace showed 18 per proxied connection, HAProxy makes 3). Here a
socket is registered once, its interest is modified only when it really changes (dial
done, end of stream, backpressure), and closing it removes it from the set for free.
Level-triggered, so a handler reads once per event like any uvloop callback.

Descriptors are closed only after the batch of events that made them obsolete has been
handled (`close_later`), so a number reused by a new socket in the same batch never
receives an event meant for the old one.

A source socket in the plain copy state (`copying`) is also entered in `peers`, a table
from fd to destination fd that the C copy loop (_pump.c, when it was built) reads: it
copies such sockets' messages itself and hands Python only what needs the relay's state
machine. Without the C loop, every event goes to its Python handler.
"""

from __future__ import annotations

import asyncio
import os
import resource
import select
from array import array
from collections.abc import Callable

try:
    from netplane.proxy_userspace._pump import pump as _c_pump
except ImportError:  # built without a C compiler: the Python loop does it all
    _c_pump = None

IN = select.EPOLLIN
OUT = select.EPOLLOUT
_BATCH = 512
COPY_SIZE = 64 * 1024  # the shared copy buffer; a read that fills it marks a bulk stream
# The copy table is indexed by fd: as large as the descriptor limit, up to this (4 MiB).
_MAX_PEERS = 1 << 20

Handler = Callable[[int], None]
# (n read or -1, n sent or -1, errno, bytes read but not sent): see _pump.c.
Outcome = Callable[[int, int, int, bytes], None]
HAVE_PUMP = _c_pump is not None


def _table_size() -> int:
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return _MAX_PEERS if soft == resource.RLIM_INFINITY else min(soft, _MAX_PEERS)


class Poller:
    def __init__(self, loop: asyncio.AbstractEventLoop, pump: bool = True) -> None:
        self.loop = loop
        self._ep = select.epoll()
        self._handlers: dict[int, Handler] = {}
        self._interest: dict[int, int] = {}
        self._doomed: list[object] = []  # sockets (or fds) to close after the batch
        self._dispatching = False
        # One copy buffer for every relay of the loop: one callback runs at a time.
        self.view = memoryview(bytearray(COPY_SIZE))
        self.pumping = pump and _c_pump is not None
        self.peers = array("i", [-1]) * (_table_size() if self.pumping else 0)
        self._outcomes: dict[int, Outcome] = {}
        loop.add_reader(self._ep.fileno(), self._pump if self.pumping else self._dispatch)

    def register(self, fd: int, events: int, handler: Handler) -> None:
        self._ep.register(fd, events)
        self._handlers[fd] = handler
        self._interest[fd] = events

    def rebind(self, fd: int, events: int, handler: Handler) -> None:
        """A registered `fd` changes hands (a dialed socket becomes a relay's)."""
        self._handlers[fd] = handler
        self.interest(fd, events)

    def interest(self, fd: int, events: int) -> None:
        """Sets what `fd` waits for; a no-op when that is what it waits for already."""
        if self._interest.get(fd) != events:
            self._ep.modify(fd, events)
            self._interest[fd] = events

    def copying(self, fd: int, dst: int, outcome: Outcome) -> None:
        """`fd` is a source in the plain copy state towards `dst`: the C loop may copy its
        messages, and calls `outcome` for one it could not finish."""
        if fd < len(self.peers):
            self.peers[fd] = dst
            self._outcomes[fd] = outcome

    def not_copying(self, fd: int) -> None:
        if fd < len(self.peers):
            self.peers[fd] = -1

    def close_later(self, fd: int, closer: Callable[[], None]) -> None:
        """Forgets `fd` now and runs `closer` (which closes it) once the current batch is
        handled; at once outside a batch."""
        self._handlers.pop(fd, None)
        self._interest.pop(fd, None)
        self.not_copying(fd)
        self._outcomes.pop(fd, None)
        if self._dispatching:
            self._doomed.append(closer)
        else:
            closer()

    def _dispatch(self) -> None:
        try:
            events = self._ep.poll(0, _BATCH)
        except InterruptedError:
            return
        handlers = self._handlers
        self._dispatching = True
        try:
            for fd, ev in events:
                handler = handlers.get(fd)
                if handler is not None:
                    handler(ev)
        finally:
            self._finish_batch()

    def _pump(self) -> None:
        assert _c_pump is not None
        try:
            results = _c_pump(self._ep.fileno(), self.peers, self.view, _BATCH)
        except InterruptedError:
            return
        if not results:
            return
        handlers, outcomes = self._handlers, self._outcomes
        self._dispatching = True
        try:
            for fd, ev, outcome in results:
                if outcome is None:
                    handler = handlers.get(fd)
                    if handler is not None:
                        handler(ev)
                else:
                    done = outcomes.get(fd)
                    if done is not None:
                        done(*outcome)
        finally:
            self._finish_batch()

    def _finish_batch(self) -> None:
        self._dispatching = False
        if self._doomed:
            doomed, self._doomed = self._doomed, []
            for closer in doomed:
                closer()  # type: ignore[operator]

    def __len__(self) -> int:
        return len(self._handlers)

    def close(self) -> None:
        self.loop.remove_reader(self._ep.fileno())
        self._ep.close()


def close_fd(fd: int) -> Callable[[], None]:
    return lambda: os.close(fd)
