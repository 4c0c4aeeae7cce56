"""describe pages of Services and EndpointSlices, as kubectl's describers write them."""

from __future__ import annotations

from typing import Any

from netplane.ctl.page import Page, annotations_section, events_section, labels_section, labels_text

Obj = dict[str, Any]


def _host_port(address: str, port: Any) -> str:
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def endpoints_text(slices: list[Obj], port_name: str) -> str:
    """kubectl's formatEndpointSlices for one port: up to three ready `ip:port`s, then
    `+ N more...` (N counts every endpoint past three, ready or not)."""
    if not slices:
        return "<none>"
    shown: list[str] = []
    more, count = False, 0
    for s in slices:
        endpoints = s.get("endpoints") or []
        ports = s.get("ports") or []
        groups = [(None, endpoints)] if not ports else [
            (p.get("port"), endpoints) for p in ports if (p.get("name") or "") == port_name]
        for port, eps in groups:
            for ep in eps:
                if len(shown) == 3:
                    more = True
                ready = (ep.get("conditions") or {}).get("ready")
                addresses = ep.get("addresses") or []
                if not more and ready is not False and addresses:
                    shown.append(addresses[0] if port is None else _host_port(addresses[0], port))
                count += 1
    text = ",".join(shown)
    return f"{text} + {count - 3} more..." if more else text


def service(obj: Obj, slices: list[Obj] | None, events: list[Obj] | None) -> str:
    meta, spec = obj.get("metadata") or {}, obj.get("spec") or {}
    status = obj.get("status") or {}
    page = Page()
    page.line(0, "Name:", meta.get("name", ""))
    page.line(0, "Namespace:", meta.get("namespace", ""))
    labels_section(page, "Labels", meta.get("labels"))
    annotations_section(page, meta.get("annotations"))
    page.line(0, "Selector:", labels_text(spec.get("selector")))
    page.line(0, "Type:", spec.get("type", ""))
    if spec.get("ipFamilyPolicy"):
        page.line(0, "IP Family Policy:", spec["ipFamilyPolicy"])
    page.line(0, "IP Families:", ",".join(spec.get("ipFamilies") or []) or "<none>")
    page.line(0, "IP:", spec.get("clusterIP", ""))
    page.line(0, "IPs:", ",".join(spec.get("clusterIPs") or []) or "<none>")
    if spec.get("externalIPs"):
        page.line(0, "External IPs:", ",".join(spec["externalIPs"]))
    if spec.get("loadBalancerIP"):
        page.line(0, "IP:", spec["loadBalancerIP"])
    if spec.get("externalName"):
        page.line(0, "External Name:", spec["externalName"])
    ingress = (status.get("loadBalancer") or {}).get("ingress") or []
    if ingress:
        page.line(0, "LoadBalancer Ingress:",
                  ", ".join(i.get("ip") or i.get("hostname", "") for i in ingress))
    for p in spec.get("ports") or []:
        name, protocol = p.get("name") or "<unset>", p.get("protocol", "TCP")
        page.line(0, "Port:", name, f"{p.get('port')}/{protocol}")
        page.line(0, "TargetPort:", f"{p.get('targetPort', p.get('port'))}/{protocol}")
        if p.get("nodePort"):
            page.line(0, "NodePort:", name, f"{p['nodePort']}/{protocol}")
        page.line(0, "Endpoints:", endpoints_text(slices or [], p.get("name") or ""))
    page.line(0, "Session Affinity:", spec.get("sessionAffinity", ""))
    if spec.get("externalTrafficPolicy"):
        page.line(0, "External Traffic Policy:", spec["externalTrafficPolicy"])
    if spec.get("internalTrafficPolicy"):
        page.line(0, "Internal Traffic Policy:", spec["internalTrafficPolicy"])
    if spec.get("healthCheckNodePort"):
        page.line(0, "HealthCheck NodePort:", spec["healthCheckNodePort"])
    if spec.get("loadBalancerSourceRanges"):
        page.line(0, "LoadBalancer Source Ranges:", ",".join(spec["loadBalancerSourceRanges"]))
    events_section(page, events)
    return page.text()


def endpoint_slice(obj: Obj, events: list[Obj] | None) -> str:
    meta = obj.get("metadata") or {}
    page = Page()
    page.line(0, "Name:", meta.get("name", ""))
    page.line(0, "Namespace:", meta.get("namespace", ""))
    labels_section(page, "Labels", meta.get("labels"))
    annotations_section(page, meta.get("annotations"))
    page.line(0, "AddressType:", obj.get("addressType", ""))
    ports = obj.get("ports") or []
    if not ports:
        page.write(0, "Ports: <unset>\n")
    else:
        page.write(0, "Ports:\n")
        page.write(1, "Name\tPort\tProtocol\n")
        page.write(1, "----\t----\t--------\n")
        for p in ports:
            port = "<unset>" if p.get("port") is None else p["port"]
            page.write(1, f"{p.get('name') or '<unset>'}\t{port}\t{p.get('protocol', 'TCP')}\n")
    endpoints = obj.get("endpoints") or []
    if not endpoints:
        page.write(0, "Endpoints: <none>\n")
    else:
        page.write(0, "Endpoints:\n")
        for ep in endpoints:
            page.write(1, f"- Addresses:\t{', '.join(ep.get('addresses') or []) or '<none>'}\n")
            page.write(2, "Conditions:\n")
            ready = (ep.get("conditions") or {}).get("ready")
            page.write(3, f"Ready:\t{'<unset>' if ready is None else str(bool(ready)).lower()}\n")
            page.write(2, f"Hostname:\t{ep.get('hostname', '<unset>')}\n")
            if ep.get("targetRef"):
                page.write(2, f"TargetRef:\t{ep['targetRef'].get('kind')}/{ep['targetRef'].get('name')}\n")
            page.write(2, f"NodeName:\t{ep.get('nodeName', '<unset>')}\n")
            page.write(2, f"Zone:\t{ep.get('zone', '<unset>')}\n")
    events_section(page, events)
    return page.text()
