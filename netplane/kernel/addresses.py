"""IPv4 addresses of a link, over rtnetlink (handles from `netns.ipr`)."""

from __future__ import annotations

import socket

from pyroute2 import IPRoute

from netplane.kernel.links import index

RT_SCOPE_HOST = 254


def list_ipv4(h: IPRoute, ifname: str) -> list[str]:
    """The link's IPv4 addresses as "address/prefixlen", in the kernel's order."""
    return [f"{a.get('address')}/{a['prefixlen']}"
            for a in h.get_addr(family=socket.AF_INET, index=index(h, ifname))]


def ensure(h: IPRoute, ifname: str, address: str, prefixlen: int) -> bool:
    """Adds `address/prefixlen` to `ifname` unless it is there; True if added."""
    if f"{address}/{prefixlen}" in list_ipv4(h, ifname):
        return False
    h.addr("add", index=index(h, ifname), address=address, prefixlen=prefixlen)
    return True


def delete(h: IPRoute, ifname: str, address: str, prefixlen: int) -> bool:
    """Removes `address/prefixlen` from `ifname` if it is there; True if removed."""
    if f"{address}/{prefixlen}" not in list_ipv4(h, ifname):
        return False
    h.addr("del", index=index(h, ifname), address=address, prefixlen=prefixlen)
    return True


def replace(h: IPRoute, ifname: str, address: str, prefixlen: int) -> None:
    """Makes `address/prefixlen` the only IPv4 address of `ifname`."""
    wanted = f"{address}/{prefixlen}"
    for current in list_ipv4(h, ifname):
        if current != wanted:
            ip, length = current.split("/")
            h.addr("del", index=index(h, ifname), address=ip, prefixlen=int(length))
    ensure(h, ifname, address, prefixlen)


def labelled(h: IPRoute, ifname: str, label: str) -> set[str]:
    """The addresses (without prefix length) of `ifname` that carry `label`."""
    return {a.get("address") for a in h.get_addr(index=index(h, ifname)) if a.get("label") == label}


def add_labelled(h: IPRoute, ifname: str, address: str, label: str) -> None:
    """Adds `address` as a host address (/32, /128) to `ifname`, tagged with `label` (which
    must be the interface name or start with "<ifname>:"), so its owner can find it again."""
    v6 = ":" in address
    # Host scope: the address is never picked as the source of the node's own traffic.
    h.addr("add", index=index(h, ifname), address=address, prefixlen=128 if v6 else 32,
           family=socket.AF_INET6 if v6 else socket.AF_INET, scope=RT_SCOPE_HOST,
           **({} if v6 else {"label": label}))


def delete_host(h: IPRoute, ifname: str, address: str) -> None:
    """Removes the host address `address` (/32, /128) from `ifname`."""
    v6 = ":" in address
    h.addr("del", index=index(h, ifname), address=address, prefixlen=128 if v6 else 32,
           family=socket.AF_INET6 if v6 else socket.AF_INET)
