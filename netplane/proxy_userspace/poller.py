"""One epoll set for every relayed socket, read by a single uvloop watcher.

uvloop's add_reader/remove_reader cost a libuv poll handle each and several epoll_ctl
calls per change (strace showed 18 per proxied connection, HAProxy makes 3). Here a
socket is registered once, its interest is modified only when it really changes (dial
done, end of stream, backpressure), and closing it removes it from the set for free.
Level-triggered, so a handler reads once per event like any uvloop callback.

Descriptors are closed only after the batch of events that made them obsolete has been
handled (`close_later`), so a number reused by a new socket in the same batch never
receives an event meant for the old one.
"""

from __future__ import annotations

import asyncio
import os
import select
from collections.abc import Callable

IN = select.EPOLLIN
OUT = select.EPOLLOUT
_BATCH = 512

Handler = Callable[[int], None]


class Poller:
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._ep = select.epoll()
        self._handlers: dict[int, Handler] = {}
        self._interest: dict[int, int] = {}
        self._doomed: list[object] = []  # sockets (or fds) to close after the batch
        self._dispatching = False
        loop.add_reader(self._ep.fileno(), self._dispatch)

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

    def close_later(self, fd: int, closer: Callable[[], None]) -> None:
        """Forgets `fd` now and runs `closer` (which closes it) once the current batch is
        handled; at once outside a batch."""
        self._handlers.pop(fd, None)
        self._interest.pop(fd, None)
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
