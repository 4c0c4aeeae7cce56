"""Server-side printing: `meta.k8s.io/v1 Table` with the columns `kubectl get` shows.

Column sets follow Kubernetes' own printers (pkg/printers/internalversion), so
`kubectl get`, `-o wide` and `netplane ctl get` print what an engineer expects.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from control.apiserver.resources import ResourceInfo

Obj = dict[str, Any]
Column = tuple[str, str, int, Callable[[Obj], Any]]  # name, type, priority, cell


def age(obj: Obj, now: datetime | None = None) -> str:
    stamp = (obj.get("metadata") or {}).get("creationTimestamp")
    if not stamp:
        return "<unknown>"
    try:
        then = datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError:
        return "<invalid>"
    seconds = int(((now or datetime.now(UTC)) - then).total_seconds())
    return human_duration(max(seconds, 0))


def human_duration(seconds: int) -> str:
    """Kubernetes' duration.HumanDuration: 45s, 5m30s, 3h20m, 4d5h, 2y30d."""
    if seconds < 120:
        return f"{seconds}s"
    minutes = seconds // 60
    if minutes < 10:
        rest = seconds % 60
        return f"{minutes}m{rest}s" if rest else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    hours = minutes // 60
    if hours < 8:
        rest = minutes % 60
        return f"{hours}h{rest}m" if rest else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    days = hours // 24
    if days < 8:
        rest = hours % 24
        return f"{days}d{rest}h" if rest else f"{days}d"
    if days < 365 * 2:
        return f"{days}d"
    years, rest = days // 365, days % 365
    return f"{years}y{rest}d" if rest else f"{years}y"


def _spec(o: Obj) -> Obj:
    return o.get("spec") or {}


def _status(o: Obj) -> Obj:
    return o.get("status") or {}


def _name(o: Obj) -> str:
    return o["metadata"].get("name", "")


def _selector_text(sel: Obj | None) -> str:
    if not sel:
        return "<none>"
    labels = sel.get("matchLabels", sel) if isinstance(sel, dict) else {}
    parts = [f"{k}={v}" for k, v in sorted(labels.items()) if isinstance(v, str)]
    return ",".join(parts) or "<none>"


def _service_ports(o: Obj) -> str:
    out = []
    for p in _spec(o).get("ports") or []:
        text = f"{p.get('port')}"
        if p.get("nodePort"):
            text += f":{p['nodePort']}"
        out.append(f"{text}/{p.get('protocol', 'TCP')}")
    return ",".join(out) or "<none>"


def _external_ip(o: Obj) -> str:
    spec = _spec(o)
    if spec.get("type") == "ExternalName":
        return spec.get("externalName", "<none>")
    ips = list(spec.get("externalIPs") or [])
    ips += [i.get("ip") or i.get("hostname", "") for i in
            (_status(o).get("loadBalancer") or {}).get("ingress") or []]
    if ips:
        return ",".join(ips)
    return "<pending>" if spec.get("type") == "LoadBalancer" else "<none>"


def _pod_ready(o: Obj) -> str:
    statuses = _status(o).get("containerStatuses") or []
    total = len(_spec(o).get("containers") or [])
    return f"{sum(1 for c in statuses if c.get('ready'))}/{total}"


def _pod_status(o: Obj) -> str:
    if o["metadata"].get("deletionTimestamp"):
        return "Terminating"
    status = _status(o)
    for c in status.get("containerStatuses") or []:
        waiting = (c.get("state") or {}).get("waiting")
        if waiting and waiting.get("reason"):
            return str(waiting["reason"])
    return status.get("reason") or status.get("phase") or "Unknown"


def _restarts(o: Obj) -> int:
    return sum(int(c.get("restartCount", 0)) for c in _status(o).get("containerStatuses") or [])


def _node_status(o: Obj) -> str:
    ready = next((c for c in _status(o).get("conditions") or [] if c.get("type") == "Ready"), None)
    text = "Unknown" if ready is None else ("Ready" if ready.get("status") == "True" else "NotReady")
    if _spec(o).get("unschedulable"):
        text += ",SchedulingDisabled"
    return text


def _node_roles(o: Obj) -> str:
    prefix = "node-role.kubernetes.io/"
    roles = [k[len(prefix):] for k in (o["metadata"].get("labels") or {}) if k.startswith(prefix)]
    return ",".join(sorted(roles)) or "<none>"


