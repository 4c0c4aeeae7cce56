"""The cluster DNS add-on: `netplane dns` as a Deployment in kube-system behind the Service
`kube-system/kube-dns` at the cluster DNS address (the tenth of the service range), which
the kubelets write into every ClusterFirst pod's resolv.conf. Names, labels and ports are
CoreDNS's own manifests', so tools that look for `k8s-app=kube-dns` find it."""

from __future__ import annotations

from typing import Any

from control.cluster.addons import AddonContext

NAME = "dns"
NAMESPACE = "kube-system"
LABELS = {"k8s-app": "kube-dns"}
HEALTH_PORT, METRICS_PORT = 8080, 9153


def _container(ctx: AddonContext) -> dict[str, Any]:
    command = ctx.netplane(
        "dns", "--kubeconfig", ctx.kubeconfig, "--zone", ctx.cluster_domain, "--listen", "0.0.0.0:53",
        "--health-listen", f"0.0.0.0:{HEALTH_PORT}", "--metrics-listen", f"0.0.0.0:{METRICS_PORT}",
        # One round trip for a pod's ndots:5 lookups of outside names (see netplane/dns/autopath.py).
        "--autopath")
    return {
        "name": "dns", "image": "netplane/dns", "command": command,
        "ports": [{"name": "dns", "containerPort": 53, "protocol": "UDP"},
                  {"name": "dns-tcp", "containerPort": 53, "protocol": "TCP"},
                  {"name": "metrics", "containerPort": METRICS_PORT, "protocol": "TCP"}],
        # /ready turns 200 once the informers have synced, so a new replica gets traffic
        # only with a complete zone.
        "readinessProbe": {"httpGet": {"path": "/ready", "port": HEALTH_PORT}, "periodSeconds": 2},
        "livenessProbe": {"httpGet": {"path": "/health", "port": HEALTH_PORT}, "initialDelaySeconds": 60,
                          "timeoutSeconds": 5, "periodSeconds": 10, "failureThreshold": 5},
    }


def manifests(ctx: AddonContext) -> list[dict[str, Any]]:
    deployment = {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "netplane-dns", "namespace": NAMESPACE, "labels": dict(LABELS)},
        "spec": {
            "replicas": int(ctx.options.get("dns_replicas", 2)),
            "selector": {"matchLabels": dict(LABELS)},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}},
            "template": {
                "metadata": {"labels": dict(LABELS)},
                # Default: the node's resolv.conf, whose nameservers become the upstreams
                # (ClusterFirst would point the DNS at itself).
                "spec": {"dnsPolicy": "Default", "containers": [_container(ctx)],
                         "terminationGracePeriodSeconds": 5},
            },
        },
    }
    annotations = {"prometheus.io/port": str(METRICS_PORT), "prometheus.io/scrape": "true"}
    service = {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "kube-dns", "namespace": NAMESPACE,
                     "labels": {**LABELS, "kubernetes.io/name": "netplane-dns"}, "annotations": annotations},
        "spec": {
            "selector": dict(LABELS), "clusterIP": ctx.cluster_dns_ip,
            "ports": [{"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53},
                      {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 53},
                      {"name": "metrics", "port": METRICS_PORT, "protocol": "TCP",
                       "targetPort": METRICS_PORT}],
        },
    }
    return [service, deployment]
