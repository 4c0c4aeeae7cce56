"""describe pages of Pods and Deployments, line for line as kubectl's describers write
them (k8s.io/kubectl/pkg/describe), from the objects alone."""

from __future__ import annotations

from typing import Any

from netplane.ctl.durations import age, rfc1123
from netplane.ctl.page import (
    Page,
    annotations_section,
    events_section,
    go_value,
    labels_section,
    or_none,
    tolerations_section,
)

Obj = dict[str, Any]

# Kubernetes' probe defaults, for objects a server stored without defaulting them.
_PROBE_DEFAULTS = {"initialDelaySeconds": 0, "timeoutSeconds": 1, "periodSeconds": 10,
                   "successThreshold": 1, "failureThreshold": 3}


def probe_text(probe: Obj) -> str:
    p = {**_PROBE_DEFAULTS, **probe}
    attrs = (f"delay={p['initialDelaySeconds']}s timeout={p['timeoutSeconds']}s "
             f"period={p['periodSeconds']}s #success={p['successThreshold']} "
             f"#failure={p['failureThreshold']}")
    if "exec" in probe:
        return f"exec {go_value((probe['exec'] or {}).get('command') or [])} {attrs}"
    if "httpGet" in probe:
        h = probe["httpGet"] or {}
        host, port = h.get("host", ""), str(h.get("port", ""))
        netloc = (f"[{host}]" if ":" in host else host) + (f":{port}" if port else "")
        return f"http-get {str(h.get('scheme') or 'HTTP').lower()}://{netloc}{h.get('path', '')} {attrs}"
    if "tcpSocket" in probe:
        t = probe["tcpSocket"] or {}
        return f"tcp-socket {t.get('host', '')}:{t.get('port', '')} {attrs}"
    if "grpc" in probe:
        g = probe["grpc"] or {}
        return f"grpc <pod>:{g.get('port')} {g.get('service', '')} {attrs}"
    return f"unknown {attrs}"


def _state(page: Page, title: str, state: Obj) -> None:
    if "running" in state:
        page.write(2, f"{title}:\tRunning\n")
        page.write(3, f"Started:\t{rfc1123((state['running'] or {}).get('startedAt'))}\n")
    elif "terminated" in state:
        t = state["terminated"] or {}
        page.write(2, f"{title}:\tTerminated\n")
        if t.get("reason"):
            page.write(3, f"Reason:\t{t['reason']}\n")
        if t.get("message"):
            page.write(3, f"Message:\t{t['message']}\n")
        page.write(3, f"Exit Code:\t{t.get('exitCode', 0)}\n")
        if t.get("signal"):
            page.write(3, f"Signal:\t{t['signal']}\n")
        page.write(3, f"Started:\t{rfc1123(t.get('startedAt'))}\n")
        page.write(3, f"Finished:\t{rfc1123(t.get('finishedAt'))}\n")
    else:
        page.write(2, f"{title}:\tWaiting\n")
        if (state.get("waiting") or {}).get("reason"):
            page.write(3, f"Reason:\t{state['waiting']['reason']}\n")


def _field_ref(pod: Obj | None, path: str) -> str:
    if pod is None:
        return ""
    node: Any = pod
    for part in path.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    return "" if node is None else str(node)


def _env(page: Page, container: Obj, pod: Obj | None) -> None:
    env = container.get("env") or []
    page.write(2, "Environment:" + ("" if env else "\t<none>") + "\n")
    for e in env:
        source = e.get("valueFrom")
        if not source:
            for i, part in enumerate(str(e.get("value", "")).split("\n")):
                page.write(3, (f"{e['name']}:\t{part}\n" if i == 0 else f"\t{part}\n"))
            continue
        if "fieldRef" in source:
            ref = source["fieldRef"]
            page.write(3, f"{e['name']}:\t{_field_ref(pod, ref.get('fieldPath', ''))} "
                          f"({ref.get('apiVersion', 'v1')}:{ref.get('fieldPath', '')})\n")
        elif "secretKeyRef" in source or "configMapKeyRef" in source:
            secret = "secretKeyRef" in source
            ref = source["secretKeyRef" if secret else "configMapKeyRef"]
            where = f"in secret '{ref.get('name')}'" if secret else f"of config map '{ref.get('name')}'"
            page.write(3, f"{e['name']}:\t<set to the key '{ref.get('key')}' {where}>\t"
                          f"Optional: {go_value(bool(ref.get('optional')))}\n")
        elif "resourceFieldRef" in source:
            ref = source["resourceFieldRef"]
            page.write(3, f"{e['name']}:\t{ref.get('resource')} ({ref.get('containerName', '')})\n")


