"""The pure Deployment arithmetic: pod-template-hash, maxSurge/maxUnavailable, rolling
update steps, proportional scaling, history pruning, and the status conditions."""

from __future__ import annotations

import dataclasses
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from control.controllers.rollout import (
    RS,
    Strategy,
    is_scaling_event,
    new_rs_replicas,
    prunable,
    rolling_step,
    safe_encode,
    scale,
    scaled_value,
    template_hash,
)
from control.controllers.rolloutstatus import (
    NEW_RS_AVAILABLE,
    PAUSED,
    PROGRESSING,
    RESUMED,
    RS_UPDATED,
    TIMED_OUT,
    calculate_status,
    condition,
    get_condition,
    paused_conditions,
    rollout_status,
    set_condition,
    stamp,
    status_json,
)
from netplane.model import Deployment, decode
from netplane.model.apps import DeploymentStatus

NOW = 1_700_000_000.0
TEMPLATE = {"metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "c", "image": "agnhost", "args": ["serve-hostname"]}]}}


# --- pod-template-hash -----------------------------------------------------------------------


def test_the_template_hash_is_stable_and_ignores_key_order() -> None:
    reordered = {"spec": {"containers": [{"args": ["serve-hostname"], "image": "agnhost", "name": "c"}]},
                 "metadata": {"labels": {"app": "web"}}}
    assert template_hash(TEMPLATE) == template_hash(reordered)
    # Pinned: a change of the hash function would roll every Deployment in a cluster.
    assert template_hash(TEMPLATE) == "7f58cb8646"


def test_any_change_of_the_template_changes_the_hash() -> None:
    changed = {**TEMPLATE, "spec": {"containers": [{"name": "c", "image": "agnhost:2"}]}}
    assert template_hash(changed) != template_hash(TEMPLATE)


def test_a_collision_count_gives_another_hash() -> None:
    assert len({template_hash(TEMPLATE), template_hash(TEMPLATE, 0), template_hash(TEMPLATE, 1)}) == 3


def test_hashes_use_kubernetes_safe_alphabet() -> None:
    assert safe_encode("0123456789") == "456789bcdf"  # rand.SafeEncodeString of digits
    assert set(template_hash(TEMPLATE)) <= set("bcdfghjklmnpqrstvwxz2456789")


# --- maxSurge / maxUnavailable -------------------------------------------------------------


@pytest.mark.parametrize(("value", "total", "up", "down"), [
    ("25%", 10, 3, 2), ("25%", 4, 1, 1), ("25%", 3, 1, 0), ("25%", 1, 1, 0), ("50%", 5, 3, 2),
    ("0%", 10, 0, 0), ("100%", 7, 7, 7), (2, 10, 2, 2), (0, 10, 0, 0),
])
def test_percentages_round_up_for_surge_and_down_for_unavailable(value: Any, total: int, up: int,
                                                                  down: int) -> None:
    assert scaled_value(value, total, round_up=True) == up
    assert scaled_value(value, total, round_up=False) == down


def test_a_value_that_is_neither_int_nor_percentage_is_refused() -> None:
    with pytest.raises(ValueError, match="percentage"):
        scaled_value("3", 10, round_up=True)


def test_zero_surge_and_zero_unavailable_becomes_one_unavailable() -> None:
    assert Strategy(max_surge=0, max_unavailable=0).fenceposts(10) == (0, 1)
    assert Strategy(max_surge="0%", max_unavailable="10%").fenceposts(5) == (0, 1)


def test_max_unavailable_is_capped_at_replicas_and_zero_without_replicas() -> None:
    assert Strategy(max_unavailable=5).unavailable(3) == 3
    assert Strategy(max_unavailable=5).unavailable(0) == 0


def test_recreate_has_neither_surge_nor_unavailability() -> None:
    recreate = Strategy("Recreate")
    assert recreate.surge(10) == 0 and recreate.unavailable(10) == 0
    assert new_rs_replicas(10, recreate, [RS("old", 10), RS("new", 0)], RS("new", 0)) == 10


# --- rolling update ---------------------------------------------------------------------------


def simulate(desired: int, strategy: Strategy, old_replicas: int, *,
             max_steps: int = 200) -> list[tuple[int, int]]:
    """Runs rolling steps against ReplicaSets whose pods become available one sync after
    they are asked for; checks Kubernetes' two promises on every step and returns the
    (old, new) spec replicas after each change."""
    surge, unavailable = strategy.surge(desired), strategy.unavailable(desired)
    old = RS("old", old_replicas, available=old_replicas, created="2024-01-01T00:00:00Z", revision=1)
    new = RS("new", 0, created="2024-01-02T00:00:00Z", revision=2)
    history = []
    for _ in range(max_steps):
        targets = rolling_step(desired, strategy, new, [old])
        if targets:
            old = dataclasses.replace(old, replicas=targets.get("old", old.replicas))
            new = dataclasses.replace(new, replicas=targets.get("new", new.replicas))
            # Scaling down takes pods away at once; new pods are not available yet.
            old = dataclasses.replace(old, available=min(old.available, old.replicas))
            new = dataclasses.replace(new, available=min(new.available, new.replicas))
            history.append((old.replicas, new.replicas))
        elif new.available == new.replicas and new.replicas == desired and old.replicas == 0:
            return history
        else:
            new = dataclasses.replace(new, available=new.replicas)  # the kubelets report in
        assert old.replicas + new.replicas <= desired + surge
        assert old.available + new.available >= min(desired - unavailable, old_replicas)
    raise AssertionError(f"no convergence: {history}")


def test_surge_one_unavailable_zero_steps_one_pod_at_a_time() -> None:
    steps = simulate(3, Strategy(max_surge=1, max_unavailable=0), 3)
    assert steps == [(3, 1), (2, 1), (2, 2), (1, 2), (1, 3), (0, 3)]


def test_surge_zero_unavailable_one_deletes_before_it_creates() -> None:
    steps = simulate(3, Strategy(max_surge=0, max_unavailable=1), 3)
    assert steps == [(2, 0), (2, 1), (1, 1), (1, 2), (0, 2), (0, 3)]


def test_default_percentages_on_ten_replicas() -> None:
    steps = simulate(10, Strategy(), 10)  # 25%: surge 3, unavailable 2
    assert steps[0] == (10, 3)  # surge first
    assert steps[1] == (8, 3)  # then old down to 10 - 2 unavailable: the new ones are not ready
    assert steps[-1] == (0, 10)


@settings(max_examples=200, deadline=None)
@given(desired=st.integers(1, 30), surge=st.sampled_from([0, 1, 2, "10%", "25%", "50%", "100%"]),
       unavailable=st.sampled_from([0, 1, 3, "10%", "25%", "50%"]), old=st.integers(0, 30))
def test_every_rolling_update_converges_within_its_bounds(desired: int, surge: Any, unavailable: Any,
                                                          old: int) -> None:
    steps = simulate(desired, Strategy(max_surge=surge, max_unavailable=unavailable), old)
    assert not steps or steps[-1] == (0, desired)


def test_a_new_replicaset_above_the_desired_size_is_scaled_down_first() -> None:
    assert rolling_step(3, Strategy(), RS("new", 5, available=5), [RS("old", 1)]) == {"new": 3}


def test_unavailable_old_pods_are_removed_first_and_cost_no_availability() -> None:
    # desired 3, no surge, 1 unavailable: old has 3 pods of which only 1 is available.
    step = rolling_step(3, Strategy(max_surge=0, max_unavailable=1), RS("new", 0),
                        [RS("old", 3, available=1)])
    assert step == {"old": 2}


def test_old_replicasets_are_scaled_down_oldest_first() -> None:
    olds = [RS("mid", 2, available=2, created="2024-01-02T00:00:00Z"),
            RS("oldest", 2, available=2, created="2024-01-01T00:00:00Z")]
    step = rolling_step(4, Strategy(max_surge=0, max_unavailable=2), RS("new", 0), olds)
    assert step == {"oldest": 0}


# --- resizing ---------------------------------------------------------------------------------


def test_a_scaling_event_is_a_size_no_active_replicaset_was_made_for() -> None:
    assert is_scaling_event(5, [RS("a", 3, desired_annotation=3)])
    assert not is_scaling_event(3, [RS("a", 3, desired_annotation=3), RS("b", 0, desired_annotation=7)])
    assert not is_scaling_event(5, [RS("a", 3)])  # no annotation: not ours to judge


def test_one_active_replicaset_takes_the_whole_new_size() -> None:
    assert scale(5, Strategy(), RS("new", 3), [RS("old", 0)], 3) == {"new": 5}
    assert scale(3, Strategy(), RS("new", 3), [], 3) == {}


def test_without_active_replicasets_the_newest_takes_the_size() -> None:
    olds = [RS("a", 0, created="2024-01-01T00:00:00Z"), RS("b", 0, created="2024-01-03T00:00:00Z")]
    assert scale(2, Strategy(), None, olds, 0) == {"b": 2}


def test_a_saturated_new_replicaset_scales_the_old_ones_to_zero() -> None:
    new = RS("new", 4, available=4, desired_annotation=4)
    assert scale(4, Strategy(), new, [RS("old", 1)], 5) == {"old": 0}


def test_a_rollout_that_grows_is_scaled_in_proportion() -> None:
    # Kubernetes' example: 10 replicas with maxSurge 3 mid-rollout (8 old + 5 new) to 20.
    strategy = Strategy(max_surge=3, max_unavailable=2)
    new = RS("new", 5, max_annotation=13, created="2024-01-02T00:00:00Z")
    old = RS("old", 8, max_annotation=13, created="2024-01-01T00:00:00Z")
    assert scale(20, strategy, new, [old], 13) == {"old": 14, "new": 9}
    assert scale(5, strategy, new, [old], 13) == {"old": 5, "new": 3}


def test_scaling_a_rollout_to_zero_empties_every_replicaset() -> None:
    new, old = RS("new", 2, max_annotation=4), RS("old", 2, max_annotation=4)
    assert scale(0, Strategy(), new, [old], 4) == {"new": 0, "old": 0}


def test_the_leftover_of_rounding_goes_to_the_largest() -> None:
    strategy = Strategy(max_surge=1, max_unavailable=0)
    a, b, c = (RS(n, 1, max_annotation=3, created=f"2024-01-0{i}T00:00:00Z") for i, n in
               enumerate("abc", 1))
    targets = scale(3, strategy, c, [a, b], 3)  # allowed 4, have 3: one to add
    assert targets == {"c": 2}  # a tie in size: growing goes to the newest


# --- history ----------------------------------------------------------------------------------


def test_old_replicasets_beyond_the_history_limit_are_pruned_oldest_revision_first() -> None:
    olds = [RS(f"r{i}", 0, revision=i) for i in (3, 1, 4, 2)]
    assert prunable(olds, 2) == ["r1", "r2"]
    assert prunable(olds, 4) == []
    assert prunable(olds, None) == []


def test_a_replicaset_with_pods_or_unobserved_changes_is_never_pruned() -> None:
    olds = [RS("busy", 0, status_replicas=1, revision=1), RS("fresh", 0, revision=2, generation=3,
                                                                observed_generation=2),
            RS("idle", 0, revision=3), RS("kept", 0, revision=4)]
    assert prunable(olds, 0) == ["idle", "kept"]


# --- status -----------------------------------------------------------------------------------


def deployment(replicas: int = 3, *, generation: int = 2, paused: bool = False, deadline: int = 600,
               status: dict[str, Any] | None = None) -> Deployment:
    return decode(Deployment, {"metadata": {"name": "web", "namespace": "ns", "generation": generation},
                               "spec": {"replicas": replicas, "paused": paused,
                                        "progressDeadlineSeconds": deadline},
                               "status": status or {}})


def test_available_needs_replicas_minus_max_unavailable() -> None:
    d = deployment(4)  # 25%: one may be unavailable
    views = [RS("new", 4, available=3, status_replicas=4, ready=3)]
    st = calculate_status(d, Strategy(), views, views[0], [], None, NOW)
    assert (st.replicas, st.updated_replicas, st.ready_replicas, st.available_replicas,
            st.unavailable_replicas, st.observed_generation) == (4, 4, 3, 3, 1, 2)
    available = get_condition(st.conditions, "Available")
    assert available is not None and available.status == "True"
    views = [RS("new", 4, available=2, status_replicas=4)]
    st = calculate_status(d, Strategy(), views, views[0], [], None, NOW)
    available = get_condition(st.conditions, "Available")
    assert available is not None and (available.status, available.reason) == (
        "False", "MinimumReplicasUnavailable")


def test_a_complete_rollout_says_the_new_replicaset_is_available() -> None:
    d = deployment(3)
    new = RS("web-abc", 3, available=3, status_replicas=3, ready=3)
    result = rollout_status(d, Strategy(), [new, RS("old", 0)], new, [], None, NOW)
    cond = get_condition(result.status.conditions, PROGRESSING)
    assert cond is not None and (cond.status, cond.reason) == ("True", NEW_RS_AVAILABLE)
    assert cond.message == 'ReplicaSet "web-abc" has successfully progressed.'
    assert result.recheck_after is None


def test_progress_moves_the_update_time_but_keeps_the_transition_time() -> None:
    before = condition(PROGRESSING, "True", RS_UPDATED, "x", NOW - 100)
    d = deployment(3, status={"updatedReplicas": 1, "replicas": 3,
                              "conditions": [msgspec.to_builtins(before)]})
    new = RS("new", 2, status_replicas=2)
    result = rollout_status(d, Strategy(), [new, RS("old", 2, status_replicas=2)], new,
                            list(d.status.conditions), None, NOW)
    cond = get_condition(result.status.conditions, PROGRESSING)
    assert cond is not None and cond.reason == RS_UPDATED
    assert cond.last_update_time == stamp(NOW)
    assert cond.last_transition_time == stamp(NOW - 100)


def test_no_progress_past_the_deadline_is_reported_as_timed_out() -> None:
    before = condition(PROGRESSING, "True", RS_UPDATED, "x", NOW - 700)
    status = {"updatedReplicas": 1, "replicas": 4, "availableReplicas": 3,
              "conditions": [msgspec.to_builtins(before)]}
    d = deployment(3, status=status)
    new, old = RS("new", 1, status_replicas=1), RS("old", 3, status_replicas=3, available=3)
    result = rollout_status(d, Strategy(), [new, old], new, list(d.status.conditions), None, NOW)
    cond = get_condition(result.status.conditions, PROGRESSING)
    assert cond is not None and (cond.status, cond.reason) == ("False", TIMED_OUT)
    # Before the deadline it is not, and the controller is told when to look again.
    result = rollout_status(d, Strategy(), [new, old], new, list(d.status.conditions), None, NOW - 200)
    cond = get_condition(result.status.conditions, PROGRESSING)
    assert cond is not None and cond.reason == RS_UPDATED
    assert result.recheck_after == pytest.approx(101)


def test_paused_and_resumed_deployments_say_so() -> None:
    conds = paused_conditions(deployment(paused=True), [], NOW)
    cond = get_condition(conds, PROGRESSING)
    assert cond is not None and (cond.status, cond.reason) == ("Unknown", PAUSED)
    conds = paused_conditions(deployment(paused=False), conds, NOW)
    cond = get_condition(conds, PROGRESSING)
    assert cond is not None and cond.reason == RESUMED


def test_setting_the_same_condition_again_changes_nothing() -> None:
    first = [condition("Available", "True", "MinimumReplicasAvailable", "m", NOW - 50)]
    again = set_condition(first, condition("Available", "True", "MinimumReplicasAvailable", "m", NOW))
    assert again == first


def test_without_a_progress_deadline_there_is_no_progressing_condition() -> None:
    d = deployment(3, deadline=2**31 - 1)
    new = RS("new", 3, available=3, status_replicas=3)
    result = rollout_status(d, Strategy(), [new], new, [], None, NOW)
    assert get_condition(result.status.conditions, PROGRESSING) is None


def test_the_status_patch_spells_out_every_count() -> None:
    body = status_json(DeploymentStatus(observed_generation=3))
    assert body["replicas"] == 0 and body["unavailableReplicas"] == 0 and body["conditions"] == []
    assert "collisionCount" not in body
    assert status_json(DeploymentStatus(collision_count=2))["collisionCount"] == 2
