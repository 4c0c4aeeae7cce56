"""The pod status the kubelet writes: phase per restartPolicy (getPhase), conditions with
their transition times, container statuses, and when a write is needed at all."""

from __future__ import annotations

from typing import Any

import pytest

from control.kubelet.status import (
    RUNNING,
    TERMINATED,
    ContainerRecord,
    PodFacts,
    phase,
    pod_status,
    qos_class,
    same_status,
    will_restart,
)
from netplane.model import Pod, decode

FACTS = PodFacts(pod_ips=["10.244.1.5"], host_ip="10.255.0.11", start_time="2024-01-01T00:00:00Z",
                 network_ready=True)


def _pod(status: dict[str, Any] | None = None, **spec: Any) -> Pod:
    return decode(Pod, {"metadata": {"name": "web-0", "namespace": "shop", "uid": "u1"},
                        "spec": {"containers": [{"name": "a"}, {"name": "b"}], **spec},
                        "status": status or {}})


def running(name: str = "a", ready: bool = True) -> ContainerRecord:
    return ContainerRecord(name, "img", state=RUNNING, started_at="t1", ready=ready, started=True,
                           container_id="netplane://42")


def exited(name: str = "a", code: int = 0) -> ContainerRecord:
    return ContainerRecord(name, "img", state=TERMINATED, exit_code=code,
                           reason="Error" if code else "Completed", started_at="t1", finished_at="t2")


def backing_off(name: str = "a") -> ContainerRecord:
    return ContainerRecord(name, "img", reason="CrashLoopBackOff", restart_count=2,
                           last_terminated={"exitCode": 1})


@pytest.mark.parametrize(("records", "policy", "expected"), [
    ([], "Always", "Pending"),
    ([ContainerRecord("a")], "Always", "Pending"),
    ([running(), ContainerRecord("b")], "Always", "Pending"),  # one not started yet
    ([running(), exited("b", 1)], "Never", "Running"),
    ([running(), backing_off("b")], "Always", "Running"),
    ([backing_off()], "Always", "Running"),  # a crash-looping container is "restarting"
    ([exited(), exited("b")], "Always", "Running"),
    ([exited(), exited("b")], "OnFailure", "Succeeded"),
    ([exited(), exited("b", 2)], "OnFailure", "Running"),
    ([exited(), exited("b")], "Never", "Succeeded"),
    ([exited(), exited("b", 2)], "Never", "Failed"),
])
def test_phase_follows_getphase(records: list[ContainerRecord], policy: str, expected: str) -> None:
    assert phase(records, policy) == expected


def test_a_stopped_pod_being_deleted_is_terminal_whatever_its_policy() -> None:
    assert phase([exited(code=143), exited("b")], "Always", terminal=True) == "Failed"
    assert phase([exited(), exited("b")], "Always", terminal=True) == "Succeeded"


def test_restart_policy_decides_restarts() -> None:
    assert will_restart(exited(), "Always") and not will_restart(exited(), "OnFailure")
    assert will_restart(exited(code=1), "OnFailure") and not will_restart(exited(code=1), "Never")


def _conds(status: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in status["conditions"]}


def test_a_running_ready_pod() -> None:
    status = pod_status(_pod(), [running(), running("b")], FACTS, stamp="T")
    assert status["phase"] == "Running"
    assert {k: v["status"] for k, v in _conds(status).items()} == {
        "PodReadyToStartContainers": "True", "Initialized": "True", "Ready": "True",
        "ContainersReady": "True", "PodScheduled": "True"}
    assert status["podIP"] == "10.244.1.5" and status["podIPs"] == [{"ip": "10.244.1.5"}]
    assert status["hostIP"] == "10.255.0.11" and status["hostIPs"] == [{"ip": "10.255.0.11"}]
    assert status["startTime"] == "2024-01-01T00:00:00Z" and status["qosClass"] == "BestEffort"
    assert status["containerStatuses"][0] == {
        "name": "a", "state": {"running": {"startedAt": "t1"}}, "lastState": {}, "ready": True,
        "restartCount": 0, "image": "img", "imageID": "", "containerID": "netplane://42", "started": True}


