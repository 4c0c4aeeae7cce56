"""IPv4 routes of the main table, over rtnetlink (handles from `netns.ipr`)."""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

_ESRCH = 3  # "no such process": the kernel's answer to deleting a route that is not there
_RT_TABLE_MAIN = 254


@dataclass(frozen=True)
class Route:
    dst: str  # a CIDR; "0.0.0.0/0" for the default route
    gateway: str | None
    oif: int | None


def _dst(dst: str) -> str:
    """ "default" or a CIDR, normalised (10.244.1.5/24 is refused: host bits set)."""
    return "0.0.0.0/0" if dst == "default" else str(ipaddress.IPv4Network(dst))


def list_ipv4(h: IPRoute) -> list[Route]:
    """The main table's IPv4 unicast routes."""
    out = []
    for r in h.get_routes(family=socket.AF_INET, table=_RT_TABLE_MAIN):
        if r["type"] != 1:  # RTN_UNICAST; skips broadcast/local entries
            continue
        dst = r.get("dst") or "0.0.0.0"
        out.append(Route(f"{dst}/{r['dst_len']}", r.get("gateway"), r.get("oif")))
    return out


def gateway(h: IPRoute, dst: str) -> str | None:
    """The gateway of the route to exactly `dst` ("default" or a CIDR), if there is one."""
    want = _dst(dst)
    return next((r.gateway for r in list_ipv4(h) if r.dst == want), None)


def replace(h: IPRoute, dst: str, via: str) -> None:
    """The route to `dst` ("default" or a CIDR) goes via `via`, whatever it was before."""
    h.route("replace", dst=_dst(dst), gateway=via)


def delete(h: IPRoute, dst: str) -> bool:
    """Removes the route to `dst` if present; True if it was there."""
    try:
        h.route("del", dst=_dst(dst))
    except NetlinkError as exc:
        if exc.code != _ESRCH:
            raise
        return False
    return True
