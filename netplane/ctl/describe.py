"""`netplane ctl describe`: an object as a person reads it, kubectl-style headings first."""

from __future__ import annotations

from typing import Any

import yaml

_SKIP_ANNOTATIONS = ("kubectl.kubernetes.io/last-applied-configuration",)


def _map(values: dict[str, str] | None, indent: int) -> str:
    if not values:
        return "<none>"
    pad = " " * indent
    return f"\n{pad}".join(f"{k}={v}" for k, v in sorted(values.items()))


def _block(title: str, value: Any) -> list[str]:
    text = yaml.safe_dump(value, sort_keys=False, default_flow_style=False).rstrip()
    return [f"{title}:", *("  " + line for line in text.splitlines())]


def _service(obj: dict[str, Any], slices: list[dict[str, Any]]) -> list[str]:
    spec = obj.get("spec") or {}
    ports = [f"{p.get('name') or '<unset>'}  {p['port']}/{p.get('protocol', 'TCP')}"
             f"  -> {p.get('targetPort', p['port'])}" + (f"  (NodePort {p['nodePort']})"
                                                         if p.get("nodePort") else "")
             for p in spec.get("ports") or []]
    endpoints = [f"{ep['addresses'][0]}" + ("" if (ep.get("conditions") or {}).get("ready", True)
                                            else " (not ready)")
                 for s in slices for ep in s.get("endpoints") or []]
    return [
        f"Selector:          {_map(spec.get('selector'), 19)}",
        f"Type:              {spec.get('type', 'ClusterIP')}",
        f"IP Families:       {', '.join(spec.get('ipFamilies') or []) or '<none>'}",
        f"IP:                {spec.get('clusterIP', '<none>')}",
        f"IPs:               {', '.join(spec.get('clusterIPs') or []) or '<none>'}",
        *(f"Port:              {p}" for p in ports),
        f"Endpoints:         {', '.join(endpoints) or '<none>'}",
        f"Session Affinity:  {spec.get('sessionAffinity', 'None')}",
    ]


def _pod(obj: dict[str, Any]) -> list[str]:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    lines = [
        f"Node:              {spec.get('nodeName', '<none>')}",
        f"Start Time:        {status.get('startTime', '<unset>')}",
        f"Status:            {status.get('phase', 'Unknown')}",
        f"IP:                {status.get('podIP', '<none>')}",
        "Containers:",
    ]
    statuses = {c["name"]: c for c in status.get("containerStatuses") or []}
    for c in spec.get("containers") or []:
        st = statuses.get(c["name"], {})
        state = next(iter(st.get("state") or {"waiting": {}}), "waiting")
        lines += [f"  {c['name']}:",
                  f"    Image:          {c.get('image', '')}",
                  f"    Command:        {' '.join(c.get('command') or []) or '<none>'}",
                  f"    State:          {state.capitalize()}",
                  f"    Ready:          {st.get('ready', False)}",
                  f"    Restart Count:  {st.get('restartCount', 0)}"]
    lines.append("Conditions:")
    lines += [f"  {c['type']:<16}{c['status']}" for c in status.get("conditions") or []]
    return lines


def describe(obj: dict[str, Any], related: list[dict[str, Any]] | None = None) -> str:
    meta = obj.get("metadata") or {}
    annotations = {k: v for k, v in (meta.get("annotations") or {}).items() if k not in _SKIP_ANNOTATIONS}
    lines = [f"Name:              {meta.get('name')}"]
    if meta.get("namespace"):
        lines.append(f"Namespace:         {meta['namespace']}")
    lines += [f"Labels:            {_map(meta.get('labels'), 19)}",
              f"Annotations:       {_map(annotations, 19)}"]
    if meta.get("creationTimestamp"):
        lines.append(f"Created:           {meta['creationTimestamp']}")
    kind = obj.get("kind")
    if kind == "Service":
        lines += _service(obj, related or [])
    elif kind == "Pod":
        lines += _pod(obj)
    else:
        for key, value in obj.items():
            if key not in ("apiVersion", "kind", "metadata") and value not in (None, {}, []):
                lines += _block(key.capitalize(), value)
    return "\n".join(lines) + "\n"
