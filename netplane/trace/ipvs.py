"""IPVS mode's part of a trace: the virtual server a packet reached, its real servers, and
the one the kernel's IPVS connection table holds for the probe (or why there is none).

The kernel's own tables are the evidence: /proc/net/ip_vs (virtual and real servers with
their connection counts) and /proc/net/ip_vs_conn (one entry per connection IPVS
scheduled, plus persistence templates), read from a thread inside the node's network
namespace. The parsers and `explain` are pure; `IpvsTracer` is the thin shell.
"""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

from netplane.kernel import netns
from netplane.trace.modes import Delivery
from netplane.trace.namespaces import NodeHandle
from netplane.trace.packet import Packet
from netplane.trace.report import ProxyView

# thread-self: the namespace of the reading thread (netns.run_in), not of the process.
_PROC_IP_VS = "/proc/thread-self/net/ip_vs"
_PROC_IP_VS_CONN = "/proc/thread-self/net/ip_vs_conn"
_SERVICE = re.compile(r"^(TCP|UDP|SCTP)\s+([0-9A-F]{8}):([0-9A-F]{4})\s+(\S+)\s*(.*)$")
_REAL = re.compile(r"^\s+->\s+([0-9A-F]{8}):([0-9A-F]{4})\s+(\S+)\s+(\d+)\s+(\d+)\s+(\d+)")
_CONN = re.compile(r"^(TCP|UDP|SCTP)\s+([0-9A-F]{8})\s+([0-9A-F]{4})\s+([0-9A-F]{8})\s+([0-9A-F]{4})\s+"
                   r"([0-9A-F]{8})\s+([0-9A-F]{4})\s+(\S+)\s+(\d+)")


def _ip(hex_text: str) -> str:
    # IPVS prints addresses in host order after ntohl: the hex reads as the dotted quad.
    return socket.inet_ntoa(int(hex_text, 16).to_bytes(4, "big"))


@dataclass(frozen=True)
class Real:
    address: str  # "ip:port"
    forward: str  # "Masq", "Local", "Route", "Tunnel"
    weight: int
    active: int
    inactive: int


@dataclass(frozen=True)
class Virtual:
    proto: str  # "tcp", "udp", "sctp"
    address: str  # "vip:port"
    scheduler: str
    flags: str  # what follows the scheduler, e.g. "persistent 10800"
    reals: tuple[Real, ...]

    @property
    def persistent(self) -> int | None:
        """ClientIP affinity's timeout in seconds, when the service has one."""
        words = self.flags.split()
        if "persistent" in words and words.index("persistent") + 1 < len(words):
            return int(words[words.index("persistent") + 1])
        return None


@dataclass(frozen=True)
class Conn:
    proto: str
    client: str  # "ip:port"; port 0 in a persistence template
    virtual: str
    real: str
    state: str  # "SYN_RECV", "ESTABLISHED", "CLOSE", "UDP", "NONE" (a template), ...
    expires: int  # seconds

    @property
    def template(self) -> bool:
        return self.client.endswith(":0")


def parse_ip_vs(text: str) -> list[Virtual]:
    """/proc/net/ip_vs: the IPv4 virtual servers with their real servers (firewall-mark
    and IPv6 services are left out: kube-proxy makes neither here)."""
    out: list[Virtual] = []
    head: tuple[str, str, str, str] | None = None
    reals: list[Real] = []

    def close() -> None:
        if head is not None:
            out.append(Virtual(*head, tuple(reals)))

    for line in text.splitlines():
        r = _REAL.match(line)
        if r is not None:
            if head is not None:
                reals.append(Real(f"{_ip(r[1])}:{int(r[2], 16)}", r[3], int(r[4]), int(r[5]), int(r[6])))
            continue
        s = _SERVICE.match(line)
        if s is None:
            continue
        close()
        head = (s[1].lower(), f"{_ip(s[2])}:{int(s[3], 16)}", s[4], s[5].strip())
        reals = []
    close()
    return out


def parse_ip_vs_conn(text: str) -> list[Conn]:
    out = []
    for line in text.splitlines():
        c = _CONN.match(line)
        if c is None:
            continue
        out.append(Conn(c[1].lower(), f"{_ip(c[2])}:{int(c[3], 16)}", f"{_ip(c[4])}:{int(c[5], 16)}",
                        f"{_ip(c[6])}:{int(c[7], 16)}", c[8], int(c[9])))
    return out


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
                with open(_PROC_IP_VS) as a, open(_PROC_IP_VS_CONN) as b:
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
