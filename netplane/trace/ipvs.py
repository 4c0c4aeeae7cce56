"""IPVS mode's part of a trace: the virtual server a packet reached, its real servers, and
the one the kernel's IPVS connection table holds for the probe (or why there is none).

The kernel's own tables are the evidence: /proc/net/ip_vs (virtual and real servers with
their connection counts) and /proc/net/ip_vs_conn (one entry per connection IPVS
scheduled, plus persistence templates), read from a thread inside the node's network
namespace and parsed by netplane/proxy_ipvs/procfs.py. `explain` is pure; `IpvsTracer`
is the thin shell.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict

from netplane.kernel import netns
from netplane.proxy_ipvs.procfs import (
    PROC_IP_VS,
    PROC_IP_VS_CONN,
    Conn,
    Virtual,
    parse_ip_vs,
    parse_ip_vs_conn,
)
from netplane.trace.modes import Delivery
from netplane.trace.namespaces import NodeHandle
from netplane.trace.packet import Packet
from netplane.trace.report import ProxyView


def _reals_line(vs: Virtual) -> str:
    if not vs.reals:
        return "real servers: none"
    return "real servers: " + ", ".join(
        f"{r.address} (weight {r.weight}, {r.active} active, {r.inactive} inactive)" for r in vs.reals)


def explain(packet: Packet, virtuals: list[Virtual], conns: list[Conn], service: str | None,
            node: str) -> Delivery | None:
    """What IPVS on `node` did with `packet`, which reached the node itself; None when no
    virtual server serves its destination (the packet is the node's own business)."""
    where = f"{packet.dst}:{packet.dport}"
    vs = next((v for v in virtuals if v.proto == packet.proto and v.address == where), None)
    if vs is None:
        return None
    name = service or where
    sticky = f", ClientIP persistence {vs.persistent} s" if vs.persistent is not None else ""
    lines = [f"virtual server {vs.proto.upper()} {vs.address}, scheduler {vs.scheduler}{sticky}",
             _reals_line(vs)]
    client = f"{packet.src}:{packet.sport}"
    mine = [c for c in conns if c.proto == packet.proto and c.client == client and c.virtual == where]
    template = next((c for c in conns if c.proto == packet.proto and c.template and c.virtual == where
                     and c.client.rpartition(":")[0] == packet.src), None)
    data = {"virtual_server": asdict(vs), "connection": asdict(mine[-1]) if mine else None,
            "template": asdict(template) if template else None}
    if not vs.reals:
        lines.append(f"no real server to schedule {client} to: IPVS answers ICMP port unreachable "
                     "(a TCP client sees its connection refused)")
        return Delivery(ProxyView("ipvs", tuple(lines), data), "rejected",
                        f"service {name} has no ready endpoints: IPVS virtual server {where} on {node} has "
                        "no real servers")
    if not mine:
        lines.append(f"no entry for {client} in {node}'s IPVS connection table")
        return Delivery(ProxyView("ipvs", tuple(lines), data), "dropped",
                        f"IPVS on {node} scheduled no connection for {client} to {where}")
    conn = mine[-1]
    why = (f"the persistence template of {packet.src} holds it ({template.expires} s left)"
           if template is not None and template.real == conn.real else f"scheduler {vs.scheduler}")
    lines.append(f"connection: {conn.client} -> {conn.virtual} -> {conn.real}, {conn.state}, expires in "
                 f"{conn.expires} s (chosen by {why})")
    return Delivery(ProxyView("ipvs", tuple(lines), data), "delivered",
                    f"IPVS on {node} sends it to real server {conn.real} ({why})", conn.real)


class IpvsTracer:
    """The virtual server, its real servers and the connection IPVS made for the probe,
    from the kernel's tables in the node's namespace."""

    mode = "ipvs"
    # The node's iptables rules in IPVS mode match on ipsets: the walk needs their members.
    needs_ipsets = True

    def __init__(self, wait: float = 2.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.wait = wait
        self.clock = clock

    def prepare(self, node: NodeHandle) -> None:
        pass

    @staticmethod
    def _read(node: NodeHandle) -> tuple[str, str]:
        def read() -> tuple[str, str]:
            try:
                with open(PROC_IP_VS) as a, open(PROC_IP_VS_CONN) as b:
                    return a.read(), b.read()
            except FileNotFoundError:
                return "", ""  # the ip_vs module is not loaded: no virtual server anywhere

        return netns.run_in(node.netns, read)

    def delivered(self, node: NodeHandle, packet: Packet, service: str | None) -> Delivery | None:
        # IPVS adds the connection as the packet passes LOCAL_IN, before the probe returns;
        # ask again briefly only when the entry is not there (a busy machine).
        deadline = self.clock() + self.wait
        while True:
            ip_vs, ip_vs_conn = self._read(node)
            found = explain(packet, parse_ip_vs(ip_vs), parse_ip_vs_conn(ip_vs_conn), service, node.name)
            if found is None or found.verdict != "dropped" or self.clock() >= deadline:
                return found
            time.sleep(0.1)
