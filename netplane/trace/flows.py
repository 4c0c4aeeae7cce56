"""The conntrack entry a probe created on a node: where NAT sent it (the reply's source is
the endpoint DNAT chose) and what state it is in. A thin shell over pyroute2's conntrack
netlink, read from a thread inside the node's network namespace."""

from __future__ import annotations

import socket
from dataclasses import dataclass

from netplane.kernel import netns

_PROTO = {"tcp": socket.IPPROTO_TCP, "udp": socket.IPPROTO_UDP}


@dataclass(frozen=True)
class Flow:
    proto: str
    state: str  # TCP's conntrack state (SYN_SENT, ESTABLISHED, CLOSE, ...); "" for UDP
    status: str  # conntrack's status bits, e.g. "SEEN_REPLY,CONFIRMED,DST_NAT"
    orig: tuple[str, int, str, int]  # src, sport, dst, dport as the client sent it
    reply: tuple[str, int, str, int]  # as the reply comes back
    mark: int = 0
    timeout: int = 0

    @property
    def dnat(self) -> tuple[str, int] | None:
        """The destination NAT chose (the reply's source), when it is not the original one."""
        dst = (self.reply[0], self.reply[1])
        return dst if dst != (self.orig[2], self.orig[3]) else None

    @property
    def snat(self) -> tuple[str, int] | None:
        """The source NAT chose (the reply's destination), when it is not the original one."""
        src = (self.reply[2], self.reply[3])
        return src if src != (self.orig[0], self.orig[1]) else None

    def __str__(self) -> str:
        o, r = self.orig, self.reply
        state = f" {self.state}" if self.state else ""
        nat = [f"{kind} to {ip}:{port}" for kind, nat in (("DNAT", self.dnat), ("SNAT", self.snat))
               if nat is not None for ip, port in (nat,)]
        return (f"{self.proto}{state} src={o[0]} dst={o[2]} sport={o[1]} dport={o[3]} "
                f"src={r[0]} dst={r[2]} sport={r[1]} dport={r[3]} [{self.status}]"
                + (f" ({', '.join(nat)})" if nat else ""))


def find_flow(netns_name: str, proto: str, src: str, sport: int, dst: str,
              dport: int) -> tuple[Flow | None, int]:
    """The entry whose original direction is exactly this 5-tuple in `netns_name`'s table,
    and how many entries the table holds (none at all: the namespace tracks nothing, as
    when no rule there needs conntrack). Blocking (netlink): call it in a thread."""
    from pyroute2 import Conntrack

    def lookup() -> tuple[Flow | None, int]:
        found = None
        count = 0
        with Conntrack() as ct:
            for e in ct.dump_entries():
                count += 1
                o, r = e.tuple_orig, e.tuple_reply
                if found or (o.proto, o.saddr, o.sport, o.daddr, o.dport) != (_PROTO[proto], src, sport, dst,
                                                                               dport):
                    continue
                state = e.protoinfo.state_name() if e.protoinfo is not None else ""
                found = Flow(proto, state, e.status_name(), (o.saddr, o.sport, o.daddr, o.dport),
                             (r.saddr, r.sport, r.daddr, r.dport), e.mark or 0, e.timeout or 0)
        return found, count

    return netns.run_in(netns_name, lookup)
