"""The `kubernetes` Service's endpoints when several apiservers share a store:
kube-apiserver's lease endpoint reconciler (`--endpoint-reconciler-type=lease`).

Each apiserver with an advertised address holds a Lease in kube-system
(`apiserver-endpoint-<ip>`, holderIdentity `ip:port`) and renews it every `interval`
(kube-apiserver: 10 s); each round it writes the EndpointSlice and the legacy Endpoints
named `kubernetes` to the addresses of the leases that have not expired (TTL 15 s), so
pods reach every live apiserver at the Service's ClusterIP. A clean shutdown gives the
lease up and takes its address out at once; a crashed apiserver's address goes when its
lease expires. Only what differs is written: with N apiservers the objects change when
the set of live ones does, not N times per round.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import Callable
from typing import Any

from control.apiserver.errors import ApiError
from control.apiserver.registry import Registry
from control.apiserver.resources import ENDPOINTS, ENDPOINTSLICE, LEASE
from control.apiserver.selection import ObjectFilter

log = logging.getLogger(__name__)

NAMESPACE = "kube-system"
LEASE_PREFIX = "apiserver-endpoint-"
LABEL = "endpoints.netplane.io/kubernetes-service"  # marks the leases this reconciler reads
TTL_SECONDS = 15.0
INTERVAL_SECONDS = 10.0
_TIME = "%Y-%m-%dT%H:%M:%S.%fZ"  # a Lease's MicroTime


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def lease_name(address: str) -> str:
    return LEASE_PREFIX + address.replace(".", "-").replace(":", "-")


def lease_body(address: str, port: int, ttl: float, now: dt.datetime) -> dict[str, Any]:
    return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": lease_name(address), "namespace": NAMESPACE, "labels": {LABEL: "true"}},
            "spec": {"holderIdentity": f"{address}:{port}", "leaseDurationSeconds": max(1, round(ttl)),
                     "renewTime": now.strftime(_TIME)}}


def live_addresses(leases: list[dict[str, Any]], port: int, now: dt.datetime) -> list[str]:
    """The addresses of the leases, among `leases`, that have not expired at `now` and
    serve on `port` (the Service has one target port: apiservers must share it)."""
    out = set()
    for lease in leases:
        spec = lease.get("spec") or {}
        holder, renew = spec.get("holderIdentity") or "", spec.get("renewTime")
        address, _, held_port = holder.rpartition(":")
        if not address or not renew or not held_port.isdigit():
            continue
        try:
            renewed = dt.datetime.strptime(renew, _TIME).replace(tzinfo=dt.UTC)
        except ValueError:
            continue
        if renewed + dt.timedelta(seconds=spec.get("leaseDurationSeconds") or TTL_SECONDS) <= now:
            continue
        if int(held_port) != port:
            log.warning("apiserver %s serves on port %s, not %d: left out of the kubernetes service",
                        address, held_port, port)
            continue
        out.add(address)
    return sorted(out)


def endpoint_objects(addresses: list[str], port: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """The EndpointSlice and Endpoints `kubernetes` for `addresses`, as kube-apiserver's
    reconciler writes them."""
    ports = [{"name": "https", "port": port, "protocol": "TCP"}]
    slice_ = {"metadata": {"name": "kubernetes", "labels": {
        "kubernetes.io/service-name": "kubernetes",
        "endpointslice.kubernetes.io/managed-by": "endpointslice-reconciler.netplane.io"}},
        "addressType": "IPv4", "ports": ports,
        "endpoints": [{"addresses": [a], "conditions": {"ready": True}} for a in addresses]}
    subsets = [{"addresses": [{"ip": a} for a in addresses], "ports": ports}] if addresses else []
    endpoints = {"metadata": {"name": "kubernetes"}, "subsets": subsets}
    return slice_, endpoints


class EndpointReconciler:
    def __init__(self, registry: Registry, address: str, port: int, *, ttl: float = TTL_SECONDS,
                 interval: float = INTERVAL_SECONDS, clock: Callable[[], dt.datetime] = _now) -> None:
        self.registry = registry
        self.address, self.port = address, port
        self.ttl, self.interval = ttl, interval
        self.clock = clock

    async def _renew(self) -> None:
        body = lease_body(self.address, self.port, self.ttl, self.clock())
        try:
            await self.registry.create(LEASE, NAMESPACE, body)
        except ApiError as exc:
            if exc.reason != "AlreadyExists":
                raise

            def renew(current: dict[str, Any]) -> dict[str, Any]:
                return {**current, "spec": {**(current.get("spec") or {}), **body["spec"]}}

            await self.registry.guaranteed_update(LEASE, NAMESPACE, lease_name(self.address), renew)

    async def _write(self, addresses: list[str]) -> None:
        for res, body in zip((ENDPOINTSLICE, ENDPOINTS), endpoint_objects(addresses, self.port), strict=True):
            try:
                current = await self.registry.get(res, "default", "kubernetes")
            except ApiError as exc:
                if exc.reason != "NotFound":
                    raise
                with contextlib.suppress(ApiError):  # another apiserver was quicker: next round
                    await self.registry.create(res, "default", body)
                continue
            if all(current.get(k) == v for k, v in body.items() if k != "metadata"):
                continue

            def replace(cur: dict[str, Any], body: dict[str, Any] = body) -> dict[str, Any]:
                return {**body, "metadata": {**cur["metadata"], **body["metadata"]}}

            await self.registry.guaranteed_update(res, "default", "kubernetes", replace)

    async def _live(self) -> list[str]:
        page = await self.registry.list(LEASE, NAMESPACE, ObjectFilter(LEASE, f"{LABEL}=true"))
        return live_addresses(page.items, self.port, self.clock())

    async def reconcile(self) -> list[str]:
        """One round: renew this apiserver's lease, write the live addresses; returns them."""
        await self._renew()
        addresses = await self._live()
        if self.address not in addresses:  # just renewed: only a clock gone wrong drops it
            addresses = sorted({*addresses, self.address})
        await self._write(addresses)
        return addresses

    async def run(self) -> None:
        """Forever, every `interval`; a failed round is logged and retried on the next."""
        while True:
            try:
                await self.reconcile()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("the kubernetes service's endpoint reconciler failed a round")
            await asyncio.sleep(self.interval)

    async def stop(self) -> None:
        """On a clean shutdown: give the lease up and take this address out now, rather than
        leave clients a dead endpoint until the lease expires."""
        with contextlib.suppress(ApiError):
            await self.registry.delete(LEASE, NAMESPACE, lease_name(self.address))
        try:
            await self._write([a for a in await self._live() if a != self.address])
        except ApiError as exc:
            log.warning("could not take %s out of the kubernetes service: %s", self.address, exc.message)
