"""The scheduling framework: the filter and score plugin interface, and one scheduling
cycle (filter every node, score the feasible ones, pick the best) as a pure function.

As in kube-scheduler, a plugin may say it has nothing to do for a pod (`pre_filter`,
`pre_score` returning False: Kubernetes' "Skip"), so a pod without affinity or tolerations pays nothing
for those plugins; scores are raw per node, then normalized to 0..100 and weighted."""

from __future__ import annotations

import enum
import random
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from control.scheduler.nodeinfo import NodeInfo
from control.scheduler.podinfo import PodInfo

MAX_NODE_SCORE = 100
NO_NODES_MESSAGE = "no nodes available to schedule pods"


class Code(enum.Enum):
    UNSCHEDULABLE = "Unschedulable"
    # No change to other pods (preemption) can help: the node itself does not fit.
    UNRESOLVABLE = "UnschedulableAndUnresolvable"
    ERROR = "Error"


@dataclass(frozen=True, slots=True)
class Status:
    """Why a node does not fit a pod: one or more reasons as Kubernetes words them."""

    reasons: tuple[str, ...]
    code: Code = Code.UNSCHEDULABLE
    plugin: str = ""

    @classmethod
    def of(cls, *reasons: str, code: Code = Code.UNSCHEDULABLE, plugin: str = "") -> Status:
        return cls(tuple(reasons), code, plugin)


class FilterPlugin(Protocol):
    name: str

    def pre_filter(self, pod: PodInfo) -> bool:
        """False when the filter passes every node for this pod (skipped)."""
        ...

    def filter(self, pod: PodInfo, node: NodeInfo) -> Status | None:
        """None when the pod fits the node."""
        ...


class ScorePlugin(Protocol):
    name: str
    weight: int

    def pre_score(self, pod: PodInfo) -> bool:
        """False when the plugin would score every node the same (skipped)."""
        ...

    def score(self, pod: PodInfo, node: NodeInfo) -> int:
        """A raw score; `normalize` brings the scores of all feasible nodes to 0..100."""
        ...

    def normalize(self, pod: PodInfo, scores: list[int]) -> list[int]: ...


def default_normalize(scores: list[int], reverse: bool = False) -> list[int]:
    """Kubernetes' helper.DefaultNormalizeScore: scale to 0..100 by the maximum;
    `reverse` makes the lowest raw score the best."""
    top = max(scores, default=0)
    if top == 0:
        return [MAX_NODE_SCORE] * len(scores) if reverse else [0] * len(scores)
    if reverse:
        return [MAX_NODE_SCORE - MAX_NODE_SCORE * s // top for s in scores]
    return [MAX_NODE_SCORE * s // top for s in scores]


@dataclass
class ScheduleResult:
    node: str | None
    # node name -> why it was filtered out (only when some node was).
    failures: dict[str, Status] = field(default_factory=dict)
    num_nodes: int = 0
    message: str = ""  # the FitError message when node is None


def unschedulable_message(num_nodes: int, statuses: Iterable[Status],
                          pre_filter_message: str = "") -> str:
    """Kubernetes' FitError.Error(): "0/3 nodes are available: 1 Insufficient cpu, 2
    node(s) had untolerated taint {k: v}." (reason counts, sorted as strings)."""
    if num_nodes == 0 and not pre_filter_message:
        return NO_NODES_MESSAGE
    message = f"0/{num_nodes} nodes are available:"
    if pre_filter_message:
        return f"{message} {pre_filter_message}."
    counts = Counter(reason for status in statuses for reason in status.reasons)
    parts = sorted(f"{n} {reason}" for reason, n in counts.items())
    return f"{message} {', '.join(parts)}." if parts else message


class Framework:
    """Filters then scores, in the order given (cheap, most selective filters first)."""

    def __init__(self, filters: Sequence[FilterPlugin], scores: Sequence[ScorePlugin],
                 rng: random.Random | None = None) -> None:
        self.filters = tuple(filters)
        self.scores = tuple(scores)
        self._rng = rng or random.Random()

    def find_feasible(self, pod: PodInfo, nodes: Sequence[NodeInfo]
                      ) -> tuple[list[NodeInfo], dict[str, Status]]:
        filters = [f.filter for f in self.filters if f.pre_filter(pod)]
        feasible: list[NodeInfo] = []
        failures: dict[str, Status] = {}
        for node in nodes:
            for check in filters:
                status = check(pod, node)
                if status is not None:
                    failures[node.name] = status
                    break
            else:
                feasible.append(node)
        return feasible, failures

    def score(self, pod: PodInfo, nodes: Sequence[NodeInfo]) -> list[int]:
        """The weighted sum of every relevant plugin's normalized score, per node."""
        totals = [0] * len(nodes)
        for plugin in self.scores:
            if not plugin.pre_score(pod):
                continue
            score = plugin.score
            raw = [score(pod, node) for node in nodes]
            weight = plugin.weight
            for i, value in enumerate(plugin.normalize(pod, raw)):
                totals[i] += weight * value
        return totals

    def schedule(self, pod: PodInfo, nodes: Sequence[NodeInfo]) -> ScheduleResult:
        if pod.invalid:
            return ScheduleResult(None, {}, len(nodes),
                                  unschedulable_message(len(nodes), (), pod.invalid))
        feasible, failures = self.find_feasible(pod, nodes)
        if not feasible:
            return ScheduleResult(None, failures, len(nodes),
                                  unschedulable_message(len(nodes), failures.values()))
        if len(feasible) == 1:
            return ScheduleResult(feasible[0].name, failures, len(nodes))
        return ScheduleResult(self._select(feasible, self.score(pod, feasible)), failures,
                              len(nodes))

    def _select(self, nodes: Sequence[NodeInfo], totals: list[int]) -> str:
        # selectHost: the highest total; ties broken uniformly at random.
        best = max(totals)
        ties = [i for i, value in enumerate(totals) if value == best]
        return nodes[ties[0] if len(ties) == 1 else self._rng.choice(ties)].name
