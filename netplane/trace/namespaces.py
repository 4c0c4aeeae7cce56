"""Which network namespaces a trace enters on this machine: the pod's (`np-<cid>-p-<uid8>`,
made by the kubelet) and its node's (`np-<cid>-<node>`, made by `netplane up`)."""

from __future__ import annotations

from dataclasses import dataclass

from netplane.kernel import netns
from netplane.kernel.netns import ipr


class NamespaceError(Exception):
    """A namespace the trace needs is not on this machine; the message says what to do."""


@dataclass(frozen=True)
class NodeHandle:
    name: str
    netns: str


def _holds(ns: str, ip: str) -> bool:
    with ipr(ns) as h:
        return any(a.get_attr("IFA_ADDRESS") == ip for a in h.get_addr(family=2))


def pod_netns(uid: str, ip: str) -> str:
    """The pod's namespace: named by the first 8 characters of its uid; if two clusters on
    this machine have one of that name, the one holding the pod's address."""
    suffix = f"-p-{uid[:8]}"
    found = [n for n in netns.names("np-") if n.endswith(suffix) and netns.exists(n)]
    if len(found) > 1:
        found = [n for n in found if _holds(n, ip)]
    if not found:
        raise NamespaceError(f"the pod's network namespace (np-*{suffix}) is not on this machine: run "
                             "netplane trace as root on the machine of the cluster (netplane up)")
    return found[0]


def node_netns(pod_ns: str, node: str) -> NodeHandle:
    """The namespace of `node` in the cluster `pod_ns` belongs to."""
    cluster = pod_ns[:pod_ns.rindex("-p-")]
    name = f"{cluster}-{node}"
    if not netns.exists(name):
        raise NamespaceError(f"node {node} has no network namespace {name} on this machine: netplane trace "
                             "follows packets through the nodes of a `netplane up` cluster")
    return NodeHandle(node, name)
