"""The iptables mode's rules, rendered as `iptables-restore` input with kube-proxy's chain
layout, rule order and comments (pkg/proxy/iptables/proxier.go, syncProxyRules), so the
text reads line for line as kube-proxy's. Pure: state in, text out.

A full render writes every chain. A partial render writes the top-level chains whole
(KUBE-SERVICES and friends are flushed by their declaration) but the per-service chains
(KUBE-SVC/SVL/EXT/FW/SEP) only of the service ports that changed: with --noflush, the
others stay in the kernel as they are. `Renderer` keeps each service port's rendered
lines, so a partial sync at 10k services costs joining strings, not rendering them.

IPv4 only, like one kube-proxy proxier of one family; IPv6 addresses are skipped.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from netplane.model import ProxyState, categorize_endpoints
from netplane.model.servicemap import Endpoint, ServicePort, ServicePortName
from netplane.proxy_iptables import chains as c

NODEPORTS_COMMENT = '"kubernetes service nodeports; NOTE: this must be the last rule in this chain"'


@dataclass(frozen=True)
class RenderOptions:
    node_name: str
    # kube-proxy's LocalTrafficDetector in ClusterCIDR mode; None: no detector (then
    # off-cluster traffic to a ClusterIP is not masqueraded, as kube-proxy does).
    cluster_cidr: str | None = None
    masquerade_all: bool = False
    masquerade_mark: str = "0x4000"
    random_fully: bool = True
    localhost_nodeports: bool = False
    # nf_conntrack_tcp_be_liberal is set: no DROP of INVALID packets (kube-proxy's rule).
    conntrack_tcp_liberal: bool = False
    large_cluster_endpoints: int = 1000


@dataclass(frozen=True)
class ServiceRules:
    """One service port's lines: `head` and `filter` go into chains that every sync rewrites;
    `chains` (declarations) and `body` (their rules) only when the service port is written."""

    head: tuple[str, ...]
    filter: tuple[str, ...]
    chains: tuple[str, ...]
    body: tuple[str, ...]
    no_local_internal: bool = False
    no_local_external: bool = False

    @property
    def active_chains(self) -> list[str]:
        return [line[1:].split(" ", 1)[0] for line in self.chains]


@dataclass(frozen=True)
class Rendered:
    text: str
    active_chains: frozenset[str]
    stale_chains: tuple[str, ...]
    nat_rules: int
    filter_rules: int
    written_services: int
    large_cluster_mode: bool
    no_local_internal: int = 0
    no_local_external: int = 0


def _ipv4(ip: str) -> bool:
    return bool(ip) and ":" not in ip


def _probability(n: int) -> str:
    return f"{1.0 / n:0.10f}"


def render_service(name: ServicePortName, svc: ServicePort, endpoints: Iterable[Endpoint],
                   opts: RenderOptions, large: bool) -> ServiceRules:
    """The lines of one service port, in kube-proxy's order."""
    proto = svc.protocol.lower()
    spn = str(name)
    cluster_chain = c.port_chain(c.SVC, spn, proto)
    local_chain = c.port_chain(c.SVL, spn, proto)
    ext_chain = c.port_chain(c.EXT, spn, proto)
    fw_chain = c.port_chain(c.FW, spn, proto)
    eps = tuple(ep for ep in endpoints if _ipv4(ep.ip))
    cat = categorize_endpoints(eps, svc, opts.node_name)
    has_endpoints = cat.has_any_endpoints
    uses_cluster_chain = bool(cat.cluster) and svc.uses_cluster_endpoints
    uses_local_chain = bool(cat.local) and svc.uses_local_endpoints

    internal_chain, has_internal = cluster_chain, has_endpoints
    if svc.internal_policy_local:
        internal_chain = local_chain
        has_internal = has_internal and bool(cat.local)
    external_policy_chain, has_external = cluster_chain, has_endpoints
    if svc.external_policy_local:
        external_policy_chain = local_chain
        has_external = has_external and bool(cat.local)
    uses_ext_chain = has_endpoints and svc.externally_accessible
    lb_ips = [ip for ip in svc.load_balancer_ips if _ipv4(ip)]
    uses_fw_chain = has_endpoints and bool(lb_ips) and bool(svc.load_balancer_source_ranges)
    lb_chain = fw_chain if uses_fw_chain else ext_chain

    if not has_endpoints:
        internal_target = external_target = "REJECT"
        internal_comment = external_comment = f'"{spn} has no endpoints"'
    else:
        internal_target = external_target = ""
        internal_comment = external_comment = ""
        if not has_internal:
            internal_target, internal_comment = "DROP", f'"{spn} has no local endpoints"'
        if not has_external:
            external_target, external_comment = "DROP", f'"{spn} has no local endpoints"'

    head: list[str] = []
    filt: list[str] = []
    match = f"-m {proto} -p {proto}"
    cip = svc.cluster_ip
    port = svc.port
    if has_internal:
        head.append(f'-A {c.SERVICES} -m comment --comment "{spn} cluster IP" {match} -d {cip} '
                    f"--dport {port} -j {internal_chain}")
    else:
        filt.append(f"-A {c.SERVICES} -m comment --comment {internal_comment} {match} -d {cip} "
                    f"--dport {port} -j {internal_target}")
    for ip in svc.external_ips:
        if not _ipv4(ip):
            continue
        if has_endpoints:
            head.append(f'-A {c.SERVICES} -m comment --comment "{spn} external IP" {match} -d {ip} '
                        f"--dport {port} -j {ext_chain}")
        if not has_external:
            filt.append(f"-A {c.EXTERNAL_SERVICES} -m comment --comment {external_comment} {match} -d {ip} "
                        f"--dport {port} -j {external_target}")
    for ip in lb_ips:
        if has_endpoints:
            head.append(f'-A {c.SERVICES} -m comment --comment "{spn} loadbalancer IP" {match} -d {ip} '
                        f"--dport {port} -j {lb_chain}")
        if uses_fw_chain:
            filt.append(f'-A {c.PROXY_FIREWALL} -m comment --comment "{spn} traffic not accepted by '
                        f'{fw_chain}" {match} -d {ip} --dport {port} -j DROP')
    if not has_external:
        for ip in lb_ips:
            filt.append(f"-A {c.EXTERNAL_SERVICES} -m comment --comment {external_comment} {match} -d {ip} "
                        f"--dport {port} -j {external_target}")
    if svc.node_port:
        if has_endpoints:
            head.append(f"-A {c.NODEPORTS} -m comment --comment {spn} {match} --dport {svc.node_port} "
                        f"-j {ext_chain}")
        if not has_external:
            filt.append(f"-A {c.EXTERNAL_SERVICES} -m comment --comment {external_comment} -m addrtype "
                        f"--dst-type LOCAL {match} --dport {svc.node_port} -j {external_target}")
    if svc.health_check_node_port:
        filt.append(f'-A {c.NODEPORTS} -m comment --comment "{spn} health check node port" -m tcp -p tcp '
                    f"--dport {svc.health_check_node_port} -j ACCEPT")

    decls: list[str] = []
    body: list[str] = []
    if has_internal:
        args = f'-m comment --comment "{spn} cluster IP" {match} -d {cip} --dport {port}'
        if opts.masquerade_all:
            body.append(f"-A {internal_chain} {args} -j {c.MARK_MASQ}")
        elif opts.cluster_cidr:
            # Off-cluster traffic to a ClusterIP (a static route to the service range via a
            # node) may bounce off-node: masquerade it.
            body.append(f"-A {internal_chain} {args} ! -s {opts.cluster_cidr} -j {c.MARK_MASQ}")
    if uses_ext_chain:
        decls.append(f":{ext_chain} - [0:0]")
        if not svc.external_policy_local:
            body.append(f'-A {ext_chain} -m comment --comment "masquerade traffic for {spn} external '
                        f'destinations" -j {c.MARK_MASQ}')
        else:
            if opts.cluster_cidr:
                # Pod -> external destination short-circuits to the cluster chain, as if it
                # went up to a load balancer and came back.
                body.append(f'-A {ext_chain} -m comment --comment "pod traffic for {spn} external '
                            f'destinations" -s {opts.cluster_cidr} -j {cluster_chain}')
            body.append(f'-A {ext_chain} -m comment --comment "masquerade LOCAL traffic for {spn} external '
                        f'destinations" -m addrtype --src-type LOCAL -j {c.MARK_MASQ}')
            body.append(f'-A {ext_chain} -m comment --comment "route LOCAL traffic for {spn} external '
                        f'destinations" -m addrtype --src-type LOCAL -j {cluster_chain}')
        if has_external:
            body.append(f"-A {ext_chain} -j {external_policy_chain}")
    if uses_fw_chain:
        decls.append(f":{fw_chain} - [0:0]")
        fw_args = f'-A {fw_chain} -m comment --comment "{spn} loadbalancer IP"'
        for cidr in svc.load_balancer_source_ranges:
            body.append(f"{fw_args} -s {cidr} -j {ext_chain}")
        body.append(f'-A {fw_chain} -m comment --comment "other traffic to {spn} will be dropped by '
                    f'{c.PROXY_FIREWALL}"')
    ep_chain = {str(ep): c.endpoint_chain(spn, proto, str(ep)) for ep in cat.all_reachable}
    if uses_cluster_chain:
        decls.append(f":{cluster_chain} - [0:0]")
        body.extend(_to_endpoints(spn, svc, cluster_chain, cat.cluster, ep_chain, large))
    if uses_local_chain:
        decls.append(f":{local_chain} - [0:0]")
        body.extend(_to_endpoints(spn, svc, local_chain, cat.local, ep_chain, large))
    for ep in cat.all_reachable:
        chain = ep_chain[str(ep)]
        decls.append(f":{chain} - [0:0]")
        comment = "" if large else f" -m comment --comment {spn}"
        body.append(f"-A {chain}{comment} -s {ep.ip} -j {c.MARK_MASQ}")
        recent = f" -m recent --name {chain} --set" if svc.session_affinity_client_ip else ""
        body.append(f"-A {chain}{comment}{recent} {match} -j DNAT --to-destination {ep}")
    return ServiceRules(tuple(head), tuple(filt), tuple(decls), tuple(body),
                        no_local_internal=has_endpoints and not has_internal,
                        no_local_external=has_endpoints and not has_external)


