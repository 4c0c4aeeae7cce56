"""Namespaces: the built-in ones, and emptying a Terminating namespace before it goes.

Kubernetes runs the second part in its namespace controller; until netplane's
controller-manager exists it runs here, beside the registry, with the same
steps: delete every namespaced object, wait until none is left, then remove the
`kubernetes` finalizer so that the namespace itself is deleted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from control.apiserver.errors import ApiError
from control.apiserver.registry import Registry
from control.apiserver.resources import NAMESPACE, RESOURCES, SERVICE
from control.apiserver.selection import ObjectFilter

log = logging.getLogger(__name__)

BUILTIN_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
_FINALIZER = "kubernetes"


async def bootstrap(registry: Registry, secure_port: int) -> None:
    """Creates what every cluster has: the built-in namespaces and the `kubernetes`
    Service at the first address of the service range."""
    for name in BUILTIN_NAMESPACES:
        with contextlib.suppress(ApiError):
            await registry.create(NAMESPACE, None, {"metadata": {"name": name}})
    svc: dict[str, Any] = {
        "metadata": {"name": "kubernetes", "labels": {"component": "apiserver",
                                                      "provider": "kubernetes"}},
        "spec": {"clusterIP": registry.services.ips.nth(1), "type": "ClusterIP",
                 "ports": [{"name": "https", "port": 443, "protocol": "TCP",
                            "targetPort": secure_port}]},
    }
    try:
        await registry.create(SERVICE, "default", svc)
    except ApiError as exc:
        if exc.reason != "AlreadyExists":
            log.warning("could not create the kubernetes service: %s", exc.message)


async def _finalize(registry: Registry, ns: dict[str, Any]) -> None:
    name = ns["metadata"]["name"]
    remaining = 0
    for res in RESOURCES:
        if not res.namespaced:
            continue
        page = await registry.list(res, name, ObjectFilter(res))
        for obj in page.items:
            remaining += 1
            if obj["metadata"].get("deletionTimestamp"):
                continue
            with contextlib.suppress(ApiError):
                await registry.delete(res, name, obj["metadata"]["name"])
    if remaining:
        return  # Pods may still be shutting down; look again on the next round.

    def drop_finalizer(current: dict[str, Any]) -> dict[str, Any]:
        spec = current.setdefault("spec", {})
        spec["finalizers"] = [f for f in spec.get("finalizers") or [] if f != _FINALIZER]
        return current

    with contextlib.suppress(ApiError):
        await registry.guaranteed_update(NAMESPACE, None, name, drop_finalizer,
                                         subresource="finalize")


async def run_finalizer(registry: Registry, interval: float = 1.0) -> None:
    """Forever: empties and removes Terminating namespaces."""
    while True:
        try:
            page = await registry.list(NAMESPACE, None, ObjectFilter(NAMESPACE))
            for ns in page.items:
                if ns["metadata"].get("deletionTimestamp"):
                    await _finalize(registry, ns)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("namespace finalizer round failed")
        await asyncio.sleep(interval)
