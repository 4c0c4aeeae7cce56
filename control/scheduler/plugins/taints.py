"""TaintToleration: NoSchedule/NoExecute taints must be tolerated; untolerated
PreferNoSchedule taints lower the score (Kubernetes' tainttoleration plugin)."""

from __future__ import annotations

from collections.abc import Iterable

from control.scheduler.framework import Code, Status, default_normalize
from control.scheduler.nodeinfo import PREFER_NO_SCHEDULE, NodeInfo
from control.scheduler.podinfo import PodInfo
from netplane.model.core import Taint
from netplane.model.pod import Toleration


def tolerates(toleration: Toleration, taint: Taint) -> bool:
    """v1.Toleration.ToleratesTaint: an empty effect or key matches any; the empty
    operator means Equal; Exists ignores the value."""
    if toleration.effect and toleration.effect != taint.effect:
        return False
    if toleration.key and toleration.key != taint.key:
        return False
    if toleration.operator in ("", "Equal"):
        return toleration.value == taint.value
    return toleration.operator == "Exists"


def tolerated(tolerations: Iterable[Toleration], taint: Taint) -> bool:
    return any(tolerates(t, taint) for t in tolerations)


def untolerated_reason(taint: Taint) -> str:
    return f"node(s) had untolerated taint {{{taint.key}: {taint.value}}}"


class TaintToleration:
    name = "TaintToleration"
    weight = 3

    def pre_filter(self, pod: PodInfo) -> bool:
        return True

    def pre_score(self, pod: PodInfo) -> bool:
        return True

    def filter(self, pod: PodInfo, node: NodeInfo) -> Status | None:
        for taint in node.hard_taints:
            if not tolerated(pod.tolerations, taint):
                return Status.of(untolerated_reason(taint), code=Code.UNRESOLVABLE, plugin=self.name)
        return None

    def score(self, pod: PodInfo, node: NodeInfo) -> int:
        if not node.soft_taints:
            return 0
        # getAllTolerationPreferNoSchedule: tolerations with an empty or matching effect.
        usable = [t for t in pod.tolerations if t.effect in ("", PREFER_NO_SCHEDULE)]
        return sum(1 for taint in node.soft_taints if not tolerated(usable, taint))

    def normalize(self, pod: PodInfo, scores: list[int]) -> list[int]:
        return default_normalize(scores, reverse=True)
