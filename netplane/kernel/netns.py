"""Named network namespaces (/run/netns/NAME, as `ip netns` keeps them)."""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from collections.abc import Callable, Iterator
from typing import TypeVar

from pyroute2 import NetNS, netns

T = TypeVar("T")
NETNS_DIR = "/run/netns"


def path(name: str) -> str:
    return os.path.join(NETNS_DIR, name)


def exists(name: str) -> bool:
    return os.path.exists(path(name))


def create(name: str) -> None:
    """Creates `name` if missing (idempotent)."""
    if not exists(name):
        netns.create(name)


def remove(name: str) -> None:
    """Removes `name` if present (idempotent); its links go with it."""
    if exists(name):
        netns.remove(name)


def names(prefix: str = "") -> list[str]:
    return sorted(n for n in netns.listnetns() if n.startswith(prefix))


@contextlib.contextmanager
def ipr(name: str | None) -> Iterator[NetNS]:
    """A netlink handle inside `name` (None: the caller's own namespace)."""
    if name is None:
        from pyroute2 import IPRoute

        with IPRoute() as handle:
            yield handle
        return
    with NetNS(name) as handle:
        yield handle


def run_in(name: str, fn: Callable[[], T]) -> T:
    """Calls `fn` on a thread that has joined `name`, so the caller's namespace is never
    touched. Sockets `fn` creates stay in `name` after the thread ends."""
    result: list[T] = []
    error: list[BaseException] = []

    def target() -> None:
        try:
            netns.setns(name, flags=0)
            result.append(fn())
        except BaseException as exc:
            error.append(exc)

    thread = threading.Thread(target=target, name=f"in-netns-{name}")
    thread.start()
    thread.join()
    if error:
        raise error[0]
    return result[0]


def listen_tcp(name: str, host: str, port: int, backlog: int = 1024) -> socket.socket:
    """A listening TCP socket that lives in namespace `name`."""
    def make() -> socket.socket:
        sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(backlog)
        sock.set_inheritable(True)
        return sock

    return run_in(name, make)


def sysctl(name: str, key: str, value: str) -> None:
    """Writes a per-namespace sysctl (e.g. net.ipv4.ip_forward) inside `name`."""
    def write() -> None:
        with open("/proc/sys/" + key.replace(".", "/"), "w") as f:
            f.write(value)

    run_in(name, write)
