"""The node's address when the kubelet is not told it (--node-ip): chosen as Kubernetes'
kubelet does (utilnet's ChooseHostInterface), from this namespace's addresses and routes."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Sequence
from dataclasses import dataclass

_SCOPE_UNIVERSE = 0  # rtnetlink's RT_SCOPE_UNIVERSE: a global address


@dataclass(frozen=True)
class HostAddress:
    """An IPv4 address of an interface of the kubelet's namespace."""

    ifname: str
    address: str
    scope: int = _SCOPE_UNIVERSE
    up: bool = True  # the interface's IFF_UP


@dataclass(frozen=True)
class HostRoute:
    """A route of the main table: destination CIDR ("0.0.0.0/0" for the default) and device."""

    dst: str
    ifname: str


def _route_device(routes: Sequence[HostRoute], dst: ipaddress.IPv4Address) -> str | None:
    """The device the longest matching route sends `dst` out of."""
    best: tuple[int, str] | None = None
    for route in routes:
        net = ipaddress.ip_network(route.dst, strict=False)
        if dst in net and (best is None or net.prefixlen > best[0]):
            best = (net.prefixlen, route.ifname)
    return best[1] if best else None


def choose_node_ip(addresses: Sequence[HostAddress], routes: Sequence[HostRoute], *,
                   apiserver_host: str = "", pod_cidr: str = "") -> str | None:
    """The node's address when --node-ip is not given, as the kubelet picks it (utilnet's
    ChooseHostInterface): a global, non-loopback IPv4 address of an interface that is up,
    preferably on the interface the apiserver is reached through, else on the default
    route's; else the first one. None when there is none."""
    pods = ipaddress.ip_network(pod_cidr) if pod_cidr else None
    candidates = []
    for a in addresses:
        ip = ipaddress.ip_address(a.address)
        # The pod bridge carries the pod CIDR's gateway: that is the pods' address, not the node's.
        if (a.up and ip.version == 4 and a.scope == _SCOPE_UNIVERSE and not ip.is_loopback
                and not ip.is_link_local and not ip.is_unspecified and (pods is None or ip not in pods)):
            candidates.append(a)
    preferred: list[str] = []
    try:
        server = ipaddress.ip_address(apiserver_host)
    except ValueError:
        server = None  # a name: where it leads is DNS's business, not a route's
    if isinstance(server, ipaddress.IPv4Address) and not server.is_loopback \
            and (device := _route_device(routes, server)) is not None:
        preferred.append(device)
    preferred += [r.ifname for r in routes if ipaddress.ip_network(r.dst, strict=False).prefixlen == 0]
    for ifname in preferred:
        for a in candidates:
            if a.ifname == ifname:
                return a.address
    return candidates[0].address if candidates else None


def read_host_network() -> tuple[list[HostAddress], list[HostRoute]]:
    """This namespace's IPv4 addresses (in the kernel's order) and main-table routes."""
    from pyroute2.netlink.exceptions import NetlinkError

    from netplane.kernel import netns, routes

    try:
        with netns.ipr(None) as h:
            links = {int(link["index"]): (str(link.get("ifname")), bool(link["flags"] & 1))  # IFF_UP
                     for link in h.get_links()}
            addresses = []
            for a in h.get_addr(family=socket.AF_INET):
                ifname, up = links.get(int(a["index"]), ("", False))
                addresses.append(HostAddress(ifname, str(a.get("address")), int(a["scope"]), up))
            found = [HostRoute(r.dst, links[r.oif][0]) for r in routes.list_ipv4(h) if r.oif in links]
    except NetlinkError as exc:
        raise OSError(exc.code, str(exc)) from exc
    return addresses, found