def _resources(page: Page, resources: Obj) -> None:
    for title in ("limits", "requests"):
        values = resources.get(title) or {}
        if values:
            page.write(2, f"{title.capitalize()}:\n")
            for name in sorted(values):
                page.write(3, f"{name}:\t{values[name]}\n")


def containers_section(page: Page, title: str, containers: list[Obj], statuses: list[Obj] | None,
                       pod: Obj | None, space: str = "") -> None:
    by_name = {s.get("name"): s for s in statuses or []}
    page.write(0, f"{space}{title}:" + ("" if containers else " <none>") + "\n")
    for c in containers:
        status = by_name.get(c.get("name"))
        page.write(1, f"{' ' if space else ''}{c.get('name')}:\n")
        if status is not None:
            page.write(2, f"Container ID:\t{status.get('containerID', '')}\n")
        page.write(2, f"Image:\t{c.get('image', '')}\n")
        if status is not None:
            page.write(2, f"Image ID:\t{status.get('imageID', '')}\n")
        ports = c.get("ports") or []
        text = ",".join(f"{p.get('containerPort')}/{p.get('protocol', 'TCP')}" for p in ports)
        page.write(2, f"{'Ports' if ',' in text else 'Port'}:\t{or_none(text)}\n")
        hosts = ",".join(f"{p.get('hostPort', 0)}/{p.get('protocol', 'TCP')}" for p in ports)
        page.write(2, f"{'Host Ports' if ',' in hosts else 'Host Port'}:\t{or_none(hosts)}\n")
        for key, heading in (("command", "Command"), ("args", "Args")):
            if c.get(key):
                page.write(2, f"{heading}:\n")
                for part in c[key]:
                    for line in str(part).split("\n"):
                        page.write(3, f"{line}\n")
        if status is not None:
            _state(page, "State", status.get("state") or {})
            if (status.get("lastState") or {}).get("terminated"):
                _state(page, "Last State", status["lastState"])
            page.write(2, f"Ready:\t{'True' if status.get('ready') else 'False'}\n")
            page.write(2, f"Restart Count:\t{status.get('restartCount', 0)}\n")
        _resources(page, c.get("resources") or {})
        for key, heading in (("livenessProbe", "Liveness"), ("readinessProbe", "Readiness"),
                             ("startupProbe", "Startup")):
            if c.get(key):
                page.write(2, f"{heading}:\t{probe_text(c[key])}\n")
        _env(page, c, pod)
        mounts = c.get("volumeMounts") or []
        page.write(2, "Mounts:" + ("" if mounts else "\t<none>") + "\n")
        for m in sorted(mounts, key=lambda m: m.get("mountPath", "")):
            flags = ["ro" if m.get("readOnly") else "rw"]
            if m.get("subPath"):
                flags.append(f'path="{m["subPath"]}"')
            page.write(3, f"{m.get('mountPath')} from {m.get('name')} ({','.join(flags)})\n")


_VOLUME_TYPES = {
    "emptyDir": "EmptyDir (a temporary directory that shares a pod's lifetime)",
    "hostPath": "HostPath (bare host directory volume)",
    "configMap": "ConfigMap (a volume populated by a ConfigMap)",
    "secret": "Secret (a volume populated by a Secret)",
    "projected": "Projected (a volume that contains injected data from multiple sources)",
}


def volumes_section(page: Page, volumes: list[Obj] | None, space: str = "") -> None:
    if not volumes:
        page.write(0, f"{space}Volumes:\t<none>\n")
        return
    page.write(0, f"{space}Volumes:\n")
    for v in volumes:
        page.write(1, f"{' ' if space else ''}{v.get('name')}:\n")
        kind = next((k for k in v if k != "name"), "")
        page.write(2, f"Type:\t{_VOLUME_TYPES.get(kind, kind or '<unknown>')}\n")
        source = v.get(kind) or {}
        for key in ("medium", "sizeLimit", "path", "type", "name", "secretName", "optional"):
            if key in source:
                page.write(2, f"{key[0].upper() + key[1:]}:\t{go_value(source[key])}\n")


