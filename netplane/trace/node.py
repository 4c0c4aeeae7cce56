"""What the walk needs to know of a node besides its rules: its addresses (addrtype LOCAL,
the routing decision local-or-forward, MASQUERADE's source), its routes (the output
interface), whether it forwards, and the ipsets it holds. Pure data, and its reader for a
node's network namespace (a thin shell over pyroute2)."""

from __future__ import annotations

import ipaddress
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Route:
    network: str  # "10.244.2.0/24", "0.0.0.0/0"
    dev: str
    gateway: str | None = None


@dataclass(frozen=True)
class NodeView:
    name: str
    # interface -> its IPv4 addresses with their prefix length ("10.244.1.1/24")
    addresses: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    routes: tuple[Route, ...] = ()
    forwarding: bool = True
    # set name -> members as `ipset save` prints them ("10.96.0.10,udp:53"); IPVS mode's
    # rules match on sets (read_node_view reads them when asked).
    ipsets: Mapping[str, frozenset[str]] = field(default_factory=dict)
    # Whether the kernel tracks connections here; without, the nat table is never run.
    conntrack: bool = True

    def _ips(self) -> set[str]:
        return {a.split("/")[0] for addrs in self.addresses.values() for a in addrs}

    def is_local(self, ip: str) -> bool:
        """Whether the kernel's local table holds `ip` (addrtype LOCAL): the node's own
        addresses and all of 127.0.0.0/8."""
        return ip in self._ips() or ipaddress.ip_address(ip) in ipaddress.ip_network("127.0.0.0/8")

    def is_broadcast(self, ip: str) -> bool:
        for addrs in self.addresses.values():
            for a in addrs:
                net = ipaddress.ip_interface(a).network
                if net.prefixlen < 31 and ipaddress.ip_address(ip) == net.broadcast_address:
                    return True
        return False

    def route(self, ip: str) -> Route | None:
        """The longest-prefix route to `ip` in the main table."""
        addr = ipaddress.ip_address(ip)
        best: Route | None = None
        best_len = -1
        for r in self.routes:
            net = ipaddress.ip_network(r.network, strict=False)
            if addr in net and net.prefixlen > best_len:
                best, best_len = r, net.prefixlen
        return best

    def address_on(self, dev: str) -> str | None:
        """The first address of `dev` (what MASQUERADE picks as the new source)."""
        addrs = self.addresses.get(dev) or ()
        return addrs[0].split("/")[0] if addrs else None

    def iface_for_source(self, ip: str) -> str | None:
        """The interface a packet from `ip` arrives on: the one with a route back to it."""
        route = self.route(ip)
        return route.dev if route is not None else None


def parse_ipset_save(text: str) -> dict[str, frozenset[str]]:
    """`ipset save` output: set name -> its members, as `add` lines print them."""
    sets: dict[str, set[str]] = {}
    for line in text.splitlines():
        words = line.split()
        if len(words) >= 2 and words[0] == "create":
            sets.setdefault(words[1], set())
        elif len(words) >= 3 and words[0] == "add":
            sets.setdefault(words[1], set()).add(words[2])
    return {k: frozenset(v) for k, v in sets.items()}


def read_ipsets(netns: str) -> dict[str, frozenset[str]]:
    """The ipsets of network namespace `netns` with their members (`ipset save`)."""
    from netplane.kernel.exec import in_netns

    out = subprocess.run(in_netns(netns, ["ipset", "save"]), capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"ipset save in {netns} failed: {out.stderr.strip()}")
    return parse_ipset_save(out.stdout)


def read_node_view(name: str, netns: str, *, ipsets: bool = False) -> NodeView:
    """The addresses, routes and forwarding switch of network namespace `netns`, and with
    `ipsets` its ipsets. Blocking (netlink): call it in a thread."""
    from netplane.kernel import sysctl
    from netplane.kernel.netns import ipr

    addresses: dict[str, list[str]] = {}
    routes: list[Route] = []
    with ipr(netns) as h:
        names = {link["index"]: link.get_attr("IFLA_IFNAME") for link in h.get_links()}
        for a in h.get_addr(family=2):
            dev = names.get(a["index"], str(a["index"]))
            addresses.setdefault(dev, []).append(f"{a.get_attr('IFA_ADDRESS')}/{a['prefixlen']}")
        for r in h.get_routes(family=2, table=254):
            if r["type"] != 1:  # unicast routes only (no blackhole, prohibit, ...)
                continue
            dst = r.get_attr("RTA_DST") or "0.0.0.0"
            oif = r.get_attr("RTA_OIF")
            routes.append(Route(f"{dst}/{r['dst_len']}", names.get(oif, str(oif)), r.get_attr("RTA_GATEWAY")))
    forwarding = sysctl.read(netns, "net.ipv4.ip_forward") != "0"
    return NodeView(name, {dev: tuple(a) for dev, a in addresses.items()}, tuple(routes), forwarding,
                    read_ipsets(netns) if ipsets else {})
