"""Named network namespaces (/run/netns/NAME, as `ip netns` keeps them), and running code in one.

Every namespace switch happens on a short-lived thread of its own, never on the caller's:
a network namespace is a per-thread attribute, and a pool thread (asyncio.to_thread) left
in another namespace would run someone else's next job there. That also avoids pyroute2's
default of forking a child per namespaced socket, which is slow and unsafe in a threaded
process such as the kubelet: a netlink socket, like any socket, belongs for its whole life
to the namespace of the thread that created it, so it is made on such a thread and handed
to `IPRoute(fileno=...)`.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import socket
import threading
from collections.abc import Callable, Iterator
from typing import TypeVar

from pyroute2 import IPRoute
from pyroute2 import netns as _pyroute2_netns

T = TypeVar("T")

NETNS_DIR = "/run/netns"
_CLONE_NEWNET = 0x40000000
_MNT_DETACH = 2


@functools.cache
def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str, name: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what} for network namespace {name}: {os.strerror(err)}")


def path(name: str) -> str:
    if not name or "/" in name or name in (".", ".."):
        raise ValueError(f"invalid network namespace name {name!r}")
    return os.path.join(NETNS_DIR, name)


def _mounted(file: str) -> bool:
    """The file is a namespace bind mount (nsfs), not a leftover empty mount point."""
    try:
        return os.stat(file).st_dev != os.stat(NETNS_DIR).st_dev
    except FileNotFoundError:
        return False


def exists(name: str) -> bool:
    return _mounted(path(name))


def names(prefix: str = "") -> list[str]:
    """Names under /run/netns starting with `prefix` (stale mount points included, so that
    a cleanup finds them too)."""
    try:
        entries = os.listdir(NETNS_DIR)
    except FileNotFoundError:
        return []
    return sorted(n for n in entries if n.startswith(prefix))


def create(name: str) -> bool:
    """Creates the namespace `name` (with only `lo`, down) unless it exists; True if created."""
    file = path(name)
    if _mounted(file):
        return False
    with contextlib.suppress(FileNotFoundError):
        os.unlink(file)  # an empty mount point left by a crash between its creation and the mount

    def make() -> None:
        _check(_libc().unshare(_CLONE_NEWNET), "unshare", name)
        # pyroute2's attach does what `ip netns add` does: make /run/netns a shared mount
        # (so every mount namespace sees the name), then bind /proc/<tid>/ns/net onto the
        # name. By thread id: /proc/self is the thread group leader, still in the old one.
        _pyroute2_netns.attach(file, threading.get_native_id())

    try:
        _on_own_thread(make, f"netns-create-{name}")
    except FileExistsError:
        if _mounted(file):  # made meanwhile by someone else; its mount point is not ours to remove
            return False
        raise
    except BaseException:
        if not _mounted(file):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(file)
        raise
    return True


def delete(name: str) -> bool:
    """Removes the name `name` (idempotent); True if there was one. The namespace and its
    links go when nothing else holds it (a process inside keeps it alive, nameless)."""
    file = path(name)
    if not os.path.lexists(file):
        return False
    # EINVAL (not mounted: a stale mount point) is expected; anything else shows at unlink.
    _libc().umount2(file.encode(), _MNT_DETACH)
    try:
        os.unlink(file)
    except FileNotFoundError:
        return False
    return True


def _on_own_thread(fn: Callable[[], T], thread_name: str) -> T:
    result: list[T] = []
    error: list[BaseException] = []

    def target() -> None:
        try:
            result.append(fn())
        except BaseException as exc:
            error.append(exc)

    thread = threading.Thread(target=target, name=thread_name, daemon=True)
    thread.start()
    thread.join()
    if error:
        raise error[0]
    return result[0]


def run_in(name: str, fn: Callable[..., T], *args: object) -> T:
    """Calls `fn(*args)` on a new thread that has joined namespace `name` and returns its
    result (or raises its exception). The caller's thread never changes namespace; sockets
    `fn` creates stay in `name`."""
    file = path(name)

    def enter_and_call() -> T:
        fd = os.open(file, os.O_RDONLY | os.O_CLOEXEC)
        try:
            _check(_libc().setns(fd, _CLONE_NEWNET), "setns", name)
        finally:
            os.close(fd)
        return fn(*args)

    if not _mounted(file):
        raise FileNotFoundError(f"no network namespace named {name}")
    return _on_own_thread(enter_and_call, f"in-netns-{name}")


@contextlib.contextmanager
def ipr(name: str | None) -> Iterator[IPRoute]:
    """An rtnetlink handle (pyroute2 `IPRoute`) for namespace `name`; None: the calling
    thread's own namespace. It never creates a namespace (pyroute2's `NetNS` does)."""
    if name is None:
        handle = IPRoute(groups=0)
    else:
        sock = run_in(name, socket.socket, socket.AF_NETLINK, socket.SOCK_DGRAM, socket.NETLINK_ROUTE)
        handle = IPRoute(fileno=sock.detach(), groups=0)
    try:
        yield handle
    finally:
        handle.close()


def listen_tcp(name: str, host: str, port: int, backlog: int = 1024) -> socket.socket:
    """A listening TCP socket inside namespace `name`, inheritable so that it can be handed
    to a child process (pass_fds)."""
    def make() -> socket.socket:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, port))
            sock.listen(backlog)
        except BaseException:
            sock.close()
            raise
        sock.set_inheritable(True)
        return sock

    return run_in(name, make)
