"""Rollout arithmetic: template hashes, surge/unavailable rounding, rolling steps, and the
order surplus pods are deleted in."""

from __future__ import annotations

from types import SimpleNamespace as NS

import pytest

from control.controllers.rollout import (
    RSState,
    deletion_rank,
    resolve,
    rolling_step,
    surge_and_unavailable,
    template_hash,
)


def test_template_hashes_are_stable_and_safe() -> None:
    t = {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}
    h = template_hash(t)
    assert h == template_hash({"spec": t["spec"], "metadata": t["metadata"]})
    assert h != template_hash({**t, "spec": {"containers": [{"name": "c", "image": "j"}]}})
    assert set(h) <= set("bcdfghjklmnpqrstvwxz2456789")


@pytest.mark.parametrize(("value", "total", "up", "want"), [
    ("25%", 10, True, 3), ("25%", 10, False, 2), (2, 10, True, 2), ("0%", 3, True, 0), (None, 4, True, 1)])
def test_percentages_round_like_kubernetes(value: object, total: int, up: bool, want: int) -> None:
    assert resolve(value, total, round_up=up) == want  # type: ignore[arg-type]


def test_zero_surge_and_zero_unavailable_still_progress() -> None:
    assert surge_and_unavailable(3, 0, 0) == (0, 1)


def test_a_rolling_update_surges_then_retires_old_pods() -> None:
    # 4 replicas, surge 1, unavailable 1: the new set may grow to 1 (5 in all) ...
    step = rolling_step(4, 1, 1, RSState("new", 0, 0), [RSState("old", 4, 4)])
    assert step == {"new": 1, "old": 3}
    # ... and once its pod is available, old goes down as far as availability allows.
    step = rolling_step(4, 1, 1, RSState("new", 1, 1), [RSState("old", 3, 3)])
    assert step == {"new": 2, "old": 2}
    assert rolling_step(4, 1, 1, RSState("new", 4, 4), [RSState("old", 0, 0)]) == {"new": 4, "old": 0}


def test_unavailable_old_pods_go_first_and_scaling_down_follows() -> None:
    assert rolling_step(2, 0, 1, RSState("new", 0, 0), [RSState("old", 2, 0)])["old"] == 0
    assert rolling_step(1, 1, 0, RSState("new", 5, 5), []) == {"new": 1}


def _pod(name: str, *, node: str = "n", phase: str = "Running", ready: bool = True, restarts: int = 0,
         created: str = "2026-01-01T00:00:00Z") -> NS:
    return NS(metadata=NS(name=name, creation_timestamp=created), spec=NS(node_name=node),
              status=NS(phase=phase, conditions=[NS(type="Ready", status="True" if ready else "False")],
                        container_statuses=[NS(restart_count=restarts)]))


def test_surplus_pods_are_deleted_in_kubernetes_order() -> None:
    pods = [_pod("ready-old"), _pod("ready-new", created="2026-02-01T00:00:00Z"),
            _pod("unscheduled", node=""), _pod("pending", phase="Pending"), _pod("not-ready", ready=False),
            _pod("crashy", restarts=5)]
    order = [p.metadata.name for p in sorted(pods, key=deletion_rank)]
    assert order == ["unscheduled", "pending", "not-ready", "crashy", "ready-new", "ready-old"]
