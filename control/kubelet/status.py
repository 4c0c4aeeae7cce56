"""A pod's `status` from what the kubelet knows of its containers (pure): the phase
(getPhase), the kubelet-owned conditions (pkg/kubelet/status/generate.go) and container
statuses, and whether a new status differs from the one the API holds."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from netplane.model import Pod

WAITING, RUNNING, TERMINATED = "waiting", "running", "terminated"
# Conditions the kubelet owns; any other condition of the pod is kept as it is.
KUBELET_CONDITIONS = ("PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady", "PodScheduled")


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class ContainerRecord:
    """What the kubelet tracks of one container between status writes."""

    name: str
    image: str = ""
    restart_count: int = 0
    state: str = WAITING
    reason: str = "ContainerCreating"
    message: str = ""
    started_at: str = ""
    finished_at: str = ""
    exit_code: int = 0
    ready: bool = False
    started: bool = False
    container_id: str = ""
    last_terminated: dict[str, Any] | None = None

    def terminated_detail(self) -> dict[str, Any]:
        out: dict[str, Any] = {"exitCode": self.exit_code, "reason": self.reason,
                               "startedAt": self.started_at or None, "finishedAt": self.finished_at or None,
                               "containerID": self.container_id}
        if self.message:
            out["message"] = self.message
        return out

    def as_status(self) -> dict[str, Any]:
        """The API ContainerStatus."""
        if self.state == RUNNING:
            state: dict[str, Any] = {"running": {"startedAt": self.started_at}}
        elif self.state == TERMINATED:
            state = {"terminated": self.terminated_detail()}
        else:
            waiting = {"reason": self.reason}
            if self.message:
                waiting["message"] = self.message
            state = {"waiting": waiting}
        return {"name": self.name, "state": state,
                "lastState": {"terminated": self.last_terminated} if self.last_terminated else {},
                "ready": self.ready and self.state == RUNNING, "restartCount": self.restart_count,
                "image": self.image, "imageID": "", "containerID": self.container_id,
                "started": self.state == RUNNING and self.started}


def phase(records: Sequence[ContainerRecord], restart_policy: str, terminal: bool = False) -> str:
    """getPhase for pods without init containers. `terminal`: no container will run again
    (the pod is being deleted and its containers are stopped)."""
    running = stopped = succeeded = waiting = 0
    for r in records:
        if r.state == RUNNING:
            running += 1
        elif r.state == TERMINATED:
            stopped += 1
            succeeded += r.exit_code == 0
        elif r.last_terminated is not None:
            stopped += 1  # waiting to restart after a crash counts as stopped
        else:
            waiting += 1
    if waiting or not records:
        return "Pending"
    if running:
        return "Running"
    if terminal:
        return "Succeeded" if stopped == succeeded else "Failed"
    if restart_policy == "Always":
        return "Running"
    if stopped == succeeded:
        return "Succeeded"
    return "Failed" if restart_policy == "Never" else "Running"


def will_restart(record: ContainerRecord, restart_policy: str) -> bool:
    """A terminated container that its restartPolicy restarts."""
    return restart_policy == "Always" or (restart_policy == "OnFailure" and record.exit_code != 0)


def _go_list(names: Sequence[str]) -> str:
    return "[" + " ".join(names) + "]"  # fmt's %s of a []string


def _readiness(kind: str, records: Sequence[ContainerRecord], current_phase: str) -> dict[str, Any]:
    if current_phase in ("Succeeded", "Failed"):
        reason = "PodCompleted" if current_phase == "Succeeded" else "PodFailed"
        return {"type": kind, "status": "False", "reason": reason}
    unready = [r.name for r in records if not (r.ready and r.state == RUNNING)]
    if unready:
        return {"type": kind, "status": "False", "reason": "ContainersNotReady",
                "message": f"containers with unready status: {_go_list(unready)}"}
    return {"type": kind, "status": "True"}


def conditions(pod: Pod, records: Sequence[ContainerRecord], current_phase: str, *,
               network_ready: bool, stamp: str) -> list[dict[str, Any]]:
    """Conditions not owned by the kubelet as they are, then the kubelet's own; each keeps
    its lastTransitionTime while its status stays the same."""
    previous = {c.type: c for c in pod.status.conditions}
    initialized: dict[str, Any] = {"type": "Initialized", "status": "True"}
    if current_phase == "Succeeded":
        initialized["reason"] = "PodCompleted"
    ready = _readiness("Ready", records, current_phase)
    owned = [{"type": "PodReadyToStartContainers", "status": "True" if network_ready else "False"},
             initialized, ready, _readiness("ContainersReady", records, current_phase),
             {"type": "PodScheduled", "status": "True"}]
    out: list[dict[str, Any]] = []
    for c in pod.status.conditions:
        if c.type not in KUBELET_CONDITIONS:
            kept: dict[str, Any] = {"type": c.type, "status": c.status, "lastProbeTime": None,
                                    "lastTransitionTime": c.last_transition_time}
            kept.update({k: v for k, v in (("reason", c.reason), ("message", c.message)) if v})
            out.append(kept)
    for cond in owned:
        old = previous.get(cond["type"])
        since = old.last_transition_time if old is not None and old.status == cond["status"] else None
        out.append({**cond, "lastProbeTime": None, "lastTransitionTime": since or stamp})
    return out


@dataclass(frozen=True)
class PodFacts:
    """What the status says besides the containers."""

    pod_ips: Sequence[str] = ()
    host_ip: str = ""
    start_time: str = ""
    network_ready: bool = False
    terminal: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


def pod_status(pod: Pod, records: Sequence[ContainerRecord], facts: PodFacts,
               stamp: str | None = None) -> dict[str, Any]:
    """The full `status` the kubelet writes for `pod`."""
    stamp = stamp or now()
    current = phase(records, pod.spec.restart_policy or "Always", facts.terminal)
    # A pod never leaves a terminal phase (generateAPIPodStatus).
    if pod.status.phase in ("Succeeded", "Failed"):
        current = pod.status.phase
    status: dict[str, Any] = {
        "phase": current,
        "conditions": conditions(pod, records, current, network_ready=facts.network_ready, stamp=stamp),
        "hostIP": facts.host_ip, "hostIPs": [{"ip": facts.host_ip}] if facts.host_ip else [],
        "startTime": facts.start_time or None,
        "containerStatuses": [r.as_status() for r in records],
        "qosClass": qos_class(pod),
        **facts.extra,
    }
    if facts.pod_ips:
        status["podIP"] = facts.pod_ips[0]
        status["podIPs"] = [{"ip": ip} for ip in facts.pod_ips]
    return status


def qos_class(pod: Pod) -> str:
    """GetPodQOS, simplified to what a pod's containers declare: Guaranteed when every
    container has equal cpu and memory requests and limits, BestEffort when none declares
    any, else Burstable."""
    any_set, guaranteed = False, True
    for c in pod.spec.containers:
        req, lim = c.resources.requests, c.resources.limits
        any_set = any_set or bool(req) or bool(lim)
        for res in ("cpu", "memory"):
            if res not in lim or str(req.get(res, lim[res])) != str(lim[res]):
                guaranteed = False
    if not any_set:
        return "BestEffort"
    return "Guaranteed" if guaranteed else "Burstable"


def _comparable(status: dict[str, Any]) -> Any:
    conds = sorted(({k: v for k, v in c.items() if k not in ("lastProbeTime", "lastTransitionTime")}
                    for c in status.get("conditions") or []), key=lambda c: str(c.get("type")))
    return {**{k: v for k, v in status.items() if v not in (None, [], {}, "")}, "conditions": conds}


def same_status(new: dict[str, Any], current: dict[str, Any]) -> bool:
    """True when writing `new` over `current` would change nothing that matters (times that
    only say when a condition was last looked at are ignored)."""
    return bool(_comparable(new) == _comparable(current))
