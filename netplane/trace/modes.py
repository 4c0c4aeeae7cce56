"""What each proxy mode adds to the netfilter walk, behind one small interface.

Every hop gets the same netfilter walk (rules, counters, conntrack): iptables mode lives
there entirely; userspace mode adds its portals there. When the packet reaches the node
itself (INPUT), the mode's tracer says what the proxy did with it: userspace mode's
listener and the backend it picked; IPVS mode's virtual server and the real server its
connection table shows for the probe (ipvs.py). A mode plugs in by adding a `ModeTracer` to
`TRACERS`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from netplane.trace.namespaces import NodeHandle
from netplane.trace.packet import Packet
from netplane.trace.proxyapi import debug_view
from netplane.trace.report import ProxyView
from netplane.trace.sockets import listening


class TraceUnavailable(Exception):
    """The node's mode cannot be traced; the message says why."""


@dataclass(frozen=True)
class Delivery:
    """What a proxy did with a packet that reached its node."""

    view: ProxyView
    verdict: str  # "delivered", "rejected", "dropped"
    reason: str
    endpoint: str | None = None  # "ip:port" the proxy sent the connection on to


class ModeTracer(Protocol):
    mode: str
    # Whether the node's rules match on ipsets, so that the walk must read their members.
    needs_ipsets: bool

    def prepare(self, node: NodeHandle) -> None:
        """Before the probe: snapshot what the mode's evidence is measured against."""
        ...

    def delivered(self, node: NodeHandle, packet: Packet, service: str | None) -> Delivery | None:
        """After the probe, which reached `node` itself as `packet`: what the proxy did with
        it; None when no part of the proxy serves that address. `service`: the service
        port ("ns/name:port") the API says the probe's destination belongs to."""
        ...


class IptablesTracer:
    """iptables mode is all in the netfilter walk; nothing of it listens on the node."""

    mode = "iptables"
    needs_ipsets = False

    def prepare(self, node: NodeHandle) -> None:
        pass

    def delivered(self, node: NodeHandle, packet: Packet, service: str | None) -> Delivery | None:
        return None


def find_listener(listeners: list[dict[str, Any]], packet: Packet) -> dict[str, Any] | None:
    """The userspace listener that takes `packet`: same protocol and port, bound to its
    destination or to every address."""
    for entry in listeners:
        if (entry["protocol"].lower() == packet.proto and entry["port"] == packet.dport
                and entry["address"] in (packet.dst, "0.0.0.0")):
            return entry
    return None


class UserspaceTracer:
    """The listener the probe reached and the endpoint the proxy picked for its connection,
    from the proxy's /debug views; the listener checked against the node's socket table."""

    mode = "userspace"
    needs_ipsets = False

    def __init__(self, wait: float = 5.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.wait = wait
        self.clock = clock

    def prepare(self, node: NodeHandle) -> None:
        pass

    def _pick(self, node: NodeHandle, packet: Packet, listener: str) -> dict[str, Any] | None:
        # The proxy records the pick once it accepted the connection and dialled the
        # endpoint, a moment after the probe's handshake: ask until it shows.
        deadline = self.clock() + self.wait
        while True:
            picks = debug_view(node, "userspace/picks", {"client": f"{packet.src}:{packet.sport}"})
            mine = [p for p in picks if p["listener"] == listener]
            if mine or self.clock() >= deadline:
                return mine[-1] if mine else None
            time.sleep(0.1)

    def delivered(self, node: NodeHandle, packet: Packet, service: str | None) -> Delivery | None:
        entry = find_listener(debug_view(node, "userspace/listeners"), packet)
        if entry is None:
            return None
        sockets = listening(node.netns, packet.proto, packet.dst, packet.dport)
        bound = ", ".join(f"{ip}:{port}" for ip, port in sockets) or "none"
        lines = [f"listener {entry['name']} on {entry['address']}:{entry['port']}/{entry['protocol']}, "
                 f"endpoints in rotation: {', '.join(entry['endpoints']) or 'none'}",
                 f"kernel: {packet.proto.upper()} sockets bound there in {node.netns}: {bound}"]
        pick = self._pick(node, packet, entry["name"])
        data = {"listener": entry, "kernel_sockets": [f"{ip}:{port}" for ip, port in sockets], "pick": pick}
        service = entry["service"]
        if pick is None:
            lines.append(f"no pick recorded for {packet.src}:{packet.sport} (the connection never reached "
                         "the proxy's accept)")
            return Delivery(ProxyView(self.mode, tuple(lines), data), "dropped",
                            f"the userspace proxy never took the connection on {entry['name']}")
        if pick["endpoint"] is None:
            what = "reset the connection" if packet.proto == "tcp" else "dropped the datagram"
            lines.append(f"pick: none for {pick['client']}: the listener has no endpoints, so the proxy "
                         f"{what}")
            return Delivery(ProxyView(self.mode, tuple(lines), data),
                            "rejected" if packet.proto == "tcp" else "dropped",
                            f"service {service} has no ready endpoints (the userspace proxy {what})")
        how = (f"ClientIP affinity for {entry['affinity_seconds']} s, else round robin"
               if entry.get("affinity_seconds") else "round robin")
        lines.append(f"pick: {pick['client']} -> {pick['endpoint']} ({how}); the proxy dials it from "
                     f"{node.name}")
        return Delivery(ProxyView(self.mode, tuple(lines), data), "delivered",
                        f"the userspace proxy relays it to {pick['endpoint']}", pick["endpoint"])


def _ipvs() -> ModeTracer:
    from netplane.trace.ipvs import IpvsTracer  # it builds on Delivery, defined here

    return IpvsTracer()


TRACERS: dict[str, Callable[[], ModeTracer]] = {
    "iptables": IptablesTracer,
    "userspace": UserspaceTracer,
    "ipvs": _ipvs,
}


def tracer_for(mode: str) -> ModeTracer:
    try:
        return TRACERS[mode]()
    except KeyError:
        known = ", ".join(TRACERS)
        raise TraceUnavailable(f"the proxy runs in mode {mode!r}; netplane trace knows {known}") from None
