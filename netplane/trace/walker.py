"""The static walk of one packet through a node's netfilter hooks, as the kernel runs them
for a packet that arrives on an interface: PREROUTING (raw, mangle, nat), the routing
decision, then INPUT (local delivery) or FORWARD and POSTROUTING. Chains are entered and
returned from, targets applied (DNAT, SNAT, MASQUERADE, REDIRECT, MARK, ACCEPT, DROP,
REJECT, RETURN), the nat table only seen by a connection's first packet, as the probe is.

Where a match cannot be decided from the rules (the statistic match's dice, the recent
match's client list), the walk branches: `walk` returns every path the kernel might take,
each with the decisions it assumed and, where the dice decide alone, its probability. The
evidence of a real probe (evidence.py) then says which one the kernel took. Pure.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from netplane.trace.matches import Tri, Verdict, Where, evaluate
from netplane.trace.node import NodeView
from netplane.trace.packet import Packet
from netplane.trace.ruleset import Rule, Ruleset

PREROUTING = (("raw", "PREROUTING"), ("mangle", "PREROUTING"), ("nat", "PREROUTING"))
INPUT = (("mangle", "INPUT"), ("filter", "INPUT"), ("security", "INPUT"), ("nat", "INPUT"))
FORWARD = (("mangle", "FORWARD"), ("filter", "FORWARD"), ("security", "FORWARD"))
POSTROUTING = (("mangle", "POSTROUTING"), ("nat", "POSTROUTING"))
_MAX_DEPTH = 64  # iptables refuses loops; this only guards against a malformed rule set
_NON_TERMINATING = {"LOG", "NFLOG", "ULOG", "TRACE", "CT", "NOTRACK", "CONNMARK", "CLASSIFY", "TCPMSS",
                    "CHECKSUM", "DSCP", "TOS", "TTL", "AUDIT", "NFQUEUE"}


@dataclass(frozen=True)
class Step:
    """One thing that happened to the packet. `kind`: "rule" (the rule matched and its
    target ran), "passed" (a rule whose match the walk could not decide, not taken on this
    path), "policy" (fell off a built-in chain), "route" (the routing decision), "kernel"
    (the kernel itself dropped it)."""

    kind: str
    table: str = ""
    chain: str = ""
    rule: Rule | None = None
    action: str = ""
    assumed: bool = False  # the walk could not decide this match; the evidence does
    probability: float | None = None
    why: str = ""


@dataclass(frozen=True)
class Path:
    steps: tuple[Step, ...]
    verdict: str  # "accept" (delivered locally or forwarded), "drop", "reject"
    packet: Packet  # as it is delivered or leaves the node
    local: bool = False  # delivered to the node itself
    out_iface: str | None = None
    gateway: str | None = None
    decisions: tuple[bool, ...] = ()
    probability: float | None = 1.0
    stopped_by: Rule | None = None  # the rule that dropped or rejected it

    @property
    def fired(self) -> list[Step]:
        """The rules the packet matched, in order."""
        return [s for s in self.steps if s.kind == "rule"]

    @property
    def dnat(self) -> tuple[str, int] | None:
        return (self.packet.dst, self.packet.dport) if "DNAT" in self.packet.nat else None


class _NeedDecision(Exception):
    def __init__(self, rule: Rule, verdict: Verdict) -> None:
        super().__init__(str(rule))
        self.rule = rule
        self.verdict = verdict


def _split_hostport(text: str) -> tuple[str, int | None]:
    # "10.244.1.2:8080", "10.244.1.2", "10.0.0.1-10.0.0.3:80-90": the first of each range.
    host, sep, port = text.partition(":")
    host = host.split("-")[0]
    return host, (int(port.split("-")[0]) if sep and port else None)


def _mark(mark: int, target: Rule) -> int:
    t = target.target
    if (v := t.get("--set-xmark")) is not None:
        value, _, mask = v.partition("/")
        m = int(mask, 0) if mask else 0xFFFFFFFF
        return (mark & ~m) ^ int(value, 0)
    if (v := t.get("--set-mark")) is not None:
        value, _, mask = v.partition("/")
        m = int(mask, 0) if mask else 0xFFFFFFFF
        return (mark & ~m) | int(value, 0)
    if (v := t.get("--or-mark")) is not None:
        return mark | int(v, 0)
    if (v := t.get("--and-mark")) is not None:
        return mark & int(v, 0)
    if (v := t.get("--xor-mark")) is not None:
        return mark ^ int(v, 0)
    return mark


class _Walk:
    def __init__(self, rules: Ruleset, packet: Packet, node: NodeView, in_iface: str | None,
                 decisions: tuple[bool, ...]) -> None:
        self.rules = rules
        self.pkt = packet
        self.node = node
        self.in_iface = in_iface
        self.decisions = decisions
        self.used = 0
        self.probability: float | None = 1.0
        self.steps: list[Step] = []
        self.stopped_by: Rule | None = None

    def _decide(self, rule: Rule, verdict: Verdict) -> bool:
        if self.used >= len(self.decisions):
            raise _NeedDecision(rule, verdict)
        taken = self.decisions[self.used]
        self.used += 1
        p = verdict.probability
        if p is None or self.probability is None:
            self.probability = None
        else:
            self.probability *= p if taken else 1 - p
        return taken

    def _step(self, kind: str, table: str, chain: str, rule: Rule | None, action: str,
              verdict: Verdict | None = None) -> None:
        assumed = verdict is not None and verdict.tri is Tri.MAYBE
        self.steps.append(Step(kind, table, chain, rule, action, assumed,
                               verdict.probability if assumed and verdict else None,
                               verdict.why if assumed and verdict else ""))

    def _chain(self, table: str, name: str, where: Where, depth: int) -> str | None:
        """A terminal verdict ("ACCEPT", "DROP", "REJECT", "NAT"), "RETURN" for a goto's
        return, or None when the chain returned to its caller."""
        chain = self.rules.chain(table, name)
        if chain is None or depth > _MAX_DEPTH:
            return None
        for rule in chain.rules:
            verdict = evaluate(rule, self.pkt, where, self.node)
            if verdict.tri is Tri.NO:
                continue
            if verdict.tri is Tri.MAYBE and not self._decide(rule, verdict):
                self._step("passed", table, name, rule, "not taken", verdict)
                continue
            result = self._target(table, name, rule, where, depth, verdict)
            if result == "RETURN":
                return None
            if result == "CONTINUE":
                continue
            return result
        return None

    def _target(self, table: str, chain: str, rule: Rule, where: Where, depth: int,
                verdict: Verdict) -> str:
        t = rule.target
        name = t.name
        if name in ("ACCEPT", "DROP", "RETURN"):
            self._step("rule", table, chain, rule, name, verdict)
            if name == "DROP":
                self.stopped_by = rule
            return name
        if name == "REJECT":
            how = t.get("--reject-with") or "icmp-port-unreachable"
            self._step("rule", table, chain, rule, f"REJECT with {how}", verdict)
            self.stopped_by = rule
            return "REJECT"
        if name == "DNAT":
            host, port = _split_hostport(t.get("--to-destination") or "")
            self.pkt = self.pkt.with_dst(host, port)
            self._step("rule", table, chain, rule, f"DNAT to {host}:{self.pkt.dport}", verdict)
            return "NAT"
        if name == "SNAT":
            host, port = _split_hostport(t.get("--to-source") or "")
            self.pkt = self.pkt.with_src(host, port)
            self._step("rule", table, chain, rule, f"SNAT to {host}", verdict)
            return "NAT"
        if name == "MASQUERADE":
            src = self.node.address_on(where.out_iface or "") or "the outgoing interface's address"
            self.pkt = self.pkt.with_src(src)
            self._step("rule", table, chain, rule, f"MASQUERADE: source becomes {src} ({where.out_iface})",
                       verdict)
            return "NAT"
        if name == "REDIRECT":
            local = "127.0.0.1" if where.in_iface is None else self.node.address_on(where.in_iface) or ""
            port = t.get("--to-ports")
            self.pkt = self.pkt.with_dst(local, int(port.split("-")[0]) if port else None)
            self._step("rule", table, chain, rule, f"REDIRECT to {local}:{self.pkt.dport}", verdict)
            return "NAT"
        if name == "MARK":
            before = self.pkt.mark
            self.pkt = self.pkt.with_mark(_mark(before, rule))
            self._step("rule", table, chain, rule, f"MARK {before:#x} -> {self.pkt.mark:#x}", verdict)
            return "CONTINUE"
        if name and self.rules.chain(table, name) is not None:
            self._step("rule", table, chain, rule, f"{'goto' if t.goto else 'jump'} {name}", verdict)
            result = self._chain(table, name, where, depth + 1)
            if result is None:
                return "RETURN" if t.goto else "CONTINUE"
            return result
        what = f"{name} (does not change the packet's path)" if name in _NON_TERMINATING or not name else (
            f"{name}: a target the walk does not model, taken as non-terminating")
        self._step("rule", table, chain, rule, what or "counted", verdict)
        return "CONTINUE"

    def _hook(self, hooks: tuple[tuple[str, str], ...], where: Where) -> str | None:
        """Runs the tables of one hook in priority order; "DROP"/"REJECT" or None (passed)."""
        for table, chain_name in hooks:
            chain = self.rules.chain(table, chain_name)
            if chain is None:
                continue
            if table == "nat" and not self.node.conntrack:
                if chain.rules:
                    self._step("kernel", table, chain_name, None, f"nat {chain_name} is not run: the kernel "
                               f"tracks no connections on {self.node.name} (no rule there needs conntrack)")
                continue
            result = self._chain(table, chain_name, where, 0)
            if result in ("DROP", "REJECT"):
                return result
            if result is None and chain.policy not in (None, "ACCEPT"):
                self._step("policy", table, chain_name, None, f"policy {chain.policy}")
                return "DROP"
        return None

    def _done(self, verdict: str, local: bool = False, out: str | None = None,
              gateway: str | None = None) -> Path:
        return Path(tuple(self.steps), verdict, self.pkt, local, out, gateway, self.decisions[:self.used],
                    self.probability, self.stopped_by)

    def run(self) -> Path:
        pre = self._hook(PREROUTING, Where("PREROUTING", self.in_iface, None))
        if pre is not None:
            return self._done(pre.lower())
        if self.node.is_local(self.pkt.dst):
            self.steps.append(Step("route", action=f"{self.pkt.dst} is an address of {self.node.name}: "
                                                   "delivered locally (INPUT)"))
            result = self._hook(INPUT, Where("INPUT", self.in_iface, None))
            return self._done(result.lower() if result else "accept", local=True)
        route = self.node.route(self.pkt.dst)
        if route is None:
            self.steps.append(Step("kernel", action=f"no route to {self.pkt.dst}: the kernel drops it"))
            return self._done("drop")
        via = f" via {route.gateway}" if route.gateway else ""
        self.steps.append(Step("route", action=f"{self.pkt.dst}{via} dev {route.dev}: forwarded (FORWARD)"))
        if not self.node.forwarding:
            self.steps.append(Step("kernel", action="net.ipv4.ip_forward is 0: the kernel drops forwarded "
                                                    "packets"))
            return self._done("drop")
        result = self._hook(FORWARD, Where("FORWARD", self.in_iface, route.dev))
        if result is None:
            result = self._hook(POSTROUTING, Where("POSTROUTING", None, route.dev))
        return self._done(result.lower() if result else "accept", out=route.dev, gateway=route.gateway)


def walk(rules: Ruleset, packet: Packet, node: NodeView, in_iface: str | None, *,
         possible: Callable[[Rule], bool] | None = None, limit: int = 256) -> list[Path]:
    """Every path `packet`, arriving on `in_iface`, may take through `node`: one per
    combination of the undecidable matches it meets. `possible(rule)` may rule out taking
    a rule (a counter that did not move); at most `limit` paths."""
    paths: list[Path] = []
    pending: list[tuple[bool, ...]] = [()]
    while pending and len(paths) < limit:
        prefix = pending.pop()
        try:
            paths.append(_Walk(rules, packet, node, in_iface, prefix).run())
        except _NeedDecision as need:
            pending.append((*prefix, False))
            if possible is None or possible(need.rule):
                pending.append((*prefix, True))
    return paths
