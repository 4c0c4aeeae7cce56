"""Pods and nodes for the scheduler's unit tests, written as users and kubelets write them."""

from __future__ import annotations

from typing import Any

from control.scheduler.nodeinfo import NodeInfo
from control.scheduler.podinfo import PodInfo, decode_pod_info
from netplane.model import Node, decode


def make_pod(name: str = "p", *, namespace: str = "default", cpu: str | None = None,
             memory: str | None = None, extra: dict[str, Any] | None = None,
             node_selector: dict[str, str] | None = None,
             tolerations: list[dict[str, Any]] | None = None,
             affinity: dict[str, Any] | None = None, owner: str | None = None,
             labels: dict[str, str] | None = None, node_name: str = "",
             init_requests: list[dict[str, Any]] | None = None,
             scheduler_name: str = "") -> PodInfo:
    requests: dict[str, Any] = dict(extra or {})
    if cpu is not None:
        requests["cpu"] = cpu
    if memory is not None:
        requests["memory"] = memory
    spec: dict[str, Any] = {"containers": [{"name": "c", "image": "agnhost",
                                            "resources": {"requests": requests}}]}
    if init_requests:
        spec["initContainers"] = [{"name": f"init{i}", "resources": {"requests": r}}
                                  for i, r in enumerate(init_requests)]
    if node_selector:
        spec["nodeSelector"] = node_selector
    if tolerations:
        spec["tolerations"] = tolerations
    if affinity:
        spec["affinity"] = affinity
    if node_name:
        spec["nodeName"] = node_name
    if scheduler_name:
        spec["schedulerName"] = scheduler_name
    meta: dict[str, Any] = {"name": name, "namespace": namespace, "uid": f"uid-{name}",
                            "labels": labels or {}}
    if owner:
        meta["ownerReferences"] = [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": owner,
                                    "uid": f"uid-{owner}", "controller": True}]
    return decode_pod_info({"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec})


def make_node_object(name: str, *, cpu: str = "4", memory: str = "8Gi", pods: int = 110,
                     labels: dict[str, str] | None = None, taints: list[dict[str, str]] | None = None,
                     ready: str | None = "True", unschedulable: bool = False,
                     extra: dict[str, Any] | None = None) -> Node:
    conditions = [] if ready is None else [{"type": "Ready", "status": ready}]
    return decode(Node, {
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": labels or {}},
        "spec": {"taints": taints or [], "unschedulable": unschedulable},
        "status": {"allocatable": {"cpu": cpu, "memory": memory, "pods": pods, **(extra or {})},
                   "conditions": conditions}})


def make_node(name: str = "n", **kwargs: Any) -> NodeInfo:
    return NodeInfo(name, make_node_object(name, **kwargs))
