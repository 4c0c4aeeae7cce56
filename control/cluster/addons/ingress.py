"""The ingress gateway add-on: `netplane ingress` as a Deployment in `ingress-netplane`, the
IngressClass `netplane` (the cluster's default), and a NodePort Service with fixed node
ports, which `netplane up` forwards a loopback port of the host to (control/cluster/
hostports.py), as kind's extraPortMappings do for ingress-nginx."""

from __future__ import annotations

from typing import Any

from control.cluster.addons import AddonContext

NAME = "ingress"
NAMESPACE = "ingress-netplane"
CLASS = "netplane"
CONTROLLER = "netplane.io/ingress"
LABELS = {"app.kubernetes.io/name": "netplane-ingress", "app.kubernetes.io/component": "controller"}
HTTP_PORT, HTTPS_PORT, METRICS_PORT = 8080, 8443, 10254
# Fixed, so that the host's forwarded ports know where to go.
HTTP_NODE_PORT, HTTPS_NODE_PORT = 30080, 30443


def _container(ctx: AddonContext) -> dict[str, Any]:
    command = ctx.netplane(
        "ingress", "--kubeconfig", ctx.kubeconfig, "--ingress-class", CLASS,
        "--listen", f"0.0.0.0:{HTTP_PORT}", "--tls-listen", f"0.0.0.0:{HTTPS_PORT}",
        "--metrics-listen", f"0.0.0.0:{METRICS_PORT}",
        # ssl-redirect sends clients to the port they can reach: the host's forwarded one.
        "--https-port", str(int(ctx.options.get("ingress_https_port", 443))))
    return {
        "name": "controller", "image": "netplane/ingress", "command": command,
        "ports": [{"name": "http", "containerPort": HTTP_PORT}, {"name": "https",
                                                                 "containerPort": HTTPS_PORT},
                  {"name": "metrics", "containerPort": METRICS_PORT}],
        # /healthz is 200 once the informers synced and the first configuration is in.
        "readinessProbe": {"httpGet": {"path": "/healthz", "port": METRICS_PORT}, "periodSeconds": 2},
        "livenessProbe": {"httpGet": {"path": "/healthz", "port": METRICS_PORT}, "initialDelaySeconds": 60,
                          "timeoutSeconds": 5, "periodSeconds": 10, "failureThreshold": 5},
    }


def manifests(ctx: AddonContext) -> list[dict[str, Any]]:
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}
    ingress_class = {
        "apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
        "metadata": {"name": CLASS, "annotations": {"ingressclass.kubernetes.io/is-default-class": "true"}},
        "spec": {"controller": CONTROLLER},
    }
    deployment = {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "netplane-ingress", "namespace": NAMESPACE, "labels": dict(LABELS)},
        "spec": {
            "replicas": int(ctx.options.get("ingress_replicas", 1)),
            "selector": {"matchLabels": dict(LABELS)},
            "template": {"metadata": {"labels": dict(LABELS)},
                         "spec": {"containers": [_container(ctx)], "terminationGracePeriodSeconds": 5}},
        },
    }
    service = {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "netplane-ingress", "namespace": NAMESPACE, "labels": dict(LABELS)},
        "spec": {
            "type": "NodePort", "selector": dict(LABELS),
            "ports": [{"name": "http", "port": 80, "targetPort": HTTP_PORT, "nodePort": HTTP_NODE_PORT,
                       "protocol": "TCP"},
                      {"name": "https", "port": 443, "targetPort": HTTPS_PORT, "nodePort": HTTPS_NODE_PORT,
                       "protocol": "TCP"}],
        },
    }
    return [namespace, ingress_class, service, deployment]