def _node_address(kind: str) -> Callable[[Obj], str]:
    def cell(o: Obj) -> str:
        for a in _status(o).get("addresses") or []:
            if a.get("type") == kind:
                return str(a.get("address", ""))
        return "<none>"
    return cell


def _endpoints_text(addrs: list[str], limit: int = 3) -> str:
    if not addrs:
        return "<none>"
    text = ",".join(addrs[:limit])
    return text + (f" + {len(addrs) - limit} more..." if len(addrs) > limit else "")


def _legacy_endpoints(o: Obj) -> str:
    out = []
    for subset in o.get("subsets") or []:
        for a in subset.get("addresses") or []:
            for p in subset.get("ports") or [{}]:
                out.append(f"{a.get('ip')}:{p.get('port')}" if p.get("port") else a.get("ip"))
    return _endpoints_text(out)


def _slice_ports(o: Obj) -> str:
    ports = [str(p.get("port")) for p in o.get("ports") or [] if p.get("port") is not None]
    return ",".join(ports) or "<unset>"


def _slice_endpoints(o: Obj) -> str:
    return _endpoints_text([a for e in o.get("endpoints") or [] for a in e.get("addresses") or []])


def _containers(o: Obj, field: str) -> str:
    tmpl = ((_spec(o).get("template") or {}).get("spec") or {}).get("containers") or []
    return ",".join(str(c.get(field, "")) for c in tmpl)


def _ingress_hosts(o: Obj) -> str:
    hosts = [r.get("host") or "*" for r in _spec(o).get("rules") or []]
    return ",".join(hosts) or "*"


def _ingress_ports(o: Obj) -> str:
    return "80, 443" if _spec(o).get("tls") else "80"


def _ingress_address(o: Obj) -> str:
    ing = (_status(o).get("loadBalancer") or {}).get("ingress") or []
    return ",".join(i.get("ip") or i.get("hostname", "") for i in ing)


def _event_object(o: Obj) -> str:
    inv = o.get("involvedObject") or {}
    return f"{str(inv.get('kind', '')).lower()}/{inv.get('name', '')}"


def _event_last_seen(o: Obj) -> str:
    stamp = o.get("lastTimestamp") or o.get("eventTime") or (o.get("metadata") or {}).get(
        "creationTimestamp")
    return age({"metadata": {"creationTimestamp": (stamp or "")[:19] + "Z" if stamp else None}})


_NAME: Column = ("Name", "string", 0, _name)
_AGE: Column = ("Age", "string", 0, age)