def _qos(pod: Obj) -> str:
    status_qos = (pod.get("status") or {}).get("qosClass")
    if status_qos:
        return str(status_qos)
    containers = (pod.get("spec") or {}).get("containers") or []
    resources = [c.get("resources") or {} for c in containers]
    if not any(r.get("requests") or r.get("limits") for r in resources):
        return "BestEffort"
    guaranteed = all(
        all(name in (r.get("limits") or {}) for name in ("cpu", "memory"))
        and all((r.get("limits") or {}).get(k) == v for k, v in (r.get("requests") or {}).items())
        for r in resources)
    return "Guaranteed" if guaranteed else "Burstable"


def controller_of(obj: Obj) -> str:
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("controller"):
            return f"{ref.get('kind')}/{ref.get('name')}"
    return ""


def pod(obj: Obj, events: list[Obj] | None) -> str:
    meta, spec, status = obj.get("metadata") or {}, obj.get("spec") or {}, obj.get("status") or {}
    page = Page()
    page.line(0, "Name:", meta.get("name", ""))
    page.line(0, "Namespace:", meta.get("namespace", ""))
    if spec.get("priority") is not None:
        page.line(0, "Priority:", spec["priority"])
    if spec.get("priorityClassName"):
        page.line(0, "Priority Class Name:", spec["priorityClassName"])
    if spec.get("serviceAccountName"):
        page.line(0, "Service Account:", spec["serviceAccountName"])
    node = spec.get("nodeName")
    page.line(0, "Node:", f"{node}/{status.get('hostIP', '')}" if node else "<none>")
    if status.get("startTime"):
        page.line(0, "Start Time:", rfc1123(status["startTime"]))
    labels_section(page, "Labels", meta.get("labels"))
    annotations_section(page, meta.get("annotations"))
    if meta.get("deletionTimestamp") and status.get("phase") not in ("Failed", "Succeeded"):
        page.line(0, "Status:", f"Terminating (lasts {age(meta['deletionTimestamp'])})")
        page.line(0, "Termination Grace Period:", f"{meta.get('deletionGracePeriodSeconds', 0)}s")
    else:
        page.line(0, "Status:", status.get("phase", ""))
    for key in ("reason", "message"):
        if status.get(key):
            page.line(0, f"{key.capitalize()}:", status[key])
    page.line(0, "IP:", status.get("podIP", ""))
    if status.get("podIPs"):
        page.write(0, "IPs:\n")
        for ip in status["podIPs"]:
            page.line(1, "IP:", ip.get("ip", ""))
    else:
        page.line(0, "IPs:", "<none>")
    if controller_of(obj):
        page.line(0, "Controlled By:", controller_of(obj))
    if status.get("nominatedNodeName"):
        page.line(0, "NominatedNodeName:", status["nominatedNodeName"])
    if spec.get("initContainers"):
        containers_section(page, "Init Containers", spec["initContainers"],
                           status.get("initContainerStatuses"), obj)
    containers_section(page, "Containers", spec.get("containers") or [], status.get("containerStatuses"),
                       obj)
    if status.get("conditions"):
        page.write(0, "Conditions:\n  Type\tStatus\n")
        for c in status["conditions"]:
            page.write(1, f"{c.get('type')} \t{c.get('status')} \n")
    volumes_section(page, spec.get("volumes"))
    page.line(0, "QoS Class:", _qos(obj))
    labels_section(page, "Node-Selectors", spec.get("nodeSelector"))
    tolerations_section(page, "Tolerations", spec.get("tolerations"))
    events_section(page, events)
    return page.text()


def pod_template_section(page: Page, template: Obj) -> None:
    meta, spec = template.get("metadata") or {}, template.get("spec") or {}
    page.write(0, "Pod Template:\n")
    labels_section(page, "  Labels", meta.get("labels"))
    if meta.get("annotations"):
        annotations_section(page, meta["annotations"], "  Annotations")
    if spec.get("serviceAccountName"):
        page.line(1, "Service Account:", spec["serviceAccountName"])
    if spec.get("initContainers"):
        containers_section(page, "Init Containers", spec["initContainers"], None, None, "  ")
    containers_section(page, "Containers", spec.get("containers") or [], None, None, "  ")
    volumes_section(page, spec.get("volumes"), "  ")
    if spec.get("priorityClassName"):
        page.line(1, "Priority Class Name:", spec["priorityClassName"])
    labels_section(page, "  Node-Selectors", spec.get("nodeSelector"))
    tolerations_section(page, "  Tolerations", spec.get("tolerations"))


