"""NodeResourcesFit (requests against allocatable cpu, memory, pods and any other named
resource) and its LeastAllocated score, as Kubernetes' noderesources plugins."""

from __future__ import annotations

from control.scheduler.framework import MAX_NODE_SCORE, Status
from control.scheduler.nodeinfo import NodeInfo
from control.scheduler.podinfo import PodInfo

TOO_MANY_PODS = "Too many pods"


def insufficient(name: str) -> str:
    return f"Insufficient {name}"


class ResourcesFit:
    name = "NodeResourcesFit"

    def pre_filter(self, pod: PodInfo) -> bool:
        return True

    def filter(self, pod: PodInfo, node: NodeInfo) -> Status | None:
        req = pod.requests
        if (len(node.pods) < node.alloc_pods and not req.scalars
                and req.milli_cpu <= node.alloc_cpu - node.requested_cpu
                and req.memory <= node.alloc_memory - node.requested_memory):
            return None  # the common case, decided in one expression
        # fitsRequest: every shortfall is a reason of its own.
        reasons: list[str] = []
        if len(node.pods) + 1 > node.alloc_pods:
            reasons.append(TOO_MANY_PODS)
        if req.milli_cpu > 0 and req.milli_cpu > node.alloc_cpu - node.requested_cpu:
            reasons.append(insufficient("cpu"))
        if req.memory > 0 and req.memory > node.alloc_memory - node.requested_memory:
            reasons.append(insufficient("memory"))
        for name, value in req.scalars:
            if value > 0 and value > (node.alloc_scalars.get(name, 0)
                                      - node.requested_scalars.get(name, 0)):
                reasons.append(insufficient(name))
        return Status(tuple(reasons), plugin=self.name) if reasons else None


def least_requested(requested: int, capacity: int) -> int:
    """leastRequestedScore: the free share of a resource after placing the pod, 0..100."""
    if capacity <= 0 or requested > capacity:
        return 0
    return (capacity - requested) * MAX_NODE_SCORE // capacity


class LeastAllocated:
    """Prefers the node with the most free cpu and memory (equal weights), counting
    containers without requests as Kubernetes' non-zero defaults (100m, 200Mi)."""

    name = "NodeResourcesLeastAllocated"
    weight = 1

    def pre_score(self, pod: PodInfo) -> bool:
        return True

    def score(self, pod: PodInfo, node: NodeInfo) -> int:
        # leastRequestedScore for cpu and memory, inlined: this runs for every node.
        cpu_cap, mem_cap = node.alloc_cpu, node.alloc_memory
        cpu = node.non_zero_cpu + pod.non_zero_cpu
        mem = node.non_zero_memory + pod.non_zero_memory
        cpu_score = (cpu_cap - cpu) * MAX_NODE_SCORE // cpu_cap if cpu_cap > 0 and cpu <= cpu_cap else 0
        mem_score = (mem_cap - mem) * MAX_NODE_SCORE // mem_cap if mem_cap > 0 and mem <= mem_cap else 0
        return (cpu_score + mem_score) // 2

    def normalize(self, pod: PodInfo, scores: list[int]) -> list[int]:
        return scores
