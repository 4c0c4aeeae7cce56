"""Hostnames, listening sockets and address text shared by the agnhost servers."""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import os
import socket


def hostname() -> str:
    """What the servers answer with: $HOSTNAME (the kubelet sets it to the pod's name),
    else the kernel's hostname (the pod's UTS namespace, as Go's os.Hostname)."""
    return os.environ.get("HOSTNAME") or socket.gethostname()


def unmap(host: str) -> str:
    """An IPv4-mapped IPv6 address (from a dual-stack socket) as plain IPv4."""
    if host.startswith("::ffff:"):
        with contextlib.suppress(ValueError):
            mapped = ipaddress.IPv6Address(host).ipv4_mapped
            if mapped is not None:
                return str(mapped)
    return host


def join_host_port(host: str, port: int | str) -> str:
    """Go's net.JoinHostPort: IPv6 literals in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def peer_text(peer: tuple | None) -> str:
    """"ip:port" of a socket peer, as Go's RemoteAddr."""
    if not peer:
        return ""
    return join_host_port(unmap(str(peer[0])), peer[1])


def listen_socket(port: int, kind: int = socket.SOCK_STREAM, host: str = "") -> socket.socket:
    """A socket bound to `port` on every address: dual-stack where the namespace has IPv6
    (as Go's ":port"), else IPv4 only. `host` binds one address instead."""
    if host:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        candidates = [(family, host)]
    else:
        candidates = [(socket.AF_INET6, "::"), (socket.AF_INET, "0.0.0.0")]
    last: OSError | None = None
    for family, address in candidates:
        sock = socket.socket(family, kind)
        try:
            if kind == socket.SOCK_STREAM:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6 and not host:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            sock.bind((address, port))
            if kind == socket.SOCK_STREAM:
                sock.listen(1024)
            sock.setblocking(False)
            return sock
        except OSError as exc:
            sock.close()
            last = exc
            if host or exc.errno == errno.EADDRINUSE:  # the IPv4 fallback would fail too
                raise
    assert last is not None
    raise last
