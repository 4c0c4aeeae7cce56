"""Deleting conntrack flows over netlink (pyroute2), for kube-proxy's UDP hygiene: a flow
that NATs a client to an endpoint that is gone keeps the client's datagrams going there
until it times out, since UDP has no connection to break. Blocking: call it in a thread."""

from __future__ import annotations

import logging
import socket
from dataclasses import dataclass

from pyroute2 import Conntrack

log = logging.getLogger(__name__)

PROTOCOLS = {"TCP": socket.IPPROTO_TCP, "UDP": socket.IPPROTO_UDP, "SCTP": socket.IPPROTO_SCTP}


@dataclass(frozen=True)
class FlowFilter:
    """Flows of `protocol` matching every field given (kube-proxy's four conntrack deletes:
    by service IP, by node port, by service IP and endpoint, by node port and endpoint)."""

    protocol: str = "UDP"
    orig_dst: str | None = None    # the address the client sent to (a ClusterIP)
    orig_dport: int | None = None  # the port the client sent to (a NodePort)
    reply_src: str | None = None   # the address NAT chose (the endpoint: --dst-nat)

    def matches(self, orig: object, reply: object) -> bool:
        return ((self.orig_dst is None or getattr(orig, "daddr", None) == self.orig_dst)
                and (self.orig_dport is None or getattr(orig, "dport", None) == self.orig_dport)
                and (self.reply_src is None or getattr(reply, "saddr", None) == self.reply_src))


def delete_flows(filters: list[FlowFilter]) -> int:
    """Deletes every flow some filter matches, in one dump of the table; returns how many."""
    if not filters:
        return 0
    protos = {PROTOCOLS[f.protocol] for f in filters}
    deleted = 0
    with Conntrack() as ct:
        doomed = []
        for entry in ct.dump_entries():
            orig, reply = entry.tuple_orig, entry.tuple_reply
            if orig.proto not in protos:
                continue
            if any(PROTOCOLS[f.protocol] == orig.proto and f.matches(orig, reply) for f in filters):
                doomed.append(entry)
        for entry in doomed:
            try:
                ct.delete(entry)
                deleted += 1
            except OSError as exc:  # it may have expired in between
                log.debug("conntrack delete %s: %s", entry, exc)
    return deleted
