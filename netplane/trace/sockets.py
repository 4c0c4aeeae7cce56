"""Whether the kernel of a node holds a listening socket on an address: the userspace
proxy's word that it listens on ClusterIP:port, checked against /proc/net/{tcp,udp} read
from a thread inside the node's network namespace (/proc/thread-self/net shows the
thread's namespace; /proc/self/net would show the process's)."""

from __future__ import annotations

import ipaddress
import socket
import struct

from netplane.kernel import netns

_TCP_LISTEN = "0A"
_UDP_UNCONNECTED = "07"


def _address(hex_addr: str) -> tuple[str, int]:
    ip_hex, port_hex = hex_addr.split(":")
    # The kernel prints the address as a native-endian 32-bit number.
    ip = socket.inet_ntoa(struct.pack("=I", int(ip_hex, 16)))
    return ip, int(port_hex, 16)


def bound(table: str, ip: str, port: int, state: str) -> list[tuple[str, int]]:
    """The local addresses in `table` (/proc/net/tcp text) in `state` that take
    `ip:port`: the address itself or the wildcard 0.0.0.0."""
    out = []
    for line in table.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 4 or fields[3] != state:
            continue
        local = _address(fields[1])
        if local[1] == port and local[0] in (ip, "0.0.0.0"):
            out.append(local)
    return out


def listening(netns_name: str, proto: str, ip: str, port: int) -> list[tuple[str, int]]:
    """The sockets that take `proto` traffic to `ip:port` in `netns_name`."""
    ipaddress.IPv4Address(ip)

    def read() -> str:
        with open(f"/proc/thread-self/net/{proto}") as f:
            return f.read()

    state = _TCP_LISTEN if proto == "tcp" else _UDP_UNCONNECTED
    return bound(netns.run_in(netns_name, read), ip, port, state)
