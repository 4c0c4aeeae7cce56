"""Discovery documents: /api, /apis, /api/v1, /apis/<group>/<version>, /version."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

from control.apiserver.resources import RESOURCES, ResourceInfo, groups

# The Kubernetes minor version whose API this server follows (what kubectl compares).
KUBE_MAJOR, KUBE_MINOR = "1", "32"
VERSION = "v1.32.0-netplane"

_SUBRESOURCE_VERBS = {"status": ["get", "patch", "update"], "binding": ["create"],
                      "finalize": ["update"], "scale": ["get", "patch", "update"], "log": ["get"]}
_SUBRESOURCE_KIND = {"binding": "Binding", "scale": "Scale"}


def version_info() -> dict[str, str]:
    return {"major": KUBE_MAJOR, "minor": KUBE_MINOR, "gitVersion": VERSION,
            "gitCommit": "", "gitTreeState": "clean", "buildDate": "", "goVersion": "",
            "compiler": "cpython", "platform": "linux/amd64"}


def _storage_hash(res: ResourceInfo) -> str:
    # kubectl only compares it for equality; derive it like Kubernetes does, from the
    # group/version/kind, so it stays stable across restarts.
    digest = hashlib.sha256(f"{res.api_version}/{res.kind}".encode()).digest()
    return base64.b64encode(digest[:8]).decode()


def api_versions(server_address: str) -> dict[str, Any]:
    return {"kind": "APIVersions", "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0",
                                             "serverAddress": server_address}]}


def _group_doc(name: str, versions: list[str]) -> dict[str, Any]:
    vs = [{"groupVersion": f"{name}/{v}", "version": v} for v in versions]
    return {"name": name, "versions": vs, "preferredVersion": vs[0]}


def api_group_list() -> dict[str, Any]:
    docs = [_group_doc(g, vs) for g, vs in groups().items() if g]
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": docs}


def api_group(name: str) -> dict[str, Any] | None:
    versions = groups().get(name)
    if not name or not versions:
        return None
    return {"kind": "APIGroup", "apiVersion": "v1", **_group_doc(name, versions)}


def resource_list(group: str, version: str) -> dict[str, Any] | None:
    members = [r for r in RESOURCES if r.group == group and r.version == version]
    if not members:
        return None
    out: list[dict[str, Any]] = []
    for r in members:
        entry: dict[str, Any] = {"name": r.plural, "singularName": r.singular,
                                 "namespaced": r.namespaced, "kind": r.kind,
                                 "verbs": list(r.verbs), "storageVersionHash": _storage_hash(r)}
        if r.short_names:
            entry["shortNames"] = list(r.short_names)
        if r.categories:
            entry["categories"] = list(r.categories)
        out.append(entry)
        for sub in r.subresources:
            entry = {"name": f"{r.plural}/{sub}", "singularName": "",
                     "namespaced": r.namespaced, "kind": _SUBRESOURCE_KIND.get(sub, r.kind),
                     "verbs": _SUBRESOURCE_VERBS.get(sub, ["get"])}
            if sub == "scale":  # served as autoscaling/v1 Scale, as in Kubernetes
                entry.update(group="autoscaling", version="v1")
            out.append(entry)
    gv = f"{group}/{version}" if group else version
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": out}
