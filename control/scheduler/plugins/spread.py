"""OwnerSpread: pods of one controller (the same controller ownerReference) prefer the
nodes that run the fewest of them, as Kubernetes' SelectorSpread did per node."""

from __future__ import annotations

from control.scheduler.framework import default_normalize
from control.scheduler.nodeinfo import NodeInfo
from control.scheduler.podinfo import PodInfo


class OwnerSpread:
    name = "OwnerSpread"
    weight = 2

    def pre_score(self, pod: PodInfo) -> bool:
        return bool(pod.owner_uid)

    def score(self, pod: PodInfo, node: NodeInfo) -> int:
        return node.owner_counts.get(pod.owner_uid, 0)

    def normalize(self, pod: PodInfo, scores: list[int]) -> list[int]:
        return default_normalize(scores, reverse=True)