def test_an_unready_container_names_itself_in_the_ready_condition() -> None:
    ready = _conds(pod_status(_pod(), [running(), running("b", ready=False)], FACTS))["Ready"]
    assert ready["status"] == "False" and ready["reason"] == "ContainersNotReady"
    assert ready["message"] == "containers with unready status: [b]"


def test_a_finished_pod_is_not_ready_with_reason_pod_completed() -> None:
    status = pod_status(_pod(restartPolicy="Never"), [exited(), exited("b")], FACTS)
    conds = _conds(status)
    assert status["phase"] == "Succeeded"
    assert (conds["Ready"]["status"], conds["Ready"]["reason"]) == ("False", "PodCompleted")
    assert conds["Initialized"]["reason"] == "PodCompleted"
    failed = _conds(pod_status(_pod(restartPolicy="Never"), [exited(), exited("b", 1)], FACTS))
    assert failed["ContainersReady"]["reason"] == "PodFailed"


def test_transition_times_stay_while_a_condition_keeps_its_status() -> None:
    before = {"conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": "T0"},
                             {"type": "ContainersReady", "status": "False", "lastTransitionTime": "T0"}]}
    conds = _conds(pod_status(_pod(before), [running(), running("b")], FACTS, stamp="T1"))
    assert conds["Ready"]["lastTransitionTime"] == "T0"
    assert conds["ContainersReady"]["lastTransitionTime"] == "T1"
    assert conds["PodScheduled"]["lastTransitionTime"] == "T1"


def test_conditions_of_others_are_kept() -> None:
    before = {"conditions": [{"type": "DisruptionTarget", "status": "True", "reason": "EvictionByEvictionAPI",
                              "lastTransitionTime": "T0"}]}
    conds = _conds(pod_status(_pod(before), [running(), running("b")], FACTS))
    assert conds["DisruptionTarget"]["reason"] == "EvictionByEvictionAPI"


def test_a_terminal_phase_is_never_left() -> None:
    assert pod_status(_pod({"phase": "Failed"}), [running(), running("b")], FACTS)["phase"] == "Failed"


def test_last_state_and_crash_loop_back_off_are_shown() -> None:
    status = pod_status(_pod(), [running(), backing_off("b")], FACTS)["containerStatuses"][1]
    assert status["state"] == {"waiting": {"reason": "CrashLoopBackOff"}}
    assert status["lastState"] == {"terminated": {"exitCode": 1}}
    assert status["restartCount"] == 2 and status["ready"] is False and status["started"] is False


def test_a_write_is_needed_only_when_something_but_probe_times_changed() -> None:
    a = pod_status(_pod(), [running(), running("b")], FACTS, stamp="T1")
    b = pod_status(_pod(), [running(), running("b")], FACTS, stamp="T2")
    assert same_status(a, b)
    c = pod_status(_pod(), [running(), running("b", ready=False)], FACTS, stamp="T1")
    assert not same_status(a, c)


@pytest.mark.parametrize(("resources", "expected"), [
    ([{}, {}], "BestEffort"),
    ([{"limits": {"cpu": "1", "memory": "1Gi"}}, {"requests": {"cpu": "1", "memory": "1Gi"},
                                                  "limits": {"cpu": "1", "memory": "1Gi"}}], "Guaranteed"),
    ([{"requests": {"cpu": "100m"}}, {}], "Burstable"),
])
def test_qos_class(resources: list[dict[str, Any]], expected: str) -> None:
    containers = [{"name": str(i), "resources": r} for i, r in enumerate(resources)]
    pod = decode(Pod, {"spec": {"containers": containers}})
    assert qos_class(pod) == expected
