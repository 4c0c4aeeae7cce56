"""One node's netfilter as the probe crossed it: two snapshots of the rules with their
counters (`iptables-save -c`, which nf_tables and legacy print alike) around the probe,
the static walk of the probe's packet through the later one, the probe's conntrack entry,
and the path that evidence picks. Thin: the parsing, walking and choosing are pure."""

from __future__ import annotations

from dataclasses import dataclass, replace

from netplane.kernel import netns
from netplane.kernel.iptables import Iptables, detect_variant
from netplane.trace.evidence import Choice, RuleId, choose, counter_deltas, rule_id
from netplane.trace.flows import Flow, find_flow
from netplane.trace.namespaces import NodeHandle
from netplane.trace.node import NodeView
from netplane.trace.packet import Packet
from netplane.trace.ruleset import Ruleset, parse
from netplane.trace.walker import walk


@dataclass(frozen=True)
class Crossing:
    choice: Choice
    paths: int
    deltas: dict[RuleId, int]
    flow: Flow | None
    in_iface: str | None
    tracked: bool = True  # the node's kernel tracks connections at all

    @property
    def conntrack(self) -> str | None:
        if self.flow is not None:
            return str(self.flow)
        return None if self.tracked else "none: the kernel tracks no connections on this node"


class NetfilterTrace:
    def __init__(self, node: NodeHandle) -> None:
        self.node = node
        # The variant that holds the node's rules (the proxy chose it the same way).
        self.iptables = Iptables(netns.run_in(node.netns, detect_variant))
        self.before: Ruleset | None = None

    @property
    def variant(self) -> str:
        return self.iptables.variant

    def snapshot(self) -> Ruleset:
        ipt = self.iptables
        return parse(netns.run_in(self.node.netns, lambda: ipt.save_blocking(counters=True)))

    def prepare(self) -> None:
        self.before = self.snapshot()

    def cross(self, packet: Packet, view: NodeView) -> Crossing:
        """The path `packet` took through this node since `prepare()`."""
        after = self.snapshot()
        deltas = counter_deltas(self.before or Ruleset(), after)
        in_iface = view.iface_for_source(packet.src)
        flow, tracked = find_flow(self.node.netns, packet.proto, packet.src, packet.sport, packet.dst,
                                  packet.dport)
        if not tracked:
            # Nothing there asks for conntrack, so the kernel tracks nothing and never runs
            # the nat table (userspace mode with no portals).
            view = replace(view, conntrack=False)
        possible = len(walk(after, packet, view, in_iface))
        # A rule whose counter did not move was not taken by the probe: fewer paths to weigh.
        paths = walk(after, packet, view, in_iface, possible=lambda rule: deltas.get(rule_id(rule), 0) > 0)
        choice = choose(paths, deltas, flow.dnat if flow else None, conntrack_seen=flow is not None)
        return Crossing(choice, possible, deltas, flow, in_iface, bool(tracked))