def selector_text(selector: Obj | None) -> str:
    """metav1.LabelSelectorAsSelector(...).String(): `app=web,tier in (a,b)`."""
    if not selector:
        return "<none>"
    parts = [f"{k}={v}" for k, v in (selector.get("matchLabels") or {}).items()]
    for e in selector.get("matchExpressions") or []:
        key, op, values = e.get("key"), e.get("operator"), sorted(e.get("values") or [])
        parts.append({"In": f"{key} in ({','.join(values)})", "NotIn": f"{key} notin ({','.join(values)})",
                      "Exists": f"{key}", "DoesNotExist": f"!{key}"}.get(str(op), f"{key} {op}"))
    return ",".join(sorted(parts)) or "<none>"


def _replica_sets_text(sets: list[Obj]) -> str:
    texts = [f"{rs['metadata']['name']} ({(rs.get('status') or {}).get('replicas', 0)}/"
             f"{(rs.get('spec') or {}).get('replicas', 1)} replicas created)" for rs in sets]
    return ", ".join(texts) or "<none>"


def _without_hash(template: Obj) -> Obj:
    meta = dict(template.get("metadata") or {})
    meta["labels"] = {k: v for k, v in (meta.get("labels") or {}).items() if k != "pod-template-hash"}
    return {**template, "metadata": meta}


def split_replica_sets(deploy: Obj, sets: list[Obj]) -> tuple[list[Obj], Obj | None]:
    """deploymentutil.GetAllReplicaSets: the Deployment's own ReplicaSets → (old ones that
    still have replicas, the one whose template is the Deployment's)."""
    uid = deploy["metadata"].get("uid")
    owned = [rs for rs in sets if any(r.get("uid") == uid and r.get("controller")
                                      for r in rs["metadata"].get("ownerReferences") or [])]
    wanted = _without_hash((deploy.get("spec") or {}).get("template") or {})
    new = next((rs for rs in owned
                if _without_hash((rs.get("spec") or {}).get("template") or {}) == wanted), None)
    old = [rs for rs in owned if rs is not new and (rs.get("spec") or {}).get("replicas", 1) != 0]
    return old, new


def deployment(obj: Obj, replica_sets: list[Obj] | None, events: list[Obj] | None) -> str:
    meta, spec, status = obj.get("metadata") or {}, obj.get("spec") or {}, obj.get("status") or {}
    page = Page()
    page.line(0, "Name:", meta.get("name", ""))
    page.line(0, "Namespace:", meta.get("namespace", ""))
    page.line(0, "CreationTimestamp:", rfc1123(meta.get("creationTimestamp")))
    labels_section(page, "Labels", meta.get("labels"))
    annotations_section(page, meta.get("annotations"))
    page.line(0, "Selector:", selector_text(spec.get("selector")))
    page.line(0, "Replicas:", f"{spec.get('replicas', 1)} desired | {status.get('updatedReplicas', 0)} "
              f"updated | {status.get('replicas', 0)} total | {status.get('availableReplicas', 0)} "
              f"available | {status.get('unavailableReplicas', 0)} unavailable")
    strategy = spec.get("strategy") or {}
    page.line(0, "StrategyType:", strategy.get("type", ""))
    page.line(0, "MinReadySeconds:", spec.get("minReadySeconds", 0))
    if strategy.get("rollingUpdate") is not None:
        ru = strategy["rollingUpdate"] or {}
        page.line(0, "RollingUpdateStrategy:", f"{ru.get('maxUnavailable', '<nil>')} max unavailable, "
                  f"{ru.get('maxSurge', '<nil>')} max surge")
    pod_template_section(page, spec.get("template") or {})
    if status.get("conditions"):
        page.write(0, "Conditions:\n  Type\tStatus\tReason\n")
        page.write(1, "----\t------\t------\n")
        for c in status["conditions"]:
            page.write(1, f"{c.get('type')} \t{c.get('status')}\t{c.get('reason', '')}\n")
    if replica_sets is not None:
        old, new = split_replica_sets(obj, replica_sets)
        page.line(0, "OldReplicaSets:", _replica_sets_text(old))
        page.line(0, "NewReplicaSet:", _replica_sets_text([new] if new else []))
    events_section(page, events)
    return page.text()

