"""NodeAffinity: spec.nodeSelector and required node affinity filter; preferred node
affinity scores (the sum of the weights of the matching terms)."""

from __future__ import annotations

from control.scheduler.framework import Code, Status, default_normalize
from control.scheduler.nodeinfo import NodeInfo
from control.scheduler.podinfo import PodInfo

MISMATCH_REASON = "node(s) didn't match Pod's node affinity/selector"


class NodeAffinity:
    name = "NodeAffinity"
    weight = 2

    def pre_filter(self, pod: PodInfo) -> bool:
        return not pod.required.empty

    def filter(self, pod: PodInfo, node: NodeInfo) -> Status | None:
        if pod.required.matches(node.name, node.labels):
            return None
        return Status.of(MISMATCH_REASON, code=Code.UNRESOLVABLE, plugin=self.name)

    def pre_score(self, pod: PodInfo) -> bool:
        return bool(pod.preferred)

    def score(self, pod: PodInfo, node: NodeInfo) -> int:
        return sum(w for w, term in pod.preferred if term.matches(node.name, node.labels))

    def normalize(self, pod: PodInfo, scores: list[int]) -> list[int]:
        return default_normalize(scores)

