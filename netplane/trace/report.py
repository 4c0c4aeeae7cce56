"""What a trace found, as data: the probe, one hop per node the packet crossed (its
netfilter path with counter deltas and conntrack entry, what the node's proxy did with
it), and the outcome. `-o json` prints it as is; text.py renders it for people."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from netplane.trace.evidence import Choice, RuleId, rule_id
from netplane.trace.walker import Step


@dataclass(frozen=True)
class StepView:
    kind: str  # "rule", "passed", "policy", "route", "kernel" (walker.Step)
    action: str
    table: str = ""
    chain: str = ""
    index: int | None = None
    rule: str = ""  # as iptables-save prints it
    comment: str = ""
    packets: int | None = None  # how far its counter moved while the probe passed
    assumed: bool = False  # an undecidable match (statistic, recent): the evidence decided
    probability: float | None = None
    why: str = ""


@dataclass(frozen=True)
class NetfilterView:
    variant: str  # "nft" or "legacy"
    steps: tuple[StepView, ...]
    decided_by: str  # how the path was picked among those the rules allow
    paths: int  # how many paths the rules allow for this packet
    fits: bool  # every rule on the path counted the probe
    conntrack: str | None = None  # the probe's conntrack entry on this node


@dataclass(frozen=True)
class ProxyView:
    """What the node's proxy itself did (userspace: its listener and pick; ipvs: the
    virtual server and the real server chosen)."""

    mode: str
    lines: tuple[str, ...]
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Hop:
    node: str
    netns: str
    mode: str
    packet_in: str
    in_iface: str | None
    outcome: str
    packet_out: str = ""
    netfilter: NetfilterView | None = None
    proxy: ProxyView | None = None


@dataclass(frozen=True)
class Outcome:
    verdict: str  # "delivered", "rejected", "dropped", "routed" (not a service: left as it was)
    reason: str
    endpoint: str | None = None  # "ip:port" the connection reaches
    endpoint_pod: str | None = None  # "ns/name" of the pod with that address


@dataclass(frozen=True)
class Report:
    pod: dict[str, str]
    target: dict[str, Any]
    probe: dict[str, Any]
    hops: tuple[Hop, ...]
    outcome: Outcome
    notes: tuple[str, ...] = ()

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)


def step_view(step: Step, deltas: dict[RuleId, int]) -> StepView:
    rule = step.rule
    if rule is None:
        return StepView(step.kind, step.action)
    return StepView(step.kind, step.action, rule.table, rule.chain, rule.index, str(rule), rule.comment,
                    deltas.get(rule_id(rule)), step.assumed, step.probability, step.why)


def netfilter_view(variant: str, choice: Choice, paths: int, deltas: dict[RuleId, int],
                   conntrack: str | None) -> NetfilterView:
    return NetfilterView(variant, tuple(step_view(s, deltas) for s in choice.path.steps), choice.how, paths,
                         choice.fits, conntrack)
