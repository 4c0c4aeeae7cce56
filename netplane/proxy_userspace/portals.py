"""The iptables rules of userspace mode ("portals", kube-proxy userspace's names): traffic
to a service's ClusterIP or external IP is REDIRECTed to the proxy's listener of that
service port. Pods' traffic passes nat PREROUTING (KUBE-PORTALS-CONTAINER); the node's own
traffic passes nat OUTPUT (KUBE-PORTALS-HOST). NodePorts need no rule: the proxy listens
on them itself. Pure: state in, `iptables-restore` text out.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from netplane.model import ServicePortName

CONTAINER_CHAIN = "KUBE-PORTALS-CONTAINER"
HOST_CHAIN = "KUBE-PORTALS-HOST"
# (table, built-in chain, our chain, comment): jumps inserted first in the built-in chains.
JUMPS = (
    ("nat", "PREROUTING", CONTAINER_CHAIN, "handle ClusterIPs; NOTE: this must be before the NodePort rules"),
    ("nat", "OUTPUT", HOST_CHAIN, "handle ClusterIPs; NOTE: this must be before the NodePort rules"),
)


@dataclass(frozen=True, order=True)
class Portal:
    """Traffic to ip:port/protocol goes to the proxy's listener on `to_port`."""

    ip: str
    port: int
    protocol: str
    to_port: int
    name: ServicePortName
    kind: str = "cluster IP"  # or "external IP", for the comment


def _rule(chain: str, p: Portal) -> str:
    proto = p.protocol.lower()
    return (f'-A {chain} -d {p.ip}/32 -p {proto} -m comment --comment "{p.name} {p.kind}" '
            f"-m {proto} --dport {p.port} -j REDIRECT --to-ports {p.to_port}")


def render(portals: Iterable[Portal]) -> str:
    """The whole nat table part of userspace mode; with --noflush, the chain declarations
    flush both chains, so this text replaces them in one transaction."""
    ordered = sorted(portals)
    lines = ["*nat", f":{CONTAINER_CHAIN} - [0:0]", f":{HOST_CHAIN} - [0:0]"]
    lines += [_rule(CONTAINER_CHAIN, p) for p in ordered]
    lines += [_rule(HOST_CHAIN, p) for p in ordered]
    lines.append("COMMIT")
    return "\n".join(lines) + "\n"


def render_removal() -> str:
    """Flushes and deletes both chains (the jumps to them must be gone first)."""
    return (f"*nat\n:{CONTAINER_CHAIN} - [0:0]\n:{HOST_CHAIN} - [0:0]\n"
            f"-X {CONTAINER_CHAIN}\n-X {HOST_CHAIN}\nCOMMIT\n")
