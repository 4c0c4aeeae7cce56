"""A pod's status from what the kubelet knows of its containers (pure)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class ContainerRecord:
    """What the kubelet tracks of one container between status writes."""

    name: str
    image: str
    restart_count: int = 0
    state: str = "waiting"  # waiting | running | terminated
    reason: str = "ContainerCreating"
    message: str = ""
    started_at: str = ""
    finished_at: str = ""
    exit_code: int | None = None
    ready: bool = False
    pid: int = 0
    last_terminated: dict[str, Any] = field(default_factory=dict)

    def as_status(self) -> dict[str, Any]:
        if self.state == "running":
            state: dict[str, Any] = {"running": {"startedAt": self.started_at}}
        elif self.state == "terminated":
            state = {"terminated": {"exitCode": self.exit_code, "reason": self.reason,
                                    "startedAt": self.started_at, "finishedAt": self.finished_at}}
        else:
            waiting = {"reason": self.reason, **({"message": self.message} if self.message else {})}
            state = {"waiting": waiting}
        out = {"name": self.name, "image": self.image, "imageID": "", "ready": self.ready,
               "restartCount": self.restart_count, "started": self.state == "running", "state": state,
               "containerID": f"netplane://{self.pid}" if self.pid else ""}
        if self.last_terminated:
            out["lastState"] = {"terminated": self.last_terminated}
        return out


def phase(records: list[ContainerRecord], restart_policy: str) -> str:
    if any(r.state == "running" for r in records):
        return "Running"
    if records and all(r.state == "terminated" for r in records):
        failed = any(r.exit_code for r in records)
        if restart_policy == "Always" or (restart_policy == "OnFailure" and failed):
            return "Running"  # about to be restarted
        return "Failed" if failed else "Succeeded"
    if any(r.restart_count for r in records):
        return "Running"  # in back-off between restarts
    return "Pending"


def _condition(kind: str, ok: bool, previous: dict[str, dict[str, Any]], reason: str = "") -> dict[str, Any]:
    status = "True" if ok else "False"
    old = previous.get(kind)
    since = old["lastTransitionTime"] if old and old.get("status") == status else now()
    out = {"type": kind, "status": status, "lastProbeTime": None, "lastTransitionTime": since}
    if reason and not ok:
        out["reason"] = reason
    return out


def pod_status(pod: dict[str, Any], records: list[ContainerRecord], *, pod_ip: str, host_ip: str,
               start_time: str, extra_not_ready: bool = False) -> dict[str, Any]:
    """The full `status` the kubelet writes for `pod`."""
    spec = pod.get("spec") or {}
    previous = {c["type"]: c for c in (pod.get("status") or {}).get("conditions") or []}
    ready = bool(records) and all(r.ready for r in records) and not extra_not_ready
    current = phase(records, spec.get("restartPolicy", "Always"))
    status: dict[str, Any] = {
        "phase": current,
        "conditions": [
            _condition("PodReadyToStartContainers", bool(pod_ip), previous),
            _condition("Initialized", True, previous),
            _condition("Ready", ready and current == "Running", previous, "ContainersNotReady"),
            _condition("ContainersReady", ready and current == "Running", previous, "ContainersNotReady"),
            _condition("PodScheduled", True, previous),
        ],
        "hostIP": host_ip, "hostIPs": [{"ip": host_ip}],
        "startTime": start_time,
        "containerStatuses": [r.as_status() for r in records],
        "qosClass": "BestEffort",
    }
    if pod_ip:
        status["podIP"] = pod_ip
        status["podIPs"] = [{"ip": pod_ip}]
    return status


def same_status(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Equal but for timestamps that only say when it was checked."""
    def strip(s: dict[str, Any]) -> Any:
        conds = [{k: v for k, v in c.items() if k not in ("lastProbeTime", "lastHeartbeatTime")}
                 for c in s.get("conditions") or []]
        return {**s, "conditions": sorted(conds, key=lambda c: c["type"])}
    return bool(strip(a) == strip(b))
