"""describe pages of Namespaces and Nodes, as kubectl's describers write them."""

from __future__ import annotations

from typing import Any

from netplane.ctl.durations import age, rfc1123
from netplane.ctl.page import Page, annotations_section, events_section, labels_section, taints_section

Obj = dict[str, Any]

_ROLE_PREFIX = "node-role.kubernetes.io/"
_SYSTEM_INFO = (("machineID", "Machine ID"), ("systemUUID", "System UUID"), ("bootID", "Boot ID"),
                ("kernelVersion", "Kernel Version"), ("osImage", "OS Image"),
                ("operatingSystem", "Operating System"), ("architecture", "Architecture"),
                ("containerRuntimeVersion", "Container Runtime Version"),
                ("kubeletVersion", "Kubelet Version"), ("kubeProxyVersion", "Kube-Proxy Version"))


def namespace(obj: Obj) -> str:
    meta = obj.get("metadata") or {}
    page = Page()
    page.line(0, "Name:", meta.get("name", ""))
    labels_section(page, "Labels", meta.get("labels"))
    annotations_section(page, meta.get("annotations"))
    page.line(0, "Status:", (obj.get("status") or {}).get("phase", ""))
    return page.text()


def node_roles(labels: dict[str, str]) -> str:
    """kubectl's findNodeRoles: `node-role.kubernetes.io/<role>` and `kubernetes.io/role`."""
    roles = {k[len(_ROLE_PREFIX):] for k in labels if k.startswith(_ROLE_PREFIX) and k != _ROLE_PREFIX}
    if labels.get("kubernetes.io/role"):
        roles.add(labels["kubernetes.io/role"])
    return ",".join(sorted(roles)) or "<none>"


def _resource_list(page: Page, title: str, values: dict[str, Any] | None) -> None:
    if values:
        page.write(0, f"{title}:\n")
        for name in sorted(values):
            page.write(1, f"{name}:\t{values[name]}\n")


def node(obj: Obj, pods: list[Obj] | None, lease: Obj | None, events: list[Obj] | None) -> str:
    meta, spec, status = obj.get("metadata") or {}, obj.get("spec") or {}, obj.get("status") or {}
    page = Page()
    page.line(0, "Name:", meta.get("name", ""))
    page.line(0, "Roles:", node_roles(meta.get("labels") or {}))
    labels_section(page, "Labels", meta.get("labels"))
    annotations_section(page, meta.get("annotations"))
    page.line(0, "CreationTimestamp:", rfc1123(meta.get("creationTimestamp")))
    taints_section(page, spec.get("taints"))
    page.line(0, "Unschedulable:", str(bool(spec.get("unschedulable"))).lower())
    if lease is None:
        page.line(0, "Lease:", "<none>")
    else:
        lspec = lease.get("spec") or {}
        page.write(0, "Lease:\n")
        page.line(1, "HolderIdentity:", lspec.get("holderIdentity", "<unset>"))
        page.line(1, "AcquireTime:", rfc1123(lspec.get("acquireTime")))
        page.line(1, "RenewTime:", rfc1123(lspec.get("renewTime")))
    if status.get("conditions"):
        page.write(0, "Conditions:\n  Type\tStatus\tLastHeartbeatTime\tLastTransitionTime\tReason\tMessage\n")
        page.write(1, "----\t------\t-----------------\t------------------\t------\t-------\n")
        for c in status["conditions"]:
            page.write(1, f"{c.get('type')} \t{c.get('status')} \t{rfc1123(c.get('lastHeartbeatTime'))} \t"
                          f"{rfc1123(c.get('lastTransitionTime'))} \t{c.get('reason', '')} \t"
                          f"{c.get('message', '')}\n")
    page.write(0, "Addresses:\n")
    for a in status.get("addresses") or []:
        page.line(1, f"{a.get('type')}:", a.get("address", ""))
    _resource_list(page, "Capacity", status.get("capacity"))
    _resource_list(page, "Allocatable", status.get("allocatable"))
    info = status.get("nodeInfo") or {}
    page.write(0, "System Info:\n")
    for key, title in _SYSTEM_INFO:
        page.line(1, f"{title}:", info.get(key, ""))
    if spec.get("podCIDR"):
        page.line(0, "PodCIDR:", spec["podCIDR"])
    if spec.get("podCIDRs"):
        page.line(0, "PodCIDRs:", ",".join(spec["podCIDRs"]))
    if spec.get("providerID"):
        page.line(0, "ProviderID:", spec["providerID"])
    if pods is not None:
        page.line(0, "Non-terminated Pods:", f"({len(pods)} in total)")
        page.write(1, "Namespace\tName\tAge\n")
        page.write(1, "---------\t----\t---\n")
        for p in pods:
            m = p.get("metadata") or {}
            page.line(1, m.get("namespace", ""), m.get("name", ""), age(m.get("creationTimestamp")))
    events_section(page, events)
    return page.text()
