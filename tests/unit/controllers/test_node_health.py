"""The node lifecycle controller's rules: which conditions go Unknown, which taints."""

from __future__ import annotations

from typing import Any

from control.controllers.nodelifecycle import (
    NOT_READY_TAINT,
    UNREACHABLE_TAINT,
    desired_taints,
    unknown_conditions,
)
from netplane.model import Node, decode

NOW = "2024-05-01T12:00:00Z"


def node(ready: str | None = "True", taints: Any = (), **extra: str) -> Node:
    conditions = [] if ready is None else [
        {"type": "Ready", "status": ready, "lastHeartbeatTime": "2024-05-01T11:00:00Z"}]
    conditions += [{"type": t, "status": s} for t, s in extra.items()]
    return decode(Node, {"metadata": {"name": "n1", "creationTimestamp": "2024-05-01T10:00:00Z"},
                         "spec": {"taints": list(taints)}, "status": {"conditions": conditions}})


def test_a_silent_ready_node_goes_unknown_keeping_its_last_heartbeat() -> None:
    [c] = unknown_conditions(node("True"), NOW)
    assert c == {"type": "Ready", "status": "Unknown", "reason": "NodeStatusUnknown",
                 "message": "Kubelet stopped posting node status.",
                 "lastHeartbeatTime": "2024-05-01T11:00:00Z", "lastTransitionTime": NOW}


def test_kubelet_pressure_conditions_go_unknown_too_but_others_stay() -> None:
    patch = unknown_conditions(node("False", MemoryPressure="False", NetworkUnavailable="False"), NOW)
    assert [(c["type"], c["status"]) for c in patch] == [("Ready", "Unknown"), ("MemoryPressure", "Unknown")]


def test_an_already_unknown_node_needs_no_write() -> None:
    assert unknown_conditions(node("Unknown"), NOW) == []


def test_a_node_that_never_posted_status_gets_ready_unknown_never_updated() -> None:
    [c] = unknown_conditions(node(None), NOW)
    assert (c["status"], c["reason"], c["message"]) == \
        ("Unknown", "NodeStatusNeverUpdated", "Kubelet never posted node status.")
    assert c["lastHeartbeatTime"] == "2024-05-01T10:00:00Z"


def test_an_unreachable_node_gets_the_unreachable_no_schedule_taint_and_keeps_others() -> None:
    other = {"key": "dedicated", "value": "db", "effect": "NoSchedule"}
    taints = desired_taints(node("Unknown", taints=[other]), True, NOW)
    assert taints is not None
    assert [(t.key, t.effect) for t in taints] == [("dedicated", "NoSchedule"),
                                                   (UNREACHABLE_TAINT, "NoSchedule")]
    assert taints[1].time_added == NOW


def test_taints_already_right_need_no_write() -> None:
    tainted = node("Unknown", taints=[{"key": UNREACHABLE_TAINT, "effect": "NoSchedule"}])
    assert desired_taints(tainted, True, NOW) is None
    assert desired_taints(node("True"), False, NOW) is None


def test_a_renewed_lease_removes_the_unreachable_taint_even_before_the_kubelet_posts_ready() -> None:
    tainted = node("Unknown", taints=[{"key": UNREACHABLE_TAINT, "effect": "NoSchedule"},
                                      {"key": UNREACHABLE_TAINT, "effect": "NoExecute"}])
    taints = desired_taints(tainted, False, NOW)
    assert taints is not None
    assert [(t.key, t.effect) for t in taints] == [(UNREACHABLE_TAINT, "NoExecute")]


def test_a_node_reporting_not_ready_gets_the_not_ready_taint() -> None:
    taints = desired_taints(node("False"), False, NOW)
    assert taints is not None
    assert [t.key for t in taints] == [NOT_READY_TAINT]
    # ... which turns into the unreachable taint once it also goes silent.
    tainted = node("False", taints=[{"key": NOT_READY_TAINT, "effect": "NoSchedule"}])
    assert [t.key for t in desired_taints(tainted, True, NOW) or []] == [UNREACHABLE_TAINT]
