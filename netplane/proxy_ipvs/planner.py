"""What IPVS mode wants the kernel to hold, from the service map: per service port, its
virtual servers with their real servers, the addresses to bind on kube-ipvs0 and the
ipset members (kube-proxy's syncProxyRules, pkg/proxy/ipvs/proxier.go). Pure.

`Plan` keeps the per-service-port pieces and reference-counted totals, so that a change of
one service port updates the totals in proportion to that port, not to the cluster: two
ports of one Service share their ClusterIP, and two services may share an endpoint's
hairpin entry. IPv4 only, like one kube-proxy proxier of one family.
"""

from __future__ import annotations

import ipaddress
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from netplane.model import ProxyState, categorize_endpoints
from netplane.model.servicemap import Endpoint, ServicePort, ServicePortName
from netplane.proxy_ipvs import names as n
from netplane.proxy_ipvs.table import FLAG_PERSISTENT, FLAG_SCHED2, RealKey, VirtualKey, VirtualServer


@dataclass(frozen=True, order=True, slots=True)
class SetEntry:
    """One ipset member; printed as the ipset command prints it ("10.96.0.1,tcp:80")."""

    ip: str = ""
    protocol: str = ""  # "tcp", "udp", "sctp"
    port: int = 0
    ip2: str = ""  # hash:ip,port,ip's second address, or hash:ip,port,net's network
    cidr2: int = 0  # the network's prefix length (hash:ip,port,net)

    def __str__(self) -> str:
        if not self.ip:
            return str(self.port)  # bitmap:port
        if not self.protocol:
            return self.ip  # hash:ip
        text = f"{self.ip},{self.protocol}:{self.port}"
        if self.ip2:
            text += f",{self.ip2}" + (f"/{self.cidr2}" if self.cidr2 else "")
        return text


@dataclass(frozen=True)
class PlanOptions:
    node_name: str
    # The node's own addresses: node ports get a virtual server on each (loopback excluded:
    # localhost node ports need route_localnet, as in the iptables mode they are off).
    node_ips: tuple[str, ...] = ()
    scheduler: str = n.DEFAULT_SCHEDULER


@dataclass(frozen=True)
class ServicePlan:
    """What one service port asks of the kernel."""

    virtual: tuple[tuple[VirtualServer, tuple[RealKey, ...]], ...] = ()
    vips: tuple[str, ...] = ()
    entries: tuple[tuple[str, SetEntry], ...] = ()


def _ipv4(ip: str) -> bool:
    return bool(ip) and ":" not in ip


def _reals(endpoints: Iterable[Endpoint]) -> tuple[RealKey, ...]:
    return tuple(sorted({RealKey(ep.ip, ep.port) for ep in endpoints if _ipv4(ep.ip)}))


