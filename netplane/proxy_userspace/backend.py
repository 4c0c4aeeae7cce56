"""Userspace mode: a listener per service port on the node, relaying to the endpoints.

Per service port there are up to two listeners, because the two traffic policies pick
different endpoints:
- the *cluster* listener, bound to ClusterIP:port, the ClusterIP being a local address of
  the node (vips.py); endpoints per internalTrafficPolicy;
- the *external* listener: the NodePort itself, or a random port that the external IPs'
  REDIRECT portals (portals.py) lead to; endpoints per externalTrafficPolicy.
An endpoint change only updates the balancers: no kernel work, and established
connections to endpoints that stay are untouched; those to removed endpoints are closed.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from netplane.kernel import conntrack
from netplane.kernel.iptables import VARIANTS, Iptables, IptablesError, detect_variant
from netplane.model import ProxyState, StateChange, categorize_endpoints
from netplane.model.servicemap import Endpoint, ServicePort, ServicePortName
from netplane.proxy.backend import SyncStats
from netplane.proxy_userspace import portals, vips
from netplane.proxy_userspace.balancer import Balancer
from netplane.proxy_userspace.picks import PickLog
from netplane.proxy_userspace.poller import Poller
from netplane.proxy_userspace.relay import PipePool
from netplane.proxy_userspace.tcp import DIAL_TIMEOUTS, TcpService
from netplane.proxy_userspace.udp import UdpService

log = logging.getLogger(__name__)

Listener = TcpService | UdpService


@dataclass
class _Port:
    spn: ServicePortName
    port: ServicePort
    cluster: Listener
    external: Listener | None

    def listeners(self) -> list[Listener]:
        return [self.cluster] + ([self.external] if self.external is not None else [])

    def close(self) -> None:
        for listener in self.listeners():
            listener.close()


def _endpoints_for(port: ServicePort, eps: tuple[Endpoint, ...], node: str) -> tuple[
        tuple[Endpoint, ...], tuple[Endpoint, ...]]:
    """(endpoints of cluster traffic, endpoints of external traffic) per the policies."""
    cat = categorize_endpoints(eps, port, node)
    internal = cat.local if port.internal_policy_local else cat.cluster
    external = cat.local if port.external_policy_local else cat.cluster
    return internal, external


def _needs_external(port: ServicePort) -> bool:
    return bool(port.node_port or port.external_ips)


def _vip(port: ServicePort) -> str | None:
    """The ClusterIP the cluster listener binds: the first IPv4 one."""
    return next((ip for ip in port.cluster_ips if ":" not in ip), None)


class UserspaceBackend:
    mode = "userspace"

    def __init__(self, node_name: str, *, bind_address: str = "0.0.0.0",
                 udp_idle_timeout: float = 0.25, iptables: Iptables | None = None,
                 dial_timeouts: tuple[float, ...] = DIAL_TIMEOUTS) -> None:
        self.node_name = node_name
        self.bind_address = bind_address
        self.udp_idle_timeout = udp_idle_timeout
        self.dial_timeouts = dial_timeouts
        self._iptables = iptables
        self._pool = PipePool()
        self._poller: Poller | None = None
        self.ports: dict[ServicePortName, _Port] = {}
        self._applied_portals: str | None = None
        self._applied_vips: set[str] | None = None
        self.picks = PickLog()

    @property
    def iptables(self) -> Iptables:
        if self._iptables is None:
            self._iptables = Iptables(detect_variant())
        return self._iptables

    # -- listeners ------------------------------------------------------------------------

    def _listen(self, spn: ServicePortName, port: ServicePort, host: str, listen_port: int,
                kind: str) -> Listener:
        loop = asyncio.get_running_loop()
        balancer = Balancer(port.sticky_max_age_seconds if port.session_affinity_client_ip else 0)
        name = f"{spn} ({kind})"
        if port.protocol == "UDP":
            return UdpService(loop, name, host, listen_port, balancer, self.udp_idle_timeout, self.picks)
        if port.protocol == "TCP":
            if self._poller is None:
                self._poller = Poller(loop)
            return TcpService(self._poller, name, host, listen_port, balancer, self._pool,
                              self.dial_timeouts, self.picks)
        raise ValueError(f"userspace mode proxies TCP and UDP, not {port.protocol}")

    def _open(self, spn: ServicePortName, port: ServicePort) -> _Port | None:
        vip = _vip(port)
        if vip is None:
            log.error("%s: userspace mode serves IPv4 ClusterIPs only, not %s", spn, port.cluster_ips)
            return None
        try:
            cluster = self._listen(spn, port, vip, port.port, "cluster IP")
        except (OSError, ValueError) as exc:
            log.error("%s: cannot open its listener: %s", spn, exc)
            return None
        external = None
        if _needs_external(port):
            try:
                kind = "node port" if port.node_port else "external"
                external = self._listen(spn, port, self.bind_address, port.node_port, kind)
            except OSError as exc:
                # kube-proxy logs a taken node port and serves the rest of the service.
                log.error("%s: cannot listen on node port %d: %s", spn, port.node_port, exc)
        return _Port(spn, port, cluster, external)

    def _same_listeners(self, old: ServicePort, new: ServicePort) -> bool:
        return (old.node_port == new.node_port and old.port == new.port and _vip(old) == _vip(new)
                and _needs_external(old) == _needs_external(new))

    def _update_endpoints(self, entry: _Port, eps: tuple[Endpoint, ...]) -> int:
        internal, external = _endpoints_for(entry.port, eps, self.node_name)
        affinity = entry.port.sticky_max_age_seconds if entry.port.session_affinity_client_ip else 0
        closed = 0
        for listener, wanted in ((entry.cluster, internal), (entry.external, external)):
            if listener is None:
                continue
            balancer = listener.balancer
            balancer.set_affinity(affinity)
            gone = {str(ep) for ep in balancer.endpoints} - {str(ep) for ep in wanted}
            balancer.set_endpoints(wanted)
            if gone:
                if isinstance(listener, TcpService):
                    closed += listener.close_connections_to(gone.__contains__)
                else:
                    closed += listener.close_associations_to(gone.__contains__)
        return closed

    # -- what `netplane trace` asks (the metrics port's /debug/...) ---------------------------

    def debug_views(self) -> Mapping[str, Callable[[Mapping[str, str]], Any]]:
        return {"userspace/listeners": lambda _query: self.listener_view(),
                "userspace/picks": lambda query: self.picks.view(query.get("client"))}

    def listener_view(self) -> list[dict[str, Any]]:
        """Every listener: its service port, kind, address and the endpoints it rotates over."""
        out = []
        for spn, entry in sorted(self.ports.items(), key=lambda item: str(item[0])):
            p = entry.port
            kinds: list[tuple[str, Listener, str]] = [("cluster IP", entry.cluster, _vip(p) or "")]
            if entry.external is not None:
                kinds.append(("node port" if p.node_port else "external", entry.external, self.bind_address))
            for kind, listener, host in kinds:
                out.append({"service": str(spn), "kind": kind, "name": listener.name, "protocol": p.protocol,
                            "address": host, "port": listener.port,
                            "endpoints": [str(ep) for ep in listener.balancer.endpoints],
                            "affinity_seconds": listener.balancer.affinity_seconds})
        return out

    # -- the Backend protocol --------------------------------------------------------------

    async def sync(self, state: ProxyState, changes: StateChange, *, full: bool) -> SyncStats:
        names = set(state.services) | set(self.ports) if full else changes.changed
        new_udp: list[str] = []
        closed = 0
        for spn in names:
            port = state.services.get(spn)
            entry = self.ports.get(spn)
            if port is None:
                if entry is not None:
                    entry.close()
                    del self.ports[spn]
                continue
            if entry is not None and not self._same_listeners(entry.port, port):
                entry.close()
                entry = None
            if entry is None:
                entry = self._open(spn, port)
                if entry is None:
                    self.ports.pop(spn, None)
                    continue
                self.ports[spn] = entry
                if port.protocol == "UDP":
                    new_udp += [ip for ip in port.external_ips if ":" not in ip]
            entry.port = port
            closed += self._update_endpoints(entry, state.endpoints_for(spn))
        await self._program_vips(full=full)
        await self._program_portals(full=full)
        if new_udp:
            # Flows to an external IP redirected to an earlier listener (of a restarted
            # proxy, or a re-created service) would keep clients sending to a closed port.
            await asyncio.to_thread(conntrack.delete_flows,
                                    [conntrack.FlowFilter("UDP", orig_dst=ip) for ip in new_udp])
        endpoints = sum(len(state.endpoints_for(s)) for s in self.ports)
        return SyncStats(services=len(self.ports), endpoints=endpoints,
                         detail=f"{len(self.ports)} listeners' sets, {endpoints} endpoints, "
                                f"{closed} connections to removed endpoints closed")

    def portal_list(self) -> list[portals.Portal]:
        out = []
        for spn, entry in self.ports.items():
            p = entry.port
            target = entry.external.port if entry.external is not None else entry.cluster.port
            for ip in p.external_ips:
                if ":" not in ip:
                    out.append(portals.Portal(ip, p.port, p.protocol, target, spn, "external IP"))
        return out

    async def _program_vips(self, *, full: bool) -> None:
        wanted = {vip for entry in self.ports.values() if (vip := _vip(entry.port)) is not None}
        if full or wanted != self._applied_vips:
            self._applied_vips = None
            added, removed = await asyncio.to_thread(vips.sync, wanted)
            self._applied_vips = wanted
            if added or removed:
                log.debug("ClusterIPs on %s: %d added, %d removed", vips.INTERFACE, added, removed)

    async def _program_portals(self, *, full: bool) -> None:
        text = portals.render(self.portal_list())
        if not full and text == self._applied_portals:
            return
        try:
            await self.iptables.restore(text)
            if full:
                await asyncio.to_thread(self._ensure_jumps)
        except IptablesError:
            self._applied_portals = None
            raise
        self._applied_portals = text

    def _ensure_jumps(self) -> None:
        ipt = self.iptables
        for table, chain, target, comment in portals.JUMPS:
            spec = ["-m", "comment", "--comment", comment, "-j", target]
            if ipt.run_blocking("-t", table, "-C", chain, *spec).returncode != 0:
                done = ipt.run_blocking("-t", table, "-I", chain, "1", *spec)
                if done.returncode != 0:
                    raise IptablesError(f"cannot insert the jump to {target} in {table} {chain}: "
                                        f"{done.stderr.strip()}")

    async def close(self) -> None:
        """Closes every listener and connection, and removes the ClusterIP addresses and the
        portals: without the listeners they would lead clients to closed ports."""
        for entry in self.ports.values():
            entry.close()
        self.ports.clear()
        self._pool.close()
        if self._poller is not None:
            self._poller.close()
            self._poller = None
        if self._applied_portals is not None or self._applied_vips:
            try:
                await asyncio.to_thread(self.cleanup)
            except (IptablesError, OSError) as exc:
                log.warning("could not remove what userspace mode installed: %s", exc)

    def cleanup(self) -> list[str]:
        done = []
        _added, removed = vips.sync(set())
        if removed:
            done.append(f"removed {removed} ClusterIP addresses of userspace mode from {vips.INTERFACE}")
        # Both variants: an earlier process may have used the other one.
        for variant in VARIANTS:
            if shutil.which(f"iptables-{variant}-save") is None:
                continue
            ipt = Iptables(variant)
            try:
                saved = ipt.save_blocking("nat")
            except (IptablesError, OSError):
                continue
            if portals.CONTAINER_CHAIN not in saved and portals.HOST_CHAIN not in saved:
                continue
            for table, chain, target, comment in portals.JUMPS:
                spec = ["-m", "comment", "--comment", comment, "-j", target]
                while ipt.run_blocking("-t", table, "-D", chain, *spec).returncode == 0:
                    pass
                # A jump without our comment (hand-made) must go too, or -X fails.
                while ipt.run_blocking("-t", table, "-D", chain, "-j", target).returncode == 0:
                    pass
            ipt.restore_blocking(portals.render_removal())
            done.append(f"removed the userspace portals ({variant} iptables)")
        return done
