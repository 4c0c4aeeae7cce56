"""The few iptables rules of IPVS mode, as `iptables-restore --noflush` input: they match
on the ipsets and mark for masquerade, accept IPVS traffic, and keep other ports of the
VIPs closed (kube-proxy's writeIptablesRules, line for line). Pure. Which rules exist
depends only on which ipsets have members, so the text changes rarely: a sync restores it
only when it differs from what was applied."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from netplane.proxy_ipvs import names as n


@dataclass(frozen=True)
class RuleOptions:
    # kube-proxy's LocalTrafficDetector in ClusterCIDR mode; None: no detector.
    cluster_cidr: str | None = None
    masquerade_all: bool = False
    masquerade_mark: str = "0x4000"
    random_fully: bool = True


# (set, table, from chain, target, match type, protocol): kube-proxy's ipsetWithIptablesChain.
# The *-LOCAL node-port sets must come before the others (their RETURN wins).
_SET_RULES = (
    (n.LOOP_BACK, "nat", n.POSTROUTING, "MASQUERADE", "dst,dst,src", ""),
    (n.LOAD_BALANCER, "nat", n.SERVICES, n.LOAD_BALANCER_CHAIN, "dst,dst", ""),
    (n.LOAD_BALANCER_LOCAL, "nat", n.LOAD_BALANCER_CHAIN, "RETURN", "dst,dst", ""),
    (n.NODE_PORT_LOCAL_TCP, "nat", n.NODE_PORT, "RETURN", "dst", "tcp"),
    (n.NODE_PORT_TCP, "nat", n.NODE_PORT, n.MARK_MASQ, "dst", "tcp"),
    (n.NODE_PORT_LOCAL_UDP, "nat", n.NODE_PORT, "RETURN", "dst", "udp"),
    (n.NODE_PORT_UDP, "nat", n.NODE_PORT, n.MARK_MASQ, "dst", "udp"),
    (n.NODE_PORT_LOCAL_SCTP, "nat", n.NODE_PORT, "RETURN", "dst,dst", "sctp"),
    (n.NODE_PORT_SCTP, "nat", n.NODE_PORT, n.MARK_MASQ, "dst,dst", "sctp"),
    (n.LOAD_BALANCER_FW, "filter", n.PROXY_FIREWALL, n.SOURCE_RANGES_FIREWALL, "dst,dst", ""),
    (n.LOAD_BALANCER_SOURCE_CIDR, "filter", n.SOURCE_RANGES_FIREWALL, "RETURN", "dst,dst,src", ""),
    (n.LOAD_BALANCER_SOURCE_IP, "filter", n.SOURCE_RANGES_FIREWALL, "RETURN", "dst,dst,src", ""),
)


def _comment(set_name: str) -> str:
    return f'-m comment --comment "{n.IPSET_BY_NAME[set_name].comment}"'


def render_rules(nonempty: Iterable[str], opts: RuleOptions) -> str:
    """The restore input for the nat and filter tables, given the ipsets with members."""
    sets = frozenset(nonempty)
    mark = opts.masquerade_mark
    nat = [f"-A {n.SERVICES} -s 127.0.0.0/8 -j RETURN"]
    filt: list[str] = []
    for set_name, table, chain, target, match, proto in _SET_RULES:
        if set_name not in sets:
            continue
        p = f" -p {proto}" if proto else ""
        line = f"-A {chain}{p} {_comment(set_name)} -m set --match-set {set_name} {match} -j {target}"
        (filt if table == "filter" else nat).append(line)
    if n.CLUSTER_IP in sets:
        base = f"-A {n.SERVICES} {_comment(n.CLUSTER_IP)} -m set --match-set {n.CLUSTER_IP}"
        if opts.masquerade_all:
            nat.append(f"{base} dst,dst -j {n.MARK_MASQ}")
        elif opts.cluster_cidr:
            # Off-cluster traffic to a VIP (a static route to the service range via a node)
            # may bounce off-node: masquerade it.
            nat.append(f"{base} dst,dst ! -s {opts.cluster_cidr} -j {n.MARK_MASQ}")
        else:
            # Every VIP is on kube-ipvs0, so the node's own connections to a VIP leave from
            # a VIP: masquerade those (source VIP, destination service port).
            nat.append(f"{base} src,dst -j {n.MARK_MASQ}")

    def external(base: str) -> None:
        # Traffic from off the machine (not from a bridge, not local) and traffic to
        # external IPs that are local addresses stays with IPVS.
        nat.append(f"{base} -m physdev ! --physdev-is-in -m addrtype ! --src-type LOCAL -j ACCEPT")
        nat.append(f"{base} -m addrtype --dst-type LOCAL -j ACCEPT")

    if n.EXTERNAL_IP in sets:
        base = f"-A {n.SERVICES} {_comment(n.EXTERNAL_IP)} -m set --match-set {n.EXTERNAL_IP} dst,dst"
        nat.append(f"{base} -j {n.MARK_MASQ}")
        external(base)
    if n.EXTERNAL_IP_LOCAL in sets:
        external(f"-A {n.SERVICES} {_comment(n.EXTERNAL_IP_LOCAL)} -m set --match-set {n.EXTERNAL_IP_LOCAL} "
                 "dst,dst")
    nat.append(f"-A {n.SERVICES} -m addrtype --dst-type LOCAL -j {n.NODE_PORT}")
    nat.append(f"-A {n.LOAD_BALANCER_CHAIN} -j {n.MARK_MASQ}")
    filt.append(f"-A {n.SOURCE_RANGES_FIREWALL} -j DROP")
    # Accept what IPVS serves, in case later rules of other programs would drop it.
    for set_name in (n.CLUSTER_IP, n.LOAD_BALANCER):
        if set_name in sets:
            nat.append(f"-A {n.SERVICES} -m set --match-set {set_name} dst,dst -j ACCEPT")
    filt.append(f'-A {n.FORWARD} -m comment --comment "kubernetes forwarding rules" -m mark --mark '
                f"{mark}/{mark} -j ACCEPT")
    filt.append(f'-A {n.FORWARD} -m comment --comment "kubernetes forwarding conntrack rule" -m conntrack '
                "--ctstate RELATED,ESTABLISHED -j ACCEPT")
    filt.append(f"-A {n.NODE_PORT} {_comment(n.HEALTH_CHECK_NODE_PORT)} -m set --match-set "
                f"{n.HEALTH_CHECK_NODE_PORT} dst -j ACCEPT")
    # Every VIP is a local address: without these, any port of the node answered on the
    # VIPs too (kubernetes#72236). Service ports return; the rest is rejected.
    for set_name, match in ((n.LOAD_BALANCER, "dst,dst"), (n.CLUSTER_IP, "dst,dst"),
                            (n.EXTERNAL_IP, "dst,dst"), (n.HEALTH_CHECK_NODE_PORT, "dst")):
        filt.append(f"-A {n.IPVS_FILTER} -m set --match-set {set_name} {match} -j RETURN")
    filt.append(f"-A {n.IPVS_FILTER} -m conntrack --ctstate NEW -m set --match-set {n.IPVS_IPS} dst "
                "-j REJECT")
    nat.append(f"-A {n.POSTROUTING} -m mark ! --mark {mark}/{mark} -j RETURN")
    nat.append(f"-A {n.POSTROUTING} -j MARK --xor-mark {mark}")
    nat.append(f'-A {n.POSTROUTING} -m comment --comment "kubernetes service traffic requiring SNAT" '
               "-j MASQUERADE" + (" --random-fully" if opts.random_fully else ""))
    nat.append(f"-A {n.MARK_MASQ} -j MARK --or-mark {mark}")
    out = ["*nat", *(f":{ch} - [0:0]" for ch in n.NAT_CHAINS), *nat, "COMMIT",
           "*filter", *(f":{ch} - [0:0]" for ch in n.FILTER_CHAINS), *filt, "COMMIT"]
    return "\n".join(out) + "\n"


def missing_jumps(saved: dict[str, str]) -> dict[str, list[str]]:
    """The restore lines (`-I CHAIN 1 ...`) of each kube-proxy jump that the tables'
    iptables-save text (`saved`: table -> text) lacks, per table."""
    missing: dict[str, list[str]] = {}
    for table, builtin, chain, comment in n.JUMPS:
        spec = n.jump_spec(chain, comment)
        if f"-A {builtin} {spec}" not in saved.get(table, ""):
            missing.setdefault(table, []).append(f"-I {builtin} 1 {spec}")
    return missing


def with_jumps(text: str, saved: dict[str, str]) -> str:
    """`text` (render_rules' output) with the missing jumps after each table's rules."""
    for table, lines in missing_jumps(saved).items():
        head, sep, rest = text.partition(f"*{table}\n")
        body, commit, tail = rest.partition("COMMIT\n")
        text = head + sep + body + "\n".join(lines) + "\n" + commit + tail
    return text
