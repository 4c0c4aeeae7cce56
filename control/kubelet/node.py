"""The kubelet's Node: registration, the Ready heartbeat, and the Lease it renews."""

from __future__ import annotations

import logging
import os
import platform
from datetime import UTC, datetime
from typing import Any

from control.kubelet.status import now
from netplane.client.rest import ApiClient, ApiError, resource_path

log = logging.getLogger(__name__)

KUBELET_SOCKET_ANNOTATION = "netplane.io/kubelet-socket"
LEASE_NAMESPACE = "kube-node-lease"


def _memory_ki() -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                return int(line.split()[1])
    return 0


def _read(path: str, default: str = "") -> str:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return default


def _os_image() -> str:
    for line in _read("/etc/os-release").splitlines():
        if line.startswith("PRETTY_NAME="):
            return line.split("=", 1)[1].strip('"')
    return "Linux"


def node_info() -> dict[str, str]:
    """Every field of NodeSystemInfo (clients such as the kubernetes Python client require
    them all)."""
    machine_id = _read("/etc/machine-id")
    return {"machineID": machine_id, "systemUUID": _read("/sys/class/dmi/id/product_uuid", machine_id),
            "bootID": _read("/proc/sys/kernel/random/boot_id"), "kernelVersion": platform.release(),
            "osImage": _os_image(), "containerRuntimeVersion": "netplane-process://0.1",
            "kubeletVersion": "v1.32.0-netplane", "kubeProxyVersion": "", "operatingSystem": "linux",
            "architecture": "amd64"}


def node_object(name: str, pod_cidr: str, node_ip: str, socket_path: str,
                max_pods: int = 110) -> dict[str, Any]:
    capacity = {"cpu": str(os.cpu_count() or 1), "memory": f"{_memory_ki()}Ki", "pods": str(max_pods)}
    return {
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
                                              "kubernetes.io/arch": "amd64"},
                     "annotations": {KUBELET_SOCKET_ANNOTATION: socket_path}},
        "spec": {"podCIDR": pod_cidr, "podCIDRs": [pod_cidr]},
        "status": {"capacity": capacity, "allocatable": capacity,
                   "addresses": [{"type": "InternalIP", "address": node_ip},
                                 {"type": "Hostname", "address": name}],
                   "nodeInfo": node_info()},
    }


def ready_conditions() -> list[dict[str, Any]]:
    stamp = now()
    conds = [("MemoryPressure", "False", "KubeletHasSufficientMemory"),
             ("DiskPressure", "False", "KubeletHasNoDiskPressure"),
             ("PIDPressure", "False", "KubeletHasSufficientPID"),
             ("Ready", "True", "KubeletReady")]
    return [{"type": t, "status": s, "reason": r, "message": f"kubelet: {r}",
             "lastHeartbeatTime": stamp, "lastTransitionTime": stamp} for t, s, r in conds]


async def register(api: ApiClient, node: dict[str, Any]) -> None:
    """Creates the Node, or takes over an existing one (a restarted kubelet)."""
    name = node["metadata"]["name"]
    try:
        await api.create(resource_path("v1", "nodes"), node)
    except ApiError as exc:
        if exc.code != 409:
            raise
        await api.patch(resource_path("v1", "nodes", name=name),
                        {"metadata": node["metadata"], "spec": node["spec"]}, "merge")
    await heartbeat(api, node)


async def heartbeat(api: ApiClient, node: dict[str, Any]) -> None:
    status = {**node["status"], "conditions": ready_conditions()}
    await api.patch(resource_path("v1", "nodes", name=node["metadata"]["name"], subresource="status"),
                    {"status": status}, "merge")


async def renew_lease(api: ApiClient, name: str, duration: int) -> None:
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    path = resource_path("coordination.k8s.io/v1", "leases", LEASE_NAMESPACE, name)
    spec = {"holderIdentity": name, "leaseDurationSeconds": duration, "renewTime": stamp}
    try:
        await api.patch(path, {"spec": spec}, "merge")
    except ApiError as exc:
        if exc.code != 404:
            raise
        await api.create(resource_path("coordination.k8s.io/v1", "leases", LEASE_NAMESPACE),
                         {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                          "metadata": {"name": name, "namespace": LEASE_NAMESPACE}, "spec": spec})
