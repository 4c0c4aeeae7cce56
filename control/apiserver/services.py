"""Service semantics of the apiserver: ClusterIP and NodePort allocation on write.

Kubernetes allocates in the Service REST layer: after defaulting and validation,
before the store write; values are released again if the write fails, and the
old ones after an update that dropped them has been stored.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from control.apiserver import errors
from control.apiserver.allocators import (
    AllocationError,
    ClusterIPAllocator,
    NodePortAllocator,
    service_ips,
    service_node_ports,
)
from control.apiserver.resources import SERVICE, ResourceInfo
from control.store import Store

# How old a reservation without a Service must be before repair() on a shared store takes
# it for a leak: far above any request's lifetime (Kubernetes' request timeout is 60 s).
LEAK_AGE = 300.0

Release = Callable[[], Awaitable[None]]
Finish = Callable[[bool], Awaitable[None]]  # called with True to roll back, False to commit


def _owner(svc: dict[str, Any]) -> str:
    meta = svc["metadata"]
    return f"{meta.get('namespace')}/{meta.get('name')}"


def _needs_node_ports(spec: dict[str, Any]) -> bool:
    return spec.get("type") in ("NodePort", "LoadBalancer")


def _invalid(svc: dict[str, Any], field: str, value: Any, detail: str) -> errors.ApiError:
    name = svc["metadata"].get("name", "")
    message = f"Invalid value: {value!r}: {detail}".replace("'", '"')
    return errors.invalid("Service", "", name, f'Service "{name}" is invalid: {field}: {message}',
                          [{"reason": "FieldValueInvalid", "message": message, "field": field}])


async def _noop(*_args: object) -> None:
    return None


class ServiceAllocations:
    def __init__(self, store: Store, service_cidr: str, node_port_range: tuple[int, int]) -> None:
        self.ips = ClusterIPAllocator(store, service_cidr)
        self.ports = NodePortAllocator(store, node_port_range)
        self._store = store

    async def load(self) -> None:
        await self.ips.load()
        await self.ports.load()

    async def repair(self, services: list[dict[str, Any]]) -> dict[str, int]:
        """Reclaims reservations no Service holds (a crash between reserving and storing)
        and reserves what stored Services hold but is not reserved."""
        ips = {ip: _owner(s) for s in services for ip in service_ips(s)}
        ports = {str(p): _owner(s) for s in services for p in service_node_ports(s)}
        # With other apiservers on the store, a reservation without a Service may be one
        # they are storing right now: only one older than any request reclaims.
        min_age = LEAK_AGE if self._store.shared else 0.0
        ip_res, ip_rel = await self.ips.repair(ips, min_age)
        port_res, port_rel = await self.ports.repair(ports, min_age)
        return {"ips_reserved": ip_res, "ips_released": ip_rel,
                "ports_reserved": port_res, "ports_released": port_rel}

    # -- hooks the registry calls ---------------------------------------------------------

    async def on_create(self, res: ResourceInfo, svc: dict[str, Any], dry_run: bool) -> Release:
        if res is not SERVICE:
            return _noop
        taken: list[tuple[Any, str]] = []

        async def release() -> None:
            for allocator, value in taken:
                await allocator.release(value, _owner(svc))

        try:
            await self._allocate(svc, None, taken)
        except BaseException:
            await release()
            raise
        if dry_run:
            await release()
            return _noop
        return release

    def patch_allocated(self, res: ResourceInfo, old: dict[str, Any], new: dict[str, Any]) -> None:
        """Keeps allocated values a client left out of an update (Kubernetes'
        patchAllocatedValues): a PUT without clusterIP or nodePort keeps them."""
        if res is not SERVICE:
            return
        ospec, nspec = old.get("spec") or {}, new.setdefault("spec", {})
        if ospec.get("type") != "ExternalName" and nspec.get("type") != "ExternalName":
            for field in ("clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy"):
                if not nspec.get(field) and ospec.get(field):
                    nspec[field] = ospec[field]
        if _needs_node_ports(nspec) and _needs_node_ports(ospec):
            old_ports = {(p.get("port"), p.get("protocol", "TCP")): p.get("nodePort")
                         for p in ospec.get("ports") or []}
            for port in nspec.get("ports") or []:
                wanted = old_ports.get((port.get("port"), port.get("protocol", "TCP")))
                if not port.get("nodePort") and wanted:
                    port["nodePort"] = wanted
            if not nspec.get("healthCheckNodePort") and ospec.get("healthCheckNodePort"):
                nspec["healthCheckNodePort"] = ospec["healthCheckNodePort"]

    async def on_update(
        self, res: ResourceInfo, old: dict[str, Any], new: dict[str, Any], dry_run: bool
    ) -> Finish:
        if res is not SERVICE:
            return _noop
        taken: list[tuple[Any, str]] = []
        try:
            await self._allocate(new, old, taken)
        except BaseException:
            for allocator, value in taken:
                await allocator.release(value, _owner(new))
            raise
        owner = _owner(new)
        dropped_ips = set(service_ips(old)) - set(service_ips(new))
        dropped_ports = service_node_ports(old) - service_node_ports(new)

        async def finish(rollback: bool) -> None:
            if rollback or dry_run:
                for allocator, value in taken:
                    await allocator.release(value, owner)
                return
            for ip in dropped_ips:
                await self.ips.release(ip, owner)
            for port in dropped_ports:
                await self.ports.release(str(port), owner)

        return finish

    async def on_delete(self, res: ResourceInfo, svc: dict[str, Any]) -> None:
        if res is not SERVICE:
            return
        owner = _owner(svc)
        for ip in service_ips(svc):
            await self.ips.release(ip, owner)
        for port in service_node_ports(svc):
            await self.ports.release(str(port), owner)

    # -- allocation ------------------------------------------------------------------------

    async def _allocate(
        self, svc: dict[str, Any], old: dict[str, Any] | None, taken: list[tuple[Any, str]]
    ) -> None:
        spec = svc.setdefault("spec", {})
        owner = _owner(svc)
        old_spec = (old or {}).get("spec") or {}
        old_ips = set(service_ips(old)) if old else set()
        if spec.get("type") == "ExternalName":
            spec.pop("clusterIP", None)
            spec.pop("clusterIPs", None)
        elif spec.get("clusterIP") == "None":
            spec["clusterIPs"] = ["None"]
            spec.setdefault("ipFamilies", ["IPv4"])
            spec.setdefault("ipFamilyPolicy", "SingleStack")
        else:
            ip = spec.get("clusterIP") or ""
            if ip and ip not in old_ips:
                try:
                    if await self.ips.allocate_specific(ip, owner):
                        taken.append((self.ips, ip))
                except AllocationError as exc:
                    raise _invalid(svc, "spec.clusterIPs[0]", ip,
                                   f"failed to allocate IP {ip}: {exc}") from exc
            elif not ip:
                try:
                    ip = await self.ips.allocate_next(owner)
                except AllocationError as exc:
                    raise errors.internal(f"failed to allocate a serviceIP: {exc}") from exc
                taken.append((self.ips, ip))
            spec["clusterIP"] = ip
            spec["clusterIPs"] = [ip]
            spec.setdefault("ipFamilies", ["IPv4"])
            spec.setdefault("ipFamilyPolicy", "SingleStack")
        if not _needs_node_ports(spec):
            return
        old_ports = service_node_ports(old) if old else set()
        mine: set[int] = set()  # a port may serve TCP and UDP of one Service
        for i, port in enumerate(spec.get("ports") or []):
            wanted = port.get("nodePort")
            field = f"spec.ports[{i}].nodePort"
            if wanted:
                if wanted in old_ports or wanted in mine:
                    mine.add(wanted)
                    continue
                try:
                    if await self.ports.allocate_specific(str(wanted), owner):
                        taken.append((self.ports, str(wanted)))
                except AllocationError as exc:
                    raise _invalid(svc, field, wanted, str(exc)) from exc
            else:
                try:
                    wanted = int(await self.ports.allocate_next(owner))
                except AllocationError as exc:
                    raise errors.internal(f"failed to allocate a nodePort: {exc}") from exc
                port["nodePort"] = wanted
                taken.append((self.ports, str(wanted)))
            mine.add(wanted)
        local = spec.get("externalTrafficPolicy") == "Local"
        if spec.get("type") == "LoadBalancer" and local:
            hc = spec.get("healthCheckNodePort") or old_spec.get("healthCheckNodePort")
            if hc and hc not in old_ports:
                try:
                    if await self.ports.allocate_specific(str(hc), owner):
                        taken.append((self.ports, str(hc)))
                except AllocationError as exc:
                    raise _invalid(svc, "spec.healthCheckNodePort", hc, str(exc)) from exc
            elif not hc:
                hc = int(await self.ports.allocate_next(owner))
                taken.append((self.ports, str(hc)))
            spec["healthCheckNodePort"] = hc