COLUMNS: dict[str, list[Column]] = {
    "Namespace": [_NAME, ("Status", "string", 0, lambda o: _status(o).get("phase", "")), _AGE],
    "Pod": [
        _NAME, ("Ready", "string", 0, _pod_ready), ("Status", "string", 0, _pod_status),
        ("Restarts", "string", 0, _restarts), _AGE,
        ("IP", "string", 1, lambda o: _status(o).get("podIP") or "<none>"),
        ("Node", "string", 1, lambda o: _spec(o).get("nodeName") or "<none>"),
        ("Nominated Node", "string", 1,
         lambda o: _status(o).get("nominatedNodeName") or "<none>"),
        ("Readiness Gates", "string", 1, lambda o: "<none>"),
    ],
    "Service": [
        _NAME, ("Type", "string", 0, lambda o: _spec(o).get("type", "ClusterIP")),
        ("Cluster-IP", "string", 0, lambda o: _spec(o).get("clusterIP") or "<none>"),
        ("External-IP", "string", 0, _external_ip), ("Port(s)", "string", 0, _service_ports),
        _AGE, ("Selector", "string", 1, lambda o: _selector_text(_spec(o).get("selector"))),
    ],
    "Endpoints": [_NAME, ("Endpoints", "string", 0, _legacy_endpoints), _AGE],
    "EndpointSlice": [
        _NAME, ("AddressType", "string", 0, lambda o: o.get("addressType", "")),
        ("Ports", "string", 0, _slice_ports), ("Endpoints", "string", 0, _slice_endpoints), _AGE,
    ],
    "Node": [
        _NAME, ("Status", "string", 0, _node_status), ("Roles", "string", 0, _node_roles), _AGE,
        ("Version", "string", 0,
         lambda o: (_status(o).get("nodeInfo") or {}).get("kubeletVersion", "")),
        ("Internal-IP", "string", 1, _node_address("InternalIP")),
        ("External-IP", "string", 1, _node_address("ExternalIP")),
        ("OS-Image", "string", 1, lambda o: (_status(o).get("nodeInfo") or {}).get("osImage", "")),
        ("Kernel-Version", "string", 1,
         lambda o: (_status(o).get("nodeInfo") or {}).get("kernelVersion", "")),
        ("Container-Runtime", "string", 1,
         lambda o: (_status(o).get("nodeInfo") or {}).get("containerRuntimeVersion", "")),
    ],
    "Deployment": [
        _NAME,
        ("Ready", "string", 0,
         lambda o: f"{_status(o).get('readyReplicas', 0)}/{_spec(o).get('replicas', 1)}"),
        ("Up-to-date", "integer", 0, lambda o: _status(o).get("updatedReplicas", 0)),
        ("Available", "integer", 0, lambda o: _status(o).get("availableReplicas", 0)), _AGE,
        ("Containers", "string", 1, lambda o: _containers(o, "name")),
        ("Images", "string", 1, lambda o: _containers(o, "image")),
        ("Selector", "string", 1, lambda o: _selector_text(_spec(o).get("selector"))),
    ],
    "ReplicaSet": [
        _NAME, ("Desired", "integer", 0, lambda o: _spec(o).get("replicas", 1)),
        ("Current", "integer", 0, lambda o: _status(o).get("replicas", 0)),
        ("Ready", "integer", 0, lambda o: _status(o).get("readyReplicas", 0)), _AGE,
        ("Containers", "string", 1, lambda o: _containers(o, "name")),
        ("Images", "string", 1, lambda o: _containers(o, "image")),
        ("Selector", "string", 1, lambda o: _selector_text(_spec(o).get("selector"))),
    ],
    "Ingress": [
        _NAME, ("Class", "string", 0, lambda o: _spec(o).get("ingressClassName") or "<none>"),
        ("Hosts", "string", 0, _ingress_hosts), ("Address", "string", 0, _ingress_address),
        ("Ports", "string", 0, _ingress_ports), _AGE,
    ],
    "IngressClass": [
        _NAME, ("Controller", "string", 0, lambda o: _spec(o).get("controller", "")),
        ("Parameters", "string", 0, lambda o: "<none>"), _AGE,
    ],
    "Secret": [
        _NAME, ("Type", "string", 0, lambda o: o.get("type", "Opaque")),
        ("Data", "integer", 0, lambda o: len(o.get("data") or {})), _AGE,
    ],
    "ConfigMap": [
        _NAME,
        ("Data", "integer", 0, lambda o: len(o.get("data") or {}) + len(o.get("binaryData") or {})),
        _AGE,
    ],
    "HTTPRoute": [
        _NAME, ("Hostnames", "string", 0, lambda o: ",".join(_spec(o).get("hostnames") or []) or "*"), _AGE,
    ],
    "Lease": [_NAME, ("Holder", "string", 0, lambda o: _spec(o).get("holderIdentity", "")), _AGE],
    "Event": [
        ("Last Seen", "string", 0, _event_last_seen), ("Type", "string", 0, lambda o: o.get("type", "")),
        ("Reason", "string", 0, lambda o: o.get("reason", "")),
        ("Object", "string", 0, _event_object),
        ("Message", "string", 0, lambda o: o.get("message", "")),
    ],
}


def _row_object(obj: Obj, include: str) -> Obj | None:
    if include == "None":
        return None
    if include == "Object":
        return obj
    return {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
            "metadata": obj.get("metadata") or {}}


def to_table(
    res: ResourceInfo, objs: list[Obj], *, include_object: str = "Metadata",
    resource_version: str = "", continue_token: str = "", with_columns: bool = True,
) -> Obj:
    columns = COLUMNS.get(res.kind, [_NAME, _AGE])
    rows = []
    for obj in objs:
        row: Obj = {"cells": [cell(obj) for _n, _t, _p, cell in columns]}
        shown = _row_object(obj, include_object)
        if shown is not None:
            row["object"] = shown
        rows.append(row)
    meta: Obj = {}
    if resource_version:
        meta["resourceVersion"] = resource_version
    if continue_token:
        meta["continue"] = continue_token
    table: Obj = {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": meta, "rows": rows}
    if with_columns:
        table["columnDefinitions"] = [
            {"name": n, "type": t, "format": "name" if n == "Name" else "", "description": n,
             "priority": p} for n, t, p, _c in columns]
    return table


def wants_table(accept: str) -> bool:
    return "as=Table" in accept
