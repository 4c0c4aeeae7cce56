"""The kubelet's Node: registration, the status heartbeat with its conditions, and the
Lease `kube-node-lease/<node>` it renews (what the node lifecycle controller watches)."""

from __future__ import annotations

import logging
import os
import platform
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from control.kubelet.status import now
from netplane.client.rest import ApiClient, ApiError, resource_path

log = logging.getLogger(__name__)

KUBELET_SOCKET_ANNOTATION = "netplane.io/kubelet-socket"
LEASE_NAMESPACE = "kube-node-lease"
KUBELET_VERSION = "v1.32.0-netplane"
_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm"}
# (type, status, reason, message) of a healthy node, as the kubelet words them.
_HEALTHY = (("MemoryPressure", "False", "KubeletHasSufficientMemory",
             "kubelet has sufficient memory available"),
            ("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
            ("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
            ("Ready", "True", "KubeletReady", "kubelet is posting ready status"))


def _read(path: str, default: str = "") -> str:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return default


def memory_ki() -> int:
    for line in _read("/proc/meminfo").splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1])
    return 0


def _os_image() -> str:
    for line in _read("/etc/os-release").splitlines():
        if line.startswith("PRETTY_NAME="):
            return line.split("=", 1)[1].strip('"')
    return "Linux"


def architecture() -> str:
    machine = platform.machine()
    return _ARCH.get(machine, machine)


def node_info() -> dict[str, str]:
    """Every field of NodeSystemInfo (clients such as the kubernetes Python client need them all)."""
    machine_id = _read("/etc/machine-id")
    return {"machineID": machine_id, "systemUUID": _read("/sys/class/dmi/id/product_uuid", machine_id),
            "bootID": _read("/proc/sys/kernel/random/boot_id"), "kernelVersion": platform.release(),
            "osImage": _os_image(), "containerRuntimeVersion": "netplane-process://0.1",
            "kubeletVersion": KUBELET_VERSION, "kubeProxyVersion": "", "operatingSystem": "linux",
            "architecture": architecture()}


def capacity(root_dir: Path, max_pods: int) -> dict[str, str]:
    st = os.statvfs(root_dir)
    return {"cpu": str(os.cpu_count() or 1), "memory": f"{memory_ki()}Ki", "pods": str(max_pods),
            "ephemeral-storage": f"{st.f_blocks * st.f_frsize // 1024}Ki"}


def node_object(name: str, pod_cidr: str, node_ip: str, socket_path: str, *,
                resources: dict[str, str]) -> dict[str, Any]:
    """The Node as this kubelet registers it (without conditions: see `conditions`)."""
    return {
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name,
                     "labels": {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
                                "kubernetes.io/arch": architecture()},
                     "annotations": {KUBELET_SOCKET_ANNOTATION: socket_path}},
        "spec": {"podCIDR": pod_cidr, "podCIDRs": [pod_cidr]},
        "status": {"capacity": resources, "allocatable": dict(resources),
                   "addresses": [{"type": "InternalIP", "address": node_ip},
                                 {"type": "Hostname", "address": name}],
                   "daemonEndpoints": {"kubeletEndpoint": {"Port": 0}},
                   "nodeInfo": node_info()},
    }


def conditions(previous: list[dict[str, Any]], stamp: str) -> list[dict[str, Any]]:
    """The node's conditions with a fresh heartbeat; a condition keeps its
    lastTransitionTime while its status stays the same (e.g. Ready after Unknown changes it)."""
    old = {c.get("type"): c for c in previous}
    out = []
    for kind, status, reason, message in _HEALTHY:
        prev = old.get(kind)
        since = prev.get("lastTransitionTime") if prev and prev.get("status") == status else None
        out.append({"type": kind, "status": status, "reason": reason, "message": message,
                    "lastHeartbeatTime": stamp, "lastTransitionTime": since or stamp})
    return out


class NodeAgent:
    """Registers the Node and keeps it alive: status every `status_every` seconds, the
    Lease every `lease_every`."""

    def __init__(self, api: ApiClient, node: dict[str, Any], lease_duration: int) -> None:
        self.api = api
        self.node = node
        self.name: str = node["metadata"]["name"]
        self.lease_duration = lease_duration
        self.uid = ""
        self._conditions: list[dict[str, Any]] = []

    async def register(self) -> None:
        """Creates the Node, or takes an existing one over (a restarted kubelet)."""
        try:
            created = await self.api.create(resource_path("v1", "nodes"), self.node)
        except ApiError as exc:
            if exc.code != 409:
                raise
            meta = self.node["metadata"]
            created = await self.api.patch(
                resource_path("v1", "nodes", name=self.name),
                {"metadata": {"labels": meta["labels"], "annotations": meta["annotations"]},
                 "spec": self.node["spec"]}, "merge")
        self.uid = created["metadata"].get("uid", "")
        self._conditions = (created.get("status") or {}).get("conditions") or []
        await self.heartbeat()

    async def heartbeat(self) -> None:
        """Posts the node status with fresh conditions; re-registers a Node that was deleted."""
        self._conditions = conditions(self._conditions, now())
        status = {**self.node["status"], "conditions": self._conditions}
        path = resource_path("v1", "nodes", name=self.name, subresource="status")
        try:
            updated = await self.api.patch(path, {"status": status}, "merge")
        except ApiError as exc:
            if exc.code != 404:
                raise
            log.warning("node %s was deleted; registering it again", self.name)
            await self.register()
            return
        # Keep what the API holds (the node lifecycle controller may have set Unknown).
        self._conditions = (updated.get("status") or {}).get("conditions") or self._conditions

    async def renew_lease(self) -> None:
        stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")  # a MicroTime
        spec = {"holderIdentity": self.name, "leaseDurationSeconds": self.lease_duration,
                "renewTime": stamp}
        path = resource_path("coordination.k8s.io/v1", "leases", LEASE_NAMESPACE, self.name)
        try:
            await self.api.patch(path, {"spec": spec}, "merge")
            return
        except ApiError as exc:
            if exc.code != 404:
                raise
        # The Lease is owned by the Node, so that deleting the Node removes it too.
        owner = [{"apiVersion": "v1", "kind": "Node", "name": self.name, "uid": self.uid}] if self.uid else []
        body = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": self.name, "namespace": LEASE_NAMESPACE, "ownerReferences": owner},
                "spec": {**spec, "acquireTime": stamp}}
        try:
            await self.api.create(resource_path("coordination.k8s.io/v1", "leases", LEASE_NAMESPACE), body)
        except ApiError as exc:
            if exc.code != 409:  # created meanwhile: the next renewal patches it
                raise
