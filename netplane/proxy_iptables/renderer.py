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

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

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
    chain_names: tuple[str, ...]
    # The chains' rules as one string: at 10k services, 300k separate line objects cost
    # ~15 MB more and are never needed one by one.
    body: str
    no_local_internal: bool = False
    no_local_external: bool = False

    @property
    def active_chains(self) -> tuple[str, ...]:
        return self.chain_names

    @property
    def chains(self) -> list[str]:
        """The declaration lines of the service's chains."""
        return [f":{name} - [0:0]" for name in self.chain_names]

    @property
    def body_lines(self) -> list[str]:
        return [self.body] if self.body else []


@dataclass(frozen=True)
class Rendered:
    """One sync's restore input. `text` is one transaction: for a full render kube-proxy's
    whole layout, for a partial one the difference from what the kernel holds. A full
    render also comes split for nf_tables, whose restore time grows with the square of a
    transaction's size: `chain_batches` (per-service chains, a batch of services each)
    applied first, then `top` (the top-level chains, which only then point at them)."""

    text: str
    full: bool
    active_chains: frozenset[str]
    stale_chains: tuple[str, ...]
    nat_rules: int
    filter_rules: int
    written_services: int
    large_cluster_mode: bool
    chain_batches: tuple[str, ...] = ()
    top: str = ""

    @property
    def transactions(self) -> tuple[str, ...]:
        """What to restore, in order, when applying in batches."""
        return (*self.chain_batches, self.top) if self.full and self.top else (self.text,)


def _ipv4(ip: str) -> bool:
    return bool(ip) and ":" not in ip


def _probability(n: int) -> str:
    return f"{1.0 / n:0.10f}"


