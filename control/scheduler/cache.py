"""The scheduler's view of the cluster: a NodeInfo per node, with the pods the informer
reports as assigned and the pods this scheduler *assumed* (placed, binding not yet
confirmed by the watch), so that a burst of decisions does not over-commit a node.

An assumed pod stays until the watch shows it bound (confirmed), its binding fails
(`forget`) or it is deleted. A pod on a node the cache does not know yet keeps a
placeholder NodeInfo, which is not offered for scheduling."""

from __future__ import annotations

import logging

from control.scheduler.nodeinfo import NodeInfo
from control.scheduler.podinfo import PodInfo
from netplane.model import Node

log = logging.getLogger(__name__)


class SchedulerCache:
    def __init__(self) -> None:
        self._nodes: dict[str, NodeInfo] = {}
        self._pod_node: dict[str, str] = {}  # pod key -> node name
        self._assumed: set[str] = set()
        self._node_list: list[NodeInfo] | None = None

    # -- nodes ----------------------------------------------------------------------

    def add_node(self, node: Node) -> NodeInfo:
        info = self._nodes.get(node.name)
        if info is None:
            info = self._nodes[node.name] = NodeInfo(node.name, node)
            self._node_list = None
        else:
            if info.node is None:
                self._node_list = None
            info.set_node(node)
        return info

    update_node = add_node

    def remove_node(self, name: str) -> None:
        info = self._nodes.get(name)
        if info is None:
            return
        self._node_list = None
        if info.pods:
            info.node = None  # pods still point at it: keep the placeholder
        else:
            del self._nodes[name]

    def node(self, name: str) -> NodeInfo | None:
        return self._nodes.get(name)

    def nodes(self) -> list[NodeInfo]:
        """The NodeInfos of the nodes that exist, in a stable order (the same list object
        until a node is added or removed; the NodeInfos inside are live)."""
        if self._node_list is None:
            self._node_list = [n for _, n in sorted(self._nodes.items()) if n.node is not None]
        return self._node_list

    # -- pods -----------------------------------------------------------------------

    def _place(self, pi: PodInfo, node_name: str) -> None:
        current = self._pod_node.get(pi.key)
        if current is not None and current != node_name:
            self._unplace(pi.key)
        info = self._nodes.get(node_name)
        if info is None:
            info = self._nodes[node_name] = NodeInfo(node_name)
        info.add_pod(pi)
        self._pod_node[pi.key] = node_name

    def _unplace(self, key: str) -> PodInfo | None:
        node_name = self._pod_node.pop(key, None)
        if node_name is None:
            return None
        info = self._nodes.get(node_name)
        if info is None:
            return None
        pi = info.remove_pod(key)
        if info.node is None and not info.pods:
            del self._nodes[node_name]
        return pi

    def assume(self, pi: PodInfo, node_name: str) -> None:
        """Counts the pod on `node_name` now, before the binding is written."""
        self._place(pi, node_name)
        self._assumed.add(pi.key)

    def forget(self, key: str) -> None:
        """The binding of an assumed pod failed: it no longer counts anywhere."""
        if key in self._assumed:
            self._assumed.discard(key)
            self._unplace(key)

    def is_assumed(self, key: str) -> bool:
        return key in self._assumed

    def add_pod(self, pi: PodInfo) -> None:
        """The watch shows a pod assigned to a node: confirms an assumed pod (moving it
        if it was bound elsewhere after all) or adds a pod bound by someone else."""
        if not pi.node_name:
            raise ValueError(f"pod {pi.key} is not assigned to a node")
        if pi.key in self._assumed:
            self._assumed.discard(pi.key)
            if self._pod_node.get(pi.key) != pi.node_name:
                log.warning("pod %s assumed on %s but bound to %s", pi.key,
                            self._pod_node.get(pi.key), pi.node_name)
        self._place(pi, pi.node_name)

    update_pod = add_pod

    def remove_pod(self, key: str) -> None:
        self._assumed.discard(key)
        self._unplace(key)

    def has_pod(self, key: str) -> bool:
        return key in self._pod_node

    def pod_node(self, key: str) -> str | None:
        return self._pod_node.get(key)

    def stats(self) -> dict[str, int]:
        return {"nodes": len(self.nodes()), "pods": len(self._pod_node),
                "assumed": len(self._assumed)}