def _to_endpoints(spn: str, svc: ServicePort, chain: str, endpoints: tuple[Endpoint, ...],
                  ep_chain: dict[str, str], large: bool) -> list[str]:
    """kube-proxy's writeServiceToEndpointRules: affinity checks first, then one rule per
    endpoint, each matching with probability 1/(endpoints left), the last always."""
    out = []
    if svc.session_affinity_client_ip:
        for ep in endpoints:
            sep = ep_chain[str(ep)]
            comment = "" if large else f' -m comment --comment "{spn} -> {ep}"'
            out.append(f"-A {chain}{comment} -m recent --name {sep} --rcheck --seconds "
                       f"{svc.sticky_max_age_seconds} --reap -j {sep}")
    n = len(endpoints)
    for i, ep in enumerate(endpoints):
        comment = "" if large else f' -m comment --comment "{spn} -> {ep}"'
        statistic = f" -m statistic --mode random --probability {_probability(n - i)}" if i < n - 1 else ""
        out.append(f"-A {chain}{comment}{statistic} -j {ep_chain[str(ep)]}")
    return out


@dataclass
class Renderer:
    """Renders whole syncs, remembering each service port's lines for the next one."""

    options: RenderOptions
    _memo: dict[ServicePortName, tuple[object, ServiceRules]] = field(default_factory=dict)

    def _service(self, name: ServicePortName, svc: ServicePort, eps: tuple[Endpoint, ...],
                 large: bool, unchanged: bool) -> ServiceRules:
        key = (svc, eps, large)
        hit = self._memo.get(name)
        # The tracker vouches for what did not change: no need to compare 10k endpoint
        # tuples on every partial sync.
        if hit is not None and (unchanged or hit[0] == key):
            return hit[1]
        rules = render_service(name, svc, eps, self.options, large)
        self._memo[name] = (key, rules)
        return rules

    def render(self, state: ProxyState, *, changed: Iterable[ServicePortName] | None = None,
               known_chains: Iterable[str] = ()) -> Rendered:
        """The restore input for `state`: everything when `changed` is None, else only the
        per-service chains of `changed`. Chains in `known_chains` (from the kernel or the
        last sync) that no service uses any more are flushed and deleted."""
        opts = self.options
        services = sorted((n, s) for n, s in state.services.items() if _ipv4(s.cluster_ip))
        for stale in [n for n in self._memo if n not in state.services]:
            del self._memo[stale]
        total = sum(len(state.endpoints_for(n)) for n, _ in services)
        large = total > opts.large_cluster_endpoints
        write = None if changed is None else set(changed)
        mark = opts.masquerade_mark

        filter_rules: list[str] = []
        nat_chains: list[str] = [f":{name} - [0:0]" for name in c.NAT_CHAINS]
        masquerade = f'-A {c.POSTROUTING} -m comment --comment "kubernetes service traffic requiring SNAT" ' \
                     f"-j MASQUERADE" + (" --random-fully" if opts.random_fully else "")
        nat_rules: list[str] = [
            f"-A {c.POSTROUTING} -m mark ! --mark {mark}/{mark} -j RETURN",
            f"-A {c.POSTROUTING} -j MARK --xor-mark {mark}",
            masquerade,
            f"-A {c.MARK_MASQ} -j MARK --or-mark {mark}",
        ]
        filter_chains = [f":{name} - [0:0]" for name in c.FILTER_CHAINS]
        if opts.localhost_nodeports:
            filter_chains.append(f":{c.KUBELET_FIREWALL} - [0:0]")
            filter_rules.append(f'-A {c.KUBELET_FIREWALL} -m comment --comment "block incoming localnet '
                                'connections" -d 127.0.0.0/8 ! -s 127.0.0.0/8 -m conntrack ! --ctstate '
                                "RELATED,ESTABLISHED,DNAT -j DROP")
        active: set[str] = set()
        written = no_local_int = no_local_ext = 0
        for name, svc in services:
            unchanged = write is not None and name not in write
            rules = self._service(name, svc, state.endpoints_for(name), large, unchanged)
            active.update(rules.active_chains)
            nat_rules.extend(rules.head)
            filter_rules.extend(rules.filter)
            no_local_int += rules.no_local_internal
            no_local_ext += rules.no_local_external
            if not unchanged:
                nat_chains.extend(rules.chains)
                nat_rules.extend(rules.body)
                written += 1
        stale = tuple(sorted(ch for ch in set(known_chains) - active if c.is_service_chain(ch)))
        nat_chains.extend(f":{ch} - [0:0]" for ch in stale)
        nat_rules.extend(f"-X {ch}" for ch in stale)
        not_localhost = "" if opts.localhost_nodeports else " ! -d 127.0.0.0/8"
        nat_rules.append(f"-A {c.SERVICES} -m comment --comment {NODEPORTS_COMMENT} -m addrtype "
                         f"--dst-type LOCAL{not_localhost} -j {c.NODEPORTS}")
        if not opts.conntrack_tcp_liberal:
            filter_rules.append(f"-A {c.FORWARD} -m conntrack --ctstate INVALID -j DROP")
        filter_rules.append(f'-A {c.FORWARD} -m comment --comment "kubernetes forwarding rules" '
                            f"-m mark --mark {mark}/{mark} -j ACCEPT")
        filter_rules.append(f'-A {c.FORWARD} -m comment --comment "kubernetes forwarding conntrack rule" -m '
                            "conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT")
        text = "\n".join(["*filter", *filter_chains, *filter_rules, "COMMIT",
                          "*nat", *nat_chains, *nat_rules, "COMMIT"]) + "\n"
        return Rendered(text, frozenset(active), stale, nat_rules=len(nat_rules),
                        filter_rules=len(filter_rules), written_services=written, large_cluster_mode=large,
                        no_local_internal=no_local_int, no_local_external=no_local_ext)
