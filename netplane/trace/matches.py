"""Whether a rule's matches hold for a packet: yes, no, or "maybe" where the answer lives in
kernel state the walk cannot see (the statistic match's dice, the recent match's list of
clients, an unmodelled module). The subset is what kube-proxy, netplane's userspace portals
and common node rules use. Pure.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

from netplane.trace.node import NodeView
from netplane.trace.packet import Packet
from netplane.trace.ruleset import Match, Option, Rule

_PROTO_NUMBERS = {"tcp": "6", "udp": "17", "icmp": "1", "sctp": "132"}
_TCP_FLAGS = ("FIN", "SYN", "RST", "PSH", "ACK", "URG", "ECE", "CWR")


class Tri(Enum):
    NO = 0
    YES = 1
    MAYBE = 2


@dataclass(frozen=True)
class Verdict:
    """What the matches say; for MAYBE, the chance the kernel says yes (None: unknown)
    and why the walk cannot tell."""

    tri: Tri
    probability: float | None = None
    why: str = ""


YES, NO = Verdict(Tri.YES), Verdict(Tri.NO)


@dataclass(frozen=True)
class Where:
    """The hook a packet is at: its interfaces there (None where the hook has none)."""

    hook: str
    in_iface: str | None
    out_iface: str | None


def _cidr(value: str) -> ipaddress.IPv4Network:
    return ipaddress.ip_network(value, strict=False)  # type: ignore[return-value]


def _in(ip: str, value: str) -> bool:
    try:
        return ipaddress.ip_address(ip) in _cidr(value)
    except ValueError:
        return False


def _iface(name: str | None, pattern: str) -> bool:
    if name is None:
        return False
    return name.startswith(pattern[:-1]) if pattern.endswith("+") else name == pattern


def _port_in(port: int, spec: str) -> bool:
    lo, sep, hi = spec.partition(":")
    low = int(lo) if lo else 0
    high = int(hi) if sep and hi else (65535 if sep else low)
    return low <= port <= high


def _mark(mark: int, spec: str) -> bool:
    value, _, mask = spec.partition("/")
    m = int(mask, 0) if mask else 0xFFFFFFFF
    return mark & m == int(value, 0)


def _tcp_flags(flags: frozenset[str], mask: str, comp: str) -> bool:
    def bits(text: str) -> set[str]:
        if text == "ALL":
            return set(_TCP_FLAGS)
        return set() if text == "NONE" else {f.upper() for f in text.split(",")}

    return {f for f in flags if f in bits(mask)} == bits(comp)


def _addrtype(ip: str, types: str, node: NodeView) -> bool:
    kinds = set(types.split(","))
    addr = ipaddress.ip_address(ip)
    if node.is_local(ip):
        kind = "LOCAL"
    elif addr.is_multicast:
        kind = "MULTICAST"
    elif ip == "255.255.255.255" or node.is_broadcast(ip):
        kind = "BROADCAST"
    else:
        kind = "UNICAST"
    return kind in kinds


def _builtin(o: Option, pkt: Packet, where: Where) -> Verdict:
    value = o.values[0] if o.values else ""
    if o.name == "-s":
        ok = _in(pkt.src, value)
    elif o.name == "-d":
        ok = _in(pkt.dst, value)
    elif o.name == "-p":
        ok = value.lower() in ("all", "0", pkt.proto, _PROTO_NUMBERS[pkt.proto])
    elif o.name == "-i":
        ok = _iface(where.in_iface, value)
    elif o.name == "-o":
        ok = _iface(where.out_iface, value)
    elif o.name == "-f":
        ok = False  # the probe is never a fragment
    elif o.name in ("--dport", "--destination-port", "--sport", "--source-port"):
        return _ports(o, pkt)
    else:
        return Verdict(Tri.MAYBE, None, f"option {o.name} is not modelled")
    return YES if ok else NO


def _ports(o: Option, pkt: Packet) -> Verdict:
    port = pkt.dport if o.name in ("--dport", "--destination-port", "--dports") else pkt.sport
    if o.name in ("--dports", "--sports", "--ports", "--destination-ports", "--source-ports"):
        specs = o.values[0].split(",") if o.values else []
        if o.name == "--ports":
            ok = any(_port_in(pkt.dport, s) or _port_in(pkt.sport, s) for s in specs)
        else:
            ok = any(_port_in(port, s) for s in specs)
    else:
        ok = bool(o.values) and _port_in(port, o.values[0])
    return YES if ok else NO


def _proto_module(m: Match, o: Option, pkt: Packet) -> Verdict:
    if m.module != pkt.proto:
        return NO  # `-m tcp` never matches a UDP datagram (iptables demands -p tcp with it anyway)
    if o.name in ("--dport", "--destination-port", "--sport", "--source-port"):
        return _ports(o, pkt)
    if o.name == "--tcp-flags" and len(o.values) == 2:
        return YES if _tcp_flags(pkt.tcp_flags, *o.values) else NO
    if o.name == "--syn":
        return YES if _tcp_flags(pkt.tcp_flags, "SYN,RST,ACK,FIN", "SYN") else NO
    return Verdict(Tri.MAYBE, None, f"{m.module} {o.name} is not modelled")


def _conntrack(o: Option, pkt: Packet, node: NodeView) -> Verdict:
    if o.name not in ("--ctstate", "--state"):
        return Verdict(Tri.MAYBE, None, f"conntrack {o.name} is not modelled")
    # The probe opens a connection: its first packet is NEW (+ the NAT the walk applied);
    # a packet without a conntrack entry is INVALID to the match (xt_conntrack).
    states = {"NEW"} | set(pkt.nat) if node.conntrack else {"INVALID"}
    return YES if states & set((o.values[0] if o.values else "").split(",")) else NO


def _statistic(m: Match) -> Verdict:
    mode = m.get("--mode")
    probability = m.get("--probability")
    if mode is not None and mode.values and mode.values[0] == "random" and probability is not None:
        p = float(probability.values[0])
        return Verdict(Tri.MAYBE, p, f"statistic match: random with probability {p:.4g}")
    return Verdict(Tri.MAYBE, None, "statistic match (nth): depends on the packet count")


def _recent(m: Match) -> Verdict:
    if m.get("--set") is not None and not any(m.get(x) for x in ("--rcheck", "--update", "--remove")):
        return YES  # --set only records the source; it always matches
    name = m.get("--name")
    listed = name.values[0] if name is not None and name.values else "DEFAULT"
    return Verdict(Tri.MAYBE, None, f"recent match: whether the client is in the kernel's list {listed} "
                                    "(session affinity)")


ModuleCheck = Callable[[Match, Packet, Where, NodeView], Verdict]


def _module(m: Match, pkt: Packet, where: Where, node: NodeView) -> Verdict:
    """All options of one `-m` module at once (statistic and recent read theirs together)."""
    if m.module == "comment":
        return YES
    if m.module == "statistic":
        return _negate(_statistic(m), any(o.negated for o in m.options))
    if m.module == "recent":
        return _negate(_recent(m), any(o.negated for o in m.options))
    if m.module == "set":
        return _set(m, pkt, node)
    out = YES
    for o in m.options:
        if m.module in ("tcp", "udp", "sctp"):
            v = _proto_module(m, o, pkt)
        elif m.module == "multiport":
            v = _ports(o, pkt)
        elif m.module in ("conntrack", "state"):
            v = _conntrack(o, pkt, node)
        elif m.module == "mark":
            v = YES if o.values and _mark(pkt.mark, o.values[0]) else NO
        elif m.module == "addrtype" and o.name in ("--src-type", "--dst-type"):
            ip = pkt.src if o.name == "--src-type" else pkt.dst
            v = YES if o.values and _addrtype(ip, o.values[0], node) else NO
        elif m.module == "addrtype" and o.name in ("--limit-iface-in", "--limit-iface-out"):
            v = YES  # narrows the address lookup to the interface; the node view is global
        else:
            v = Verdict(Tri.MAYBE, None, f"match {m.module} {o.name} is not modelled")
        out = _and(out, _negate(v, o.negated))
    if m.module in ("tcp", "udp", "sctp") and m.module != pkt.proto:
        return NO
    return out


def _set(m: Match, pkt: Packet, node: NodeView) -> Verdict:
    o = m.get("--match-set")
    if o is None or len(o.values) != 2:
        return Verdict(Tri.MAYBE, None, "set match without --match-set")
    name, flags = o.values
    members = node.ipsets.get(name)
    if members is None:
        return _negate(Verdict(Tri.MAYBE, None, f"ipset {name} was not read"), o.negated)
    parts = []
    for flag in flags.split(","):
        parts.append((pkt.src, pkt.sport) if flag == "src" else (pkt.dst, pkt.dport))
    # hash:ip, hash:ip,port, hash:ip,port,ip as ipset lists them ("10.0.0.1,tcp:80"), and
    # bitmap:port's bare port numbers (IPVS mode's node-port sets).
    ip = parts[0][0]
    candidates = {ip, str(parts[0][1])}
    if len(parts) >= 2:
        candidates.add(f"{ip},{pkt.proto}:{parts[1][1]}")
    if len(parts) >= 3:
        candidates.add(f"{ip},{pkt.proto}:{parts[1][1]},{parts[2][0]}")
    hit = bool(candidates & members) or any("/" in m_ and _in(ip, m_.split(",")[0]) for m_ in members)
    return _negate(YES if hit else NO, o.negated)


def _negate(v: Verdict, negated: bool) -> Verdict:
    if not negated:
        return v
    if v.tri is Tri.MAYBE:
        return Verdict(Tri.MAYBE, None if v.probability is None else 1 - v.probability, f"not ({v.why})")
    return NO if v.tri is Tri.YES else YES


def _and(a: Verdict, b: Verdict) -> Verdict:
    if a.tri is Tri.NO or b.tri is Tri.NO:
        return NO
    if a.tri is Tri.YES:
        return b
    if b.tri is Tri.YES:
        return a
    p = None if a.probability is None or b.probability is None else a.probability * b.probability
    return Verdict(Tri.MAYBE, p, f"{a.why}; {b.why}")


def evaluate(rule: Rule, pkt: Packet, where: Where, node: NodeView) -> Verdict:
    """Whether every match of `rule` holds for `pkt` at `where` on `node`."""
    out = YES
    for m in rule.matches:
        if m.module:
            v = _module(m, pkt, where, node)
        else:
            v = YES
            for o in m.options:
                v = _and(v, _negate(_builtin(o, pkt, where), o.negated))
        out = _and(out, v)
        if out.tri is Tri.NO:
            return NO
    return out