def plan_service(name: ServicePortName, svc: ServicePort, endpoints: tuple[Endpoint, ...],
                 opts: PlanOptions) -> ServicePlan:
    """One service port, in kube-proxy's order: ClusterIP, external IPs, load-balancer IPs,
    node ports, health-check node port."""
    if not _ipv4(svc.cluster_ip):
        return ServicePlan()
    proto = svc.protocol.lower()
    flags, timeout = 0, 0
    if svc.session_affinity_client_ip:
        flags, timeout = FLAG_PERSISTENT, svc.sticky_max_age_seconds
    if opts.scheduler == "mh":
        flags |= FLAG_SCHED2  # kube-proxy's FlagSourceHash: mh hashes the source port too

    def vs(address: str, port: int) -> VirtualServer:
        return VirtualServer(VirtualKey(svc.protocol, address, port), opts.scheduler, flags, timeout)

    cat = categorize_endpoints(endpoints, svc, opts.node_name)

    def reals(only_local: bool) -> tuple[RealKey, ...]:
        # kube-proxy's syncEndpoint: "Local" policy takes local endpoints, and falls back
        # to the cluster's ones when there are none here (kubernetes#97081: local pods keep
        # working; traffic from outside is answered by a pod address and dropped).
        if only_local and cat.local:
            return _reals(cat.local)
        return _reals(cat.cluster)

    virtual: list[tuple[VirtualServer, tuple[RealKey, ...]]] = []
    vips: list[str] = []
    entries: list[tuple[str, SetEntry]] = []
    for ep in endpoints:
        if ep.is_local(opts.node_name) and _ipv4(ep.ip):
            entries.append((n.LOOP_BACK, SetEntry(ep.ip, proto, ep.port, ep.ip)))
    entries.append((n.CLUSTER_IP, SetEntry(svc.cluster_ip, proto, svc.port)))
    virtual.append((vs(svc.cluster_ip, svc.port), reals(svc.internal_policy_local)))
    vips.append(svc.cluster_ip)
    node_ips = set(opts.node_ips)
    for ip in svc.external_ips:
        if not _ipv4(ip):
            continue
        entries.append((n.EXTERNAL_IP_LOCAL if svc.external_policy_local else n.EXTERNAL_IP,
                        SetEntry(ip, proto, svc.port)))
        virtual.append((vs(ip, svc.port), reals(svc.external_policy_local)))
        if ip not in node_ips:  # an address some interface has already is not bound again
            vips.append(ip)
    for ip in svc.load_balancer_ips:
        if not _ipv4(ip):
            continue
        entry = SetEntry(ip, proto, svc.port)
        entries.append((n.LOAD_BALANCER, entry))
        if svc.external_policy_local:
            entries.append((n.LOAD_BALANCER_LOCAL, entry))
        if svc.load_balancer_source_ranges:
            entries.append((n.LOAD_BALANCER_FW, entry))
            allow_node = False
            for source in svc.load_balancer_source_ranges:
                try:
                    net = ipaddress.ip_network(source.strip(), strict=False)
                except ValueError:
                    continue  # the apiserver validates them; one that slipped through allows nothing
                if net.version != 4:
                    continue
                entries.append((n.LOAD_BALANCER_SOURCE_CIDR,
                                SetEntry(ip, proto, svc.port, str(net.network_address), net.prefixlen)))
                allow_node = allow_node or any(ipaddress.ip_address(a) in net for a in opts.node_ips)
            if allow_node:
                # Traffic from the node to its own load balancer loops back without
                # reaching the balancer: let it through (kube-proxy's allowFromNode).
                entries.append((n.LOAD_BALANCER_SOURCE_IP, SetEntry(ip, proto, svc.port, ip)))
        virtual.append((vs(ip, svc.port), reals(svc.external_policy_local)))
        if ip not in node_ips:
            vips.append(ip)
    if svc.node_port and opts.node_ips:
        if proto == "sctp":
            np_entries = [SetEntry(ip, proto, svc.node_port) for ip in opts.node_ips]
            sets = (n.NODE_PORT_SCTP, n.NODE_PORT_LOCAL_SCTP)
        else:
            np_entries = [SetEntry(port=svc.node_port)]
            sets = ((n.NODE_PORT_TCP, n.NODE_PORT_LOCAL_TCP) if proto == "tcp"
                    else (n.NODE_PORT_UDP, n.NODE_PORT_LOCAL_UDP))
        entries += [(sets[0], e) for e in np_entries]
        if svc.external_policy_local:
            entries += [(sets[1], e) for e in np_entries]
        for ip in opts.node_ips:
            virtual.append((vs(ip, svc.node_port), reals(svc.external_policy_local)))
    if svc.health_check_node_port:
        entries.append((n.HEALTH_CHECK_NODE_PORT, SetEntry(port=svc.health_check_node_port)))
    return ServicePlan(tuple(virtual), tuple(dict.fromkeys(vips)), tuple(dict.fromkeys(entries)))


@dataclass(frozen=True)
class PlanChange:
    """What an update changed: virtual servers to look at, members and VIPs that came or went."""

    virtual: frozenset[VirtualKey] = frozenset()
    entries_added: frozenset[tuple[str, SetEntry]] = frozenset()
    entries_removed: frozenset[tuple[str, SetEntry]] = frozenset()
    vips_added: frozenset[str] = frozenset()
    vips_removed: frozenset[str] = frozenset()


