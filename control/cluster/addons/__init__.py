"""Add-ons that `netplane up` runs as pods of the cluster (cluster DNS, the ingress
gateway), as Kubernetes runs them: Deployments behind Services, reached like any other.

Each module of this package is one add-on and exposes `NAME` and
`manifests(ctx: AddonContext) -> list[dict]`. `up` applies every add-on's objects once the
nodes are Ready and waits for their Deployments to be available; a new add-on is a new
module here, nothing else changes.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any


@dataclass(frozen=True)
class AddonContext:
    cluster_id: str
    cluster_dns_ip: str
    cluster_domain: str
    node_names: tuple[str, ...]
    # A kubeconfig pods can use: its server is the apiserver's underlay address, which pods
    # reach through their node (the host's loopback address would not work inside a pod).
    kubeconfig: str = ""
    state_dir: str = ""
    python: str = sys.executable  # pods run commands from the node's own filesystem
    options: dict[str, Any] = field(default_factory=dict)

    def netplane(self, *args: str) -> list[str]:
        """A container command running `netplane ARGS` with this interpreter."""
        return [self.python, "-m", "netplane.cli.main", *args]


# kind -> (API group/version prefix, plural, namespaced)
RESOURCES: dict[str, tuple[str, str, bool]] = {
    "Namespace": ("/api/v1", "namespaces", False),
    "Service": ("/api/v1", "services", True),
    "ConfigMap": ("/api/v1", "configmaps", True),
    "Secret": ("/api/v1", "secrets", True),
    "Deployment": ("/apis/apps/v1", "deployments", True),
    "IngressClass": ("/apis/networking.k8s.io/v1", "ingressclasses", False),
}


def collection_path(obj: dict[str, Any]) -> str:
    prefix, plural, namespaced = RESOURCES[obj["kind"]]
    if namespaced:
        namespace = (obj.get("metadata") or {}).get("namespace") or "default"
        return f"{prefix}/namespaces/{namespace}/{plural}"
    return f"{prefix}/{plural}"


def discover() -> list[ModuleType]:
    """Every add-on module of this package, in name order."""
    return [importlib.import_module(f"{__name__}.{m.name}") for m in sorted(pkgutil.iter_modules(__path__),
                                                                             key=lambda m: m.name)]
