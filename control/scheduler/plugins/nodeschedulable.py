"""NodeSchedulable: a cordoned node (`spec.unschedulable`) or one that is not Ready takes
no pods, unless the pod tolerates the matching node.kubernetes.io taint (as DaemonSet
pods do). Kubernetes splits this between NodeUnschedulable and the taints the node
lifecycle controller adds; the messages are the same as there."""

from __future__ import annotations

from control.scheduler.framework import Code, Status
from control.scheduler.nodeinfo import NO_SCHEDULE, TAINT_UNSCHEDULABLE, NodeInfo
from control.scheduler.plugins.taints import tolerated, untolerated_reason
from control.scheduler.podinfo import PodInfo
from netplane.model.core import Taint

UNSCHEDULABLE_REASON = "node(s) were unschedulable"
_UNSCHEDULABLE_TAINT = Taint(key=TAINT_UNSCHEDULABLE, effect=NO_SCHEDULE)


class NodeSchedulable:
    name = "NodeSchedulable"

    def pre_filter(self, pod: PodInfo) -> bool:
        return True

    def filter(self, pod: PodInfo, node: NodeInfo) -> Status | None:
        if node.unschedulable and not tolerated(pod.tolerations, _UNSCHEDULABLE_TAINT):
            return Status.of(UNSCHEDULABLE_REASON, code=Code.UNRESOLVABLE, plugin=self.name)
        taint = node.readiness
        if taint is not None and not tolerated(pod.tolerations, taint):
            return Status.of(untolerated_reason(taint), code=Code.UNRESOLVABLE, plugin=self.name)
        return None