@dataclass
class Plan:
    """The whole desired state, kept up to date service port by service port."""

    options: PlanOptions
    services: dict[ServicePortName, ServicePlan] = field(default_factory=dict)
    virtual: dict[VirtualKey, tuple[VirtualServer, tuple[RealKey, ...]]] = field(default_factory=dict)
    # Which service port owns each virtual server (two services claiming one external IP
    # and port: the first in name order keeps it, as a full plan would decide).
    owner: dict[VirtualKey, ServicePortName] = field(default_factory=dict)
    claims: dict[VirtualKey, set[ServicePortName]] = field(default_factory=dict)
    vip_refs: Counter[str] = field(default_factory=Counter)
    entry_refs: Counter[tuple[str, SetEntry]] = field(default_factory=Counter)
    set_sizes: Counter[str] = field(default_factory=Counter)

    @classmethod
    def build(cls, state: ProxyState, options: PlanOptions) -> Plan:
        plan = cls(options)
        plan.update(state, state.services.keys())
        return plan

    def update(self, state: ProxyState, names: Iterable[ServicePortName]) -> PlanChange:
        """Re-plans the service ports `names` (present in `state` or gone from it); returns
        what that changed in the totals."""
        touched: set[VirtualKey] = set()
        entries: set[tuple[str, SetEntry]] = set()
        vips: set[str] = set()
        before_entries: dict[tuple[str, SetEntry], bool] = {}
        before_vips: dict[str, bool] = {}
        for name in sorted(names):
            old = self.services.pop(name, None)
            svc = state.services.get(name)
            new = plan_service(name, svc, state.endpoints_for(name), self.options) if svc else None
            for plan in (old, new):
                if plan is None:
                    continue
                for e in plan.entries:
                    before_entries.setdefault(e, e in self.entry_refs)
                for v in plan.vips:
                    before_vips.setdefault(v, v in self.vip_refs)
            if old is not None:
                self._remove(name, old, touched)
            if new is not None:
                self.services[name] = new
                self._add(name, new, touched)
        for e, was in before_entries.items():
            if was != (e in self.entry_refs):
                entries.add(e)
        for v, was in before_vips.items():
            if was != (v in self.vip_refs):
                vips.add(v)
        return PlanChange(frozenset(touched), frozenset(e for e in entries if e in self.entry_refs),
                          frozenset(e for e in entries if e not in self.entry_refs),
                          frozenset(v for v in vips if v in self.vip_refs),
                          frozenset(v for v in vips if v not in self.vip_refs))

    def _remove(self, name: ServicePortName, old: ServicePlan, touched: set[VirtualKey]) -> None:
        for vs, _ in old.virtual:
            touched.add(vs.key)
            claimants = self.claims.get(vs.key)
            if claimants is None:
                continue  # the same key twice in one plan: handled the first time
            claimants.discard(name)
            if self.owner.get(vs.key) == name:
                del self.owner[vs.key]
                del self.virtual[vs.key]
                if claimants:
                    self._reclaim(vs.key, min(claimants))
            if not claimants:
                del self.claims[vs.key]
        for vip in old.vips:
            self.vip_refs[vip] -= 1
            if self.vip_refs[vip] <= 0:
                del self.vip_refs[vip]
        for entry in old.entries:
            self.entry_refs[entry] -= 1
            if self.entry_refs[entry] <= 0:
                del self.entry_refs[entry]
                self.set_sizes[entry[0]] -= 1

    def _reclaim(self, key: VirtualKey, heir: ServicePortName) -> None:
        """A virtual server lost its owner: the next service port claiming it takes it."""
        for vs, reals in self.services[heir].virtual:
            if vs.key == key:
                self.virtual[key] = (vs, reals)
                self.owner[key] = heir
                return

    def _add(self, name: ServicePortName, new: ServicePlan, touched: set[VirtualKey]) -> None:
        for vs, reals in new.virtual:
            touched.add(vs.key)
            self.claims.setdefault(vs.key, set()).add(name)
            current = self.owner.get(vs.key)
            if current is None or name < current:
                self.virtual[vs.key] = (vs, reals)
                self.owner[vs.key] = name
        self.vip_refs.update(new.vips)
        for entry in new.entries:
            self.entry_refs[entry] += 1
            if self.entry_refs[entry] == 1:
                self.set_sizes[entry[0]] += 1

    @property
    def vips(self) -> set[str]:
        return set(self.vip_refs)

    def ipsets(self) -> dict[str, set[SetEntry]]:
        """Every ipset's members (KUBE-IPVS-IPS holds the bound addresses)."""
        out: dict[str, set[SetEntry]] = {info.name: set() for info in n.IPSETS}
        for set_name, entry in self.entry_refs:
            out[set_name].add(entry)
        out[n.IPVS_IPS] = {SetEntry(ip) for ip in self.vip_refs}
        return out

    def nonempty_sets(self) -> frozenset[str]:
        """The ipsets with members: which iptables rules exist depends on it."""
        names = {set_name for set_name, size in self.set_sizes.items() if size > 0}
        if self.vip_refs:
            names.add(n.IPVS_IPS)
        return frozenset(names)
