"""The node lifecycle controller: nodes whose kubelet went silent become Unknown.

As Kubernetes' node lifecycle controller (pkg/controller/nodelifecycle), health is
judged by when this controller last *saw* the node's Lease (kube-node-lease/<node>)
or its Ready heartbeat change, on its own clock, so clock skew between machines does
not matter; a node first seen gets a full grace period. A node silent for longer than
`--node-monitor-grace-period`:
- gets condition Ready=Unknown (reason NodeStatusUnknown, "Kubelet stopped posting
  node status."), other kubelet-posted conditions Unknown too;
- gets the `node.kubernetes.io/unreachable:NoSchedule` taint;
- has the Ready condition of its pods set to False (MarkPodsNotReady), so that their
  endpoints go not ready.
A node whose kubelet reports Ready=False gets `node.kubernetes.io/not-ready:NoSchedule`.
When the Lease is renewed again the unreachable taint goes; the kubelet itself posts
Ready=True (this controller never sets a condition to True). NoExecute taints and
evictions are not implemented.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import msgspec

from control.controllers.base import QueueController
from control.controllers.informers import NODE_NAME_INDEX, InformerSet, node_name_of
from netplane.client.rest import ApiClient, ApiError, resource_path
from netplane.model import Lease, Node, Pod
from netplane.model.core import NodeCondition, Taint

log = logging.getLogger(__name__)

LEASE_NAMESPACE = "kube-node-lease"
LEASES_PATH = f"/apis/coordination.k8s.io/v1/namespaces/{LEASE_NAMESPACE}/leases"
UNREACHABLE_TAINT = "node.kubernetes.io/unreachable"
NOT_READY_TAINT = "node.kubernetes.io/not-ready"
_OWN_TAINTS = (UNREACHABLE_TAINT, NOT_READY_TAINT)
# The conditions a kubelet posts, which go Unknown with it (nodeConditionTypes).
_KUBELET_CONDITIONS = ("Ready", "MemoryPressure", "DiskPressure", "PIDPressure")


def now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def condition(node: Node, type_: str) -> NodeCondition | None:
    return next((c for c in node.status.conditions if c.type == type_), None)


def unknown_conditions(node: Node, now: str) -> list[dict[str, Any]]:
    """The conditions to patch for a silent node (empty when already Unknown)."""
    out = []
    ready = condition(node, "Ready")
    if ready is None:
        out.append({"type": "Ready", "status": "Unknown", "reason": "NodeStatusNeverUpdated",
                    "message": "Kubelet never posted node status.",
                    # The creation time, not now: this write must not look like a heartbeat.
                    "lastHeartbeatTime": node.metadata.creation_timestamp, "lastTransitionTime": now})
    for c in node.status.conditions:
        if c.type in _KUBELET_CONDITIONS and c.status != "Unknown":
            out.append({"type": c.type, "status": "Unknown", "reason": "NodeStatusUnknown",
                        "message": "Kubelet stopped posting node status.",
                        "lastHeartbeatTime": c.last_heartbeat_time, "lastTransitionTime": now})
    return out


def desired_taints(node: Node, unreachable: bool, now: str) -> list[Taint] | None:
    """The node's taints with this controller's NoSchedule taints made right; None when
    nothing changes."""
    ready = condition(node, "Ready")
    want = UNREACHABLE_TAINT if unreachable else (
        NOT_READY_TAINT if ready is not None and ready.status == "False" else None)
    ours = [t for t in node.spec.taints if t.key in _OWN_TAINTS and t.effect == "NoSchedule"]
    if [t.key for t in ours] == ([want] if want else []):
        return None
    kept = [t for t in node.spec.taints if not (t.key in _OWN_TAINTS and t.effect == "NoSchedule")]
    if want:
        kept.append(Taint(key=want, effect="NoSchedule", time_added=now))
    return kept


@dataclass
class _Health:
    renew_time: str | None
    heartbeat: str | None
    probe: float  # monotonic time this controller last saw either change


class NodeLifecycleController(QueueController):
    name = "nodelifecycle"

    def __init__(self, client: ApiClient, informers: InformerSet, *, node_monitor_grace_period: float = 40.0,
                 node_monitor_period: float = 5.0, **options: Any) -> None:
        super().__init__(client, informers, **options)
        self.grace = node_monitor_grace_period
        self.period = node_monitor_period
        self._health: dict[str, _Health] = {}
        self.nodes = informers.get("/api/v1/nodes")
        self.leases = informers.get(LEASES_PATH)
        self.pods = informers.ensure_index("/api/v1/pods", NODE_NAME_INDEX, node_name_of)
        self.nodes.add_handler(on_add=self.enqueue, on_update=lambda _o, n: self.enqueue(n),
                               on_delete=self._node_deleted)
        self.leases.add_handler(on_add=self._lease_changed, on_update=lambda _o, n: self._lease_changed(n))
        self.pods.add_handler(on_add=self._pod_changed, on_update=lambda _o, n: self._pod_changed(n))

    def _node_deleted(self, node: Node) -> None:
        self._health.pop(node.metadata.name, None)

    def _lease_changed(self, lease: Lease) -> None:
        self.queue.add(lease.metadata.name)

    def _pod_changed(self, pod: Pod) -> None:
        # A pod (re)appearing ready on a node that is not: Kubernetes' processPod.
        if not pod.spec.node_name or not pod.is_ready():
            return
        node = self.nodes.cache.get(pod.spec.node_name)
        ready = condition(node, "Ready") if node is not None else None
        if ready is not None and ready.status != "True":
            self.queue.add(pod.spec.node_name)

    async def run(self, workers: int) -> None:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(super().run(workers))
            tg.create_task(self._monitor())

    async def _monitor(self) -> None:
        """monitorNodeHealth's period: every node is looked at every `period`."""
        while True:
            for node in self.nodes.cache.list():
                self.enqueue(node)
            await asyncio.sleep(self.period)

    def _observe(self, node: Node) -> _Health:
        lease = self.leases.cache.get(f"{LEASE_NAMESPACE}/{node.metadata.name}")
        renew = lease.spec.renew_time if lease is not None else None
        ready = condition(node, "Ready")
        heartbeat = ready.last_heartbeat_time if ready is not None else None
        health = self._health.get(node.metadata.name)
        if health is None or health.renew_time != renew or health.heartbeat != heartbeat:
            health = _Health(renew, heartbeat, time.monotonic())
            self._health[node.metadata.name] = health
        return health

    async def sync(self, key: str) -> None:
        node: Node | None = self.nodes.cache.get(key)
        if node is None:
            self._health.pop(key, None)
            return
        health = self._observe(node)
        silent_for = time.monotonic() - health.probe
        unreachable = silent_for > self.grace
        now = now_rfc3339()
        path = resource_path("v1", "nodes", name=key)
        if unreachable:
            patch = unknown_conditions(node, now)
            if patch:
                log.info("node %s: no lease renewal or status for %.0fs; marking it Unknown", key, silent_for)
                # Strategic merge keyed by condition type: other conditions stay as they are.
                node = _node_from(await self.client.patch(f"{path}/status", {"status": {"conditions": patch}},
                                                          patch_type="strategic"), node)
        else:
            # Look again when the grace period would run out.
            self.queue.add_after(key, self.grace - silent_for + 0.01)
        taints = desired_taints(node, unreachable, now)
        if taints is not None:
            body = {"metadata": {"resourceVersion": node.metadata.resource_version},
                    "spec": {"taints": [msgspec.to_builtins(t) for t in taints]}}
            node = _node_from(await self.client.patch(path, body, patch_type="merge"), node)
        ready = condition(node, "Ready")
        if ready is not None and ready.status != "True":
            await self._mark_pods_not_ready(key, now)

    async def _mark_pods_not_ready(self, node_name: str, now: str) -> None:
        """MarkPodsNotReady: Ready=False on every pod of the node that still says True."""
        errors = 0
        for pod in self.pods.cache.by_index(NODE_NAME_INDEX, node_name):
            ready = next((c for c in pod.status.conditions if c.type == "Ready"), None)
            if ready is None or ready.status == "False":
                continue
            path = resource_path("v1", "pods", pod.metadata.namespace, pod.metadata.name, "status")
            cond = {"type": "Ready", "status": "False", "lastTransitionTime": now}
            patch = {"status": {"conditions": [cond]}}
            try:
                await self.client.patch(path, patch, patch_type="strategic")
            except ApiError as exc:
                if exc.code == 404:
                    continue
                log.warning("node %s: cannot mark pod %s/%s not ready: %s", node_name,
                            pod.metadata.namespace, pod.metadata.name, exc)
                errors += 1
        if errors:
            raise RuntimeError(f"{errors} pod(s) of node {node_name} not marked not ready")


def _node_from(raw: Any, fallback: Node) -> Node:
    if isinstance(raw, dict):
        return msgspec.convert(raw, Node)
    return raw if isinstance(raw, Node) else fallback