def render_service(name: ServicePortName, svc: ServicePort, endpoints: Iterable[Endpoint],
                   opts: RenderOptions, large: bool) -> ServiceRules:
    """The lines of one service port, in kube-proxy's order."""
    proto = svc.protocol.lower()
    spn = str(name)
    h = c.port_hash(spn, proto)
    cluster_chain, local_chain, ext_chain, fw_chain = c.SVC + h, c.SVL + h, c.EXT + h, c.FW + h
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

    decls: list[str] = []  # chain names, declared in this order
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
        decls.append(ext_chain)
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
        decls.append(fw_chain)
        fw_args = f'-A {fw_chain} -m comment --comment "{spn} loadbalancer IP"'
        for cidr in svc.load_balancer_source_ranges:
            body.append(f"{fw_args} -s {cidr} -j {ext_chain}")
        body.append(f'-A {fw_chain} -m comment --comment "other traffic to {spn} will be dropped by '
                    f'{c.PROXY_FIREWALL}"')
    ep_chain = {str(ep): c.endpoint_chain(spn, proto, str(ep)) for ep in cat.all_reachable}
    if uses_cluster_chain:
        decls.append(cluster_chain)
        body.extend(_to_endpoints(spn, svc, cluster_chain, cat.cluster, ep_chain, large))
    if uses_local_chain:
        decls.append(local_chain)
        body.extend(_to_endpoints(spn, svc, local_chain, cat.local, ep_chain, large))
    for ep in cat.all_reachable:
        chain = ep_chain[str(ep)]
        decls.append(chain)
        comment = "" if large else f" -m comment --comment {spn}"
        body.append(f"-A {chain}{comment} -s {ep.ip} -j {c.MARK_MASQ}")
        recent = f" -m recent --name {chain} --set" if svc.session_affinity_client_ip else ""
        body.append(f"-A {chain}{comment}{recent} {match} -j DNAT --to-destination {ep}")
    return ServiceRules(tuple(head), tuple(filt), tuple(decls), "\n".join(body),
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


class Renderer:
    """Renders syncs, remembering each service port's lines: what the last render produced
    (reused while the service is unchanged) and what the kernel holds (what a partial
    render diffs against). `commit()` after a successful restore, `forget()` after a failed
    one, which makes the next render a full one."""

    def __init__(self, options: RenderOptions) -> None:
        self.options = options
        self._memo: dict[ServicePortName, tuple[object, ServiceRules]] = {}
        self._applied: dict[ServicePortName, ServiceRules] | None = None
        self._pending: dict[ServicePortName, ServiceRules] | None = None
        self._doomed: set[str] = set()
        self._pending_doomed: set[str] | None = None

    @property
    def needs_full(self) -> bool:
        return self._applied is None

    def commit(self) -> None:
        self._applied, self._pending = self._pending, None
        if self._pending_doomed is not None:
            self._doomed, self._pending_doomed = self._pending_doomed, None

    def forget(self) -> None:
        self._applied = self._pending = self._pending_doomed = None

    def _service(self, name: ServicePortName, svc: ServicePort, eps: tuple[Endpoint, ...],
                 large: bool, unchanged: bool) -> ServiceRules:
        key = (svc, eps, large)
        hit = self._memo.get(name)
        # The tracker vouches for what did not change: no need to compare 10k endpoint
        # tuples on every sync.
        if hit is not None and (unchanged or hit[0] == key):
            return hit[1]
        rules = render_service(name, svc, eps, self.options, large)
        self._memo[name] = (key, rules)
        return rules

    def _large(self, state: ProxyState) -> bool:
        total = sum(len(e) for e in state.endpoints.values())
        return total > self.options.large_cluster_endpoints

    def render(self, state: ProxyState, *, changed: Iterable[ServicePortName] | None = None,
               known_chains: Iterable[str] = (), batch_services: int = 0) -> Rendered:
        """A full render when `changed` is None (or nothing was committed yet), else a
        partial one of the service ports in `changed`. `known_chains` (a full render):
        what iptables-save listed; those no service uses are flushed and deleted."""
        if changed is None or self._applied is None:
            return self._render_full(state, set(known_chains), batch_services)
        return self._render_partial(state, set(changed))

    # -- full: kube-proxy's layout --------------------------------------------------------

    def _top_prelude(self) -> tuple[list[str], list[str], list[str], list[str]]:
        opts, mark = self.options, self.options.masquerade_mark
        filter_chains = [f":{name} - [0:0]" for name in c.FILTER_CHAINS]
        filter_rules: list[str] = []
        if opts.localhost_nodeports:
            filter_chains.append(f":{c.KUBELET_FIREWALL} - [0:0]")
            filter_rules.append(f'-A {c.KUBELET_FIREWALL} -m comment --comment "block incoming localnet '
                                'connections" -d 127.0.0.0/8 ! -s 127.0.0.0/8 -m conntrack ! --ctstate '
                                "RELATED,ESTABLISHED,DNAT -j DROP")
        nat_chains = [f":{name} - [0:0]" for name in c.NAT_CHAINS]
        masquerade = f'-A {c.POSTROUTING} -m comment --comment "kubernetes service traffic requiring SNAT" ' \
                     f"-j MASQUERADE" + (" --random-fully" if opts.random_fully else "")
        nat_rules = [f"-A {c.POSTROUTING} -m mark ! --mark {mark}/{mark} -j RETURN",
                     f"-A {c.POSTROUTING} -j MARK --xor-mark {mark}",
                     masquerade,
                     f"-A {c.MARK_MASQ} -j MARK --or-mark {mark}"]
        return filter_chains, filter_rules, nat_chains, nat_rules

    def _top_tail(self) -> tuple[list[str], list[str]]:
        opts, mark = self.options, self.options.masquerade_mark
        not_localhost = "" if opts.localhost_nodeports else " ! -d 127.0.0.0/8"
        nat = [f"-A {c.SERVICES} -m comment --comment {NODEPORTS_COMMENT} -m addrtype "
               f"--dst-type LOCAL{not_localhost} -j {c.NODEPORTS}"]
        invalid = f"-A {c.FORWARD} -m conntrack --ctstate INVALID -j DROP"
        filt = [] if opts.conntrack_tcp_liberal else [invalid]
        filt.append(f'-A {c.FORWARD} -m comment --comment "kubernetes forwarding rules" '
                    f"-m mark --mark {mark}/{mark} -j ACCEPT")
        filt.append(f'-A {c.FORWARD} -m comment --comment "kubernetes forwarding conntrack rule" -m '
                    "conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT")
        return nat, filt

    def _render_full(self, state: ProxyState, known: set[str], batch_services: int) -> Rendered:
        services = sorted((n, s) for n, s in state.services.items() if _ipv4(s.cluster_ip))
        for gone in [n for n in self._memo if n not in state.services]:
            del self._memo[gone]
        large = self._large(state)
        filter_chains, filter_rules, nat_chains, nat_rules = self._top_prelude()
        applied: dict[ServicePortName, ServiceRules] = {}
        active: set[str] = set()
        # One transaction (kube-proxy's text), or batches of service chains and a `top`
        # that holds only the top-level chains: never both, at 10k services each is 32 MB.
        heads: list[str] = []
        batches: list[str] = []
        batch: tuple[list[str], list[str]] = ([], [])
        for i, (name, svc) in enumerate(services):
            rules = self._service(name, svc, state.endpoints_for(name), large, False)
            applied[name] = rules
            active.update(rules.chain_names)
            filter_rules.extend(rules.filter)
            if batch_services:
                heads.extend(rules.head)
                batch[0].extend(rules.chains)
                batch[1].extend(rules.body_lines)
                if (i + 1) % batch_services == 0 or i == len(services) - 1:
                    batches.append(self._batch(*batch, first=not batches, known=known))
                    batch = ([], [])
            else:
                nat_rules.extend(rules.head)
                nat_chains.extend(rules.chains)
                nat_rules.extend(rules.body_lines)
        nat_rules.extend(heads)
        stale = tuple(sorted(ch for ch in known - active if c.is_service_chain(ch)))
        nat_chains.extend(f":{ch} - [0:0]" for ch in stale)
        nat_rules.extend(f"-X {ch}" for ch in stale)
        tail_nat, tail_filter = self._top_tail()
        nat_rules += tail_nat
        filter_rules += tail_filter
        text = _tables(("filter", filter_chains, filter_rules), ("nat", nat_chains, nat_rules))
        self._pending = applied
        self._doomed.clear()  # a full render deletes every stale chain the kernel has
        rules_total = text.count("\n-A ") + sum(b.count("\n-A ") for b in batches)
        return Rendered("" if batch_services else text, True, frozenset(active), stale,
                        nat_rules=rules_total, filter_rules=len(filter_rules),
                        written_services=len(services), large_cluster_mode=large,
                        chain_batches=tuple(batches), top=text if batch_services else "")

    def stream_full(self, state: ProxyState, *, known_chains: Iterable[str] = (),
                    extra: dict[str, list[str]] | None = None,
                    chunk_services: int = 200) -> Iterator[str]:
        """A full render as one transaction, yielded in pieces so that it can be fed to
        iptables-restore while the rest is rendered (the kernel-side parse runs on the other
        core). Same kernel state as `render`, another order: nat first, each service's
        chain declarations right before its rules; `extra` lines (per table) go last in
        their table. Sets what `commit()` then records."""
        known = set(known_chains)
        extra = extra or {}
        services = sorted((n, s) for n, s in state.services.items() if _ipv4(s.cluster_ip))
        for gone in [n for n in self._memo if n not in state.services]:
            del self._memo[gone]
        large = self._large(state)
        filter_chains, filter_rules, nat_chains, nat_rules = self._top_prelude()
        yield "\n".join(["*nat", *nat_chains, *nat_rules]) + "\n"
        applied: dict[ServicePortName, ServiceRules] = {}
        active: set[str] = set()
        piece: list[str] = []
        for i, (name, svc) in enumerate(services):
            rules = self._service(name, svc, state.endpoints_for(name), large, False)
            applied[name] = rules
            active.update(rules.chain_names)
            piece += rules.chains
            piece += rules.head
            piece += rules.body_lines
            filter_rules.extend(rules.filter)
            if (i + 1) % chunk_services == 0:
                yield "\n".join(piece) + "\n"
                piece = []
        stale = sorted(ch for ch in known - active if c.is_service_chain(ch))
        tail_nat, tail_filter = self._top_tail()
        piece += [f":{ch} - [0:0]" for ch in stale]
        piece += [f"-X {ch}" for ch in stale]
        yield "\n".join([*piece, *tail_nat, *extra.get("nat", []), "COMMIT"]) + "\n"
        others = ((table, [], lines) for table, lines in extra.items() if table not in ("nat", "filter"))
        filter_all = [*filter_rules, *tail_filter, *extra.get("filter", [])]
        yield _tables(("filter", filter_chains, filter_all), *others)
        self._pending = applied
        self._doomed.clear()

    def _batch(self, chains: list[str], rules: list[str], *, first: bool, known: set[str]) -> str:
        # Service chains jump to KUBE-MARK-MASQ: on a first start it must be created before
        # them; when it exists, declaring it again would flush its rule mid-resync.
        prelude: list[str] = []
        if first and c.MARK_MASQ not in known:
            mark = self.options.masquerade_mark
            prelude = [f":{c.MARK_MASQ} - [0:0]", f"-A {c.MARK_MASQ} -j MARK --or-mark {mark}"]
        return _tables(("nat", [*prelude[:1], *chains], [*prelude[1:], *rules]))

    # -- partial: the difference from what the kernel holds -------------------------------

    def _render_partial(self, state: ProxyState, changed: set[ServicePortName]) -> Rendered:
        assert self._applied is not None
        applied = dict(self._applied)
        large = self._large(state)
        nat_del: list[str] = []
        nat_add: list[str] = []
        filter_del: list[str] = []
        filter_add: list[str] = []
        decls: list[str] = []
        bodies: list[str] = []
        dropped: set[str] = set()
        revived: set[str] = set()
        written = 0
        for name in sorted(changed):
            old = applied.pop(name, None)
            svc = state.services.get(name)
            new = None
            if svc is not None and _ipv4(svc.cluster_ip):
                new = self._service(name, svc, state.endpoints_for(name), large, False)
                applied[name] = new
                decls.extend(new.chains)
                bodies.extend(new.body_lines)
                revived.update(new.chain_names)
                written += 1
            else:
                self._memo.pop(name, None)
            old_head, new_head = (old.head if old else ()), (new.head if new else ())
            nat_del += [line for line in old_head if line not in new_head]
            nat_add += [line for line in new_head if line not in old_head]
            old_filter, new_filter = (old.filter if old else ()), (new.filter if new else ())
            filter_del += [line for line in old_filter if line not in new_filter]
            filter_add += [line for line in new_filter if line not in old_filter]
            if old is not None:
                dropped.update(set(old.chain_names) - set(new.chain_names if new else ()))
        # Chains out of use are flushed now and deleted later, in a batch (`deletions`): a
        # chain deletion makes iptables-nft read the whole table (~200 ms at 10k services),
        # which an endpoint change must not wait for. One back in use is simply rewritten.
        flushed = sorted(dropped - revived)
        doomed = (self._doomed - revived) | set(flushed)
        # Each table commits on its own, so the order of the tables is what a packet can see
        # in between. A service's filter REJECT (no endpoints) is harmless next to its DNAT
        # (DNAT comes first and the REJECT matches only the service address), but with
        # neither a SYN to the service is routed nowhere and its client waits for a
        # retransmission (measured: 0.5-1 s per endpoint change). So filter rules are added
        # before the nat change and deleted after it.
        sections = []
        if filter_add:
            sections.append(("filter", [], filter_add))
        # Rule deletions first (they may reference chains about to be flushed), the
        # changed chains' rules, then the new references to them. New top-level rules are
        # appended: after KUBE-SERVICES' node-port rule until the next full sync, which is
        # harmless since KUBE-NODEPORTS returns what it does not match.
        sections.append(("nat", [*decls, *(f":{ch} - [0:0]" for ch in flushed)],
                         [*_deletes(nat_del), *bodies, *nat_add]))
        if filter_del:
            sections.append(("filter", [], _deletes(filter_del)))
        text = _tables(*sections)
        self._pending = applied
        self._pending_doomed = doomed
        return Rendered(text, False, frozenset(), tuple(flushed),
                        nat_rules=len(nat_del) + len(nat_add) + sum(b.count("\n") + 1 for b in bodies),
                        filter_rules=len(filter_del) + len(filter_add), written_services=written,
                        large_cluster_mode=large)

    # -- deferred deletion of chains out of use --------------------------------------------

    @property
    def doomed(self) -> frozenset[str]:
        """Flushed chains that no rule uses, waiting to be deleted."""
        return frozenset(self._doomed)

    def deletions(self) -> str:
        """The transaction that deletes the doomed chains ("" when there are none); call
        `deleted()` once it is applied."""
        if not self._doomed:
            return ""
        return _tables(("nat", [], [f"-X {ch}" for ch in sorted(self._doomed)]))

    def deleted(self) -> None:
        self._doomed.clear()


def _deletes(lines: Iterable[str]) -> list[str]:
    return ["-D" + line[2:] for line in lines]


def _tables(*sections: tuple[str, list[str], list[str]]) -> str:
    out: list[str] = []
    for table, chains, rules in sections:
        out += [f"*{table}", *chains, *rules, "COMMIT"]
    return "\n".join(out) + "\n"
