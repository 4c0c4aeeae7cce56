"""The pure ReplicaSet logic: which pods go first, slow start, expectations, claims,
the pod made from a template, and the status."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from control.controllers.podcontrol import (
    DELETION_COST_ANNOTATION,
    Expectations,
    adoption_patch,
    available_after,
    claim,
    controller_ref,
    is_pod_active,
    pod_from_template,
    pods_to_delete,
    release_patch,
    replica_set_status,
    slow_start_batch,
    slow_start_sizes,
)
from netplane.model import Pod, ReplicaSet, decode, selector_from_label_selector

NOW = 1_700_000_000.0  # 2023-11-14T22:13:20Z
RS_UID = "rs-uid"


def ts(offset: float) -> str:
    return datetime.fromtimestamp(NOW + offset, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def pod(name: str, *, node: str = "", phase: str = "Running", ready: bool | None = None,
        ready_at: float | None = None, created: float = -100.0, restarts: int = 0,
        labels: dict[str, str] | None = None, owner: str | None = RS_UID, deleting: bool = False,
        annotations: dict[str, str] | None = None) -> Pod:
    conditions = []
    if ready is not None:
        cond: dict[str, Any] = {"type": "Ready", "status": "True" if ready else "False"}
        if ready_at is not None:
            cond["lastTransitionTime"] = ts(ready_at)
        conditions.append(cond)
    meta: dict[str, Any] = {"name": name, "namespace": "ns", "uid": f"uid-{name}", "resourceVersion": "7",
                            "creationTimestamp": ts(created), "labels": labels or {"app": "web"},
                            "annotations": annotations or {}}
    if owner is not None:
        meta["ownerReferences"] = [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web",
                                    "uid": owner, "controller": True}]
    if deleting:
        meta["deletionTimestamp"] = ts(0)
    return decode(Pod, {"metadata": meta, "spec": {"nodeName": node, "containers": [{"name": "c"}]},
                        "status": {"phase": phase, "conditions": conditions,
                                   "containerStatuses": [{"name": "c", "restartCount": restarts}]}})


def replicaset(replicas: int = 3, min_ready: int = 0, deleting: bool = False) -> ReplicaSet:
    meta: dict[str, Any] = {"name": "web", "namespace": "ns", "uid": RS_UID, "generation": 4}
    if deleting:
        meta["deletionTimestamp"] = ts(0)
    return decode(ReplicaSet, {"metadata": meta, "spec": {
        "replicas": replicas, "minReadySeconds": min_ready, "selector": {"matchLabels": {"app": "web"}},
        "template": {"metadata": {"labels": {"app": "web", "tier": "fe"}}}}})


def names(pods: list[Pod]) -> list[str]:
    return [p.metadata.name for p in pods]


# --- which pods are deleted first ---------------------------------------------------------


@pytest.mark.parametrize(("first", "second"), [
    (pod("unscheduled", node=""), pod("scheduled", node="n1")),
    (pod("pending", node="n1", phase="Pending"), pod("unknown", node="n1", phase="Unknown")),
    (pod("unknown", node="n1", phase="Unknown"), pod("running", node="n1", phase="Running")),
    (pod("not-ready", node="n1", ready=False), pod("ready", node="n1", ready=True)),
    (pod("cheap", node="n1", annotations={DELETION_COST_ANNOTATION: "-5"}), pod("dear", node="n1")),
    (pod("ready-recently", node="n1", ready=True, ready_at=-10),
     pod("ready-long", node="n1", ready=True, ready_at=-1000)),
    (pod("many-restarts", node="n1", restarts=5), pod("few-restarts", node="n1", restarts=1)),
    (pod("newer", node="n1", created=-10), pod("older", node="n1", created=-1000)),
])
def test_surplus_pods_are_deleted_in_kubernetes_order(first: Pod, second: Pod) -> None:
    assert names(pods_to_delete([second, first], 1)) == names([first])
    assert names(pods_to_delete([first, second], 1)) == names([first])


def test_an_earlier_rule_wins_over_a_later_one() -> None:
    # Unscheduled beats everything, even an old, ready, restart-free pod.
    old_unscheduled = pod("a", node="", ready=True, ready_at=-5000, created=-5000)
    crashing_scheduled = pod("b", node="n1", ready=False, restarts=9, created=-1)
    assert names(pods_to_delete([crashing_scheduled, old_unscheduled], 1)) == ["a"]


def test_a_pod_doubled_up_on_a_node_goes_before_one_alone() -> None:
    crowded = [pod("x1", node="busy"), pod("x2", node="busy"), pod("x3", node="busy")]
    alone = pod("y", node="quiet", created=-1)  # newer, would go first without ranks
    victims = pods_to_delete([alone, *crowded], 1, related=[alone, *crowded])
    assert victims[0].spec.node_name == "busy"


def test_asking_for_as_many_as_there_are_returns_them_all() -> None:
    pods = [pod("a"), pod("b")]
    assert names(pods_to_delete(pods, 5)) == ["a", "b"]


# --- slow start ----------------------------------------------------------------------------


@pytest.mark.parametrize(("count", "sizes"), [
    (0, []), (1, [1]), (2, [1, 1]), (3, [1, 2]), (10, [1, 2, 4, 3]), (15, [1, 2, 4, 8]),
    (16, [1, 2, 4, 8, 1]),
])
def test_creates_go_in_doubling_batches(count: int, sizes: list[int]) -> None:
    assert slow_start_sizes(count) == sizes
    assert sum(sizes) == count


async def test_slow_start_stops_after_the_first_batch_with_a_failure() -> None:
    calls = 0

    async def create() -> None:
        nonlocal calls
        calls += 1
        if calls == 5:  # in the third batch (calls 4-7)
            raise RuntimeError("quota exceeded")

    successes, error = await slow_start_batch(100, create)
    assert calls == 7  # batches of 1, 2, 4; nothing after the failing one
    assert successes == 6
    assert isinstance(error, RuntimeError)


async def test_slow_start_without_failures_makes_every_call() -> None:
    calls = 0

    async def create() -> None:
        nonlocal calls
        calls += 1

    assert await slow_start_batch(37, create) == (37, None)
    assert calls == 37


# --- expectations -------------------------------------------------------------------------


def test_a_burst_of_creates_is_awaited_until_the_informer_shows_every_pod() -> None:
    exp = Expectations()
    assert exp.satisfied("ns/web")  # nothing expected: act
    exp.expect_creations("ns/web", 3)
    for _ in range(2):
        exp.creation_observed("ns/web")
        assert not exp.satisfied("ns/web")
    exp.creation_observed("ns/web")
    assert exp.satisfied("ns/web")


def test_a_deletion_seen_twice_is_counted_once() -> None:
    exp = Expectations()
    exp.expect_deletions("ns/web", ["ns/a", "ns/b"])
    exp.deletion_observed("ns/web", "ns/a")  # deletionTimestamp set
    exp.deletion_observed("ns/web", "ns/a")  # and then gone
    assert not exp.satisfied("ns/web")
    assert exp.pending("ns/web") == (0, 1)
    exp.deletion_observed("ns/web", "ns/b")
    assert exp.satisfied("ns/web")


def test_an_expectation_never_met_expires() -> None:
    now = [0.0]
    exp = Expectations(ttl=300, clock=lambda: now[0])
    exp.expect_creations("ns/web", 2)
    now[0] = 299
    assert not exp.satisfied("ns/web")
    now[0] = 301
    assert exp.satisfied("ns/web")


def test_a_deleted_replicaset_forgets_its_expectations() -> None:
    exp = Expectations()
    exp.expect_creations("ns/web", 2)
    exp.delete("ns/web")
    assert exp.satisfied("ns/web")


# --- claims ---------------------------------------------------------------------------------


def test_claim_keeps_adopts_and_releases_like_the_controller_ref_manager() -> None:
    rs = replicaset()
    selector = selector_from_label_selector(rs.spec.selector)
    pods = [
        pod("mine"),
        pod("mine-relabeled", labels={"app": "other"}),
        pod("orphan", owner=None),
        pod("orphan-other-labels", owner=None, labels={"app": "other"}),
        pod("orphan-terminating", owner=None, deleting=True),
        pod("someone-elses", owner="other-uid"),
    ]
    plan = claim(rs, selector, pods)
    assert names(plan.owned) == ["mine"]
    assert names(plan.adopt) == ["orphan"]
    assert names(plan.release) == ["mine-relabeled"]


def test_an_owner_being_deleted_neither_adopts_nor_releases() -> None:
    rs = replicaset(deleting=True)
    selector = selector_from_label_selector(rs.spec.selector)
    plan = claim(rs, selector, [pod("mine"), pod("relabeled", labels={"x": "y"}), pod("orphan", owner=None)])
    assert names(plan.owned) == ["mine"]
    assert plan.adopt == [] and plan.release == []


def test_adoption_and_release_patches_keep_other_owners_and_guard_the_version() -> None:
    p = decode(Pod, {"metadata": {"name": "p", "uid": "pu", "resourceVersion": "9", "ownerReferences": [
        {"apiVersion": "v1", "kind": "ConfigMap", "name": "cm", "uid": "cm-uid"}]}})
    ref = controller_ref("apps/v1", "ReplicaSet", "web", RS_UID)
    adopted = adoption_patch(p, ref)["metadata"]
    assert adopted["uid"] == "pu" and adopted["resourceVersion"] == "9"
    assert [r["uid"] for r in adopted["ownerReferences"]] == ["cm-uid", RS_UID]
    assert adopted["ownerReferences"][1] == {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web",
                                             "uid": RS_UID, "controller": True, "blockOwnerDeletion": True}
    released = release_patch(pod("q", owner=RS_UID), RS_UID)["metadata"]
    assert released["ownerReferences"] == []


def test_a_pod_from_a_template_is_named_after_its_owner_and_controlled_by_it() -> None:
    template = {"metadata": {"labels": {"app": "web"}, "annotations": {"a": "b"}},
                "spec": {"containers": [{"name": "c", "image": "agnhost", "volumeMounts": []}]}}
    ref = controller_ref("apps/v1", "ReplicaSet", "web-abc", RS_UID)
    body = pod_from_template(template, "ns", "web-abc", ref)
    assert body["metadata"]["generateName"] == "web-abc-"
    assert body["metadata"]["labels"] == {"app": "web"}
    assert body["metadata"]["annotations"] == {"a": "b"}
    assert body["metadata"]["ownerReferences"] == [ref]
    assert body["spec"]["containers"][0]["volumeMounts"] == []  # unknown fields survive
    body["metadata"]["labels"]["x"] = "y"
    assert template["metadata"]["labels"] == {"app": "web"}  # the template is not touched


# --- status -----------------------------------------------------------------------------------


def test_status_counts_labeled_ready_and_available_pods() -> None:
    rs = replicaset(min_ready=30)
    pods = [
        pod("a", labels={"app": "web", "tier": "fe"}, ready=True, ready_at=-60),  # available
        pod("b", labels={"app": "web"}, ready=True, ready_at=-10),  # ready for 10 s of 30
        pod("c", labels={"app": "web", "tier": "fe"}, ready=False),
    ]
    status, wake = replica_set_status(rs, pods, NOW)
    assert status == {"replicas": 3, "fullyLabeledReplicas": 2, "readyReplicas": 2,
                      "availableReplicas": 1, "observedGeneration": 4}
    assert wake == pytest.approx(20)


def test_without_min_ready_seconds_a_ready_pod_is_available_at_once() -> None:
    status, wake = replica_set_status(replicaset(), [pod("a", ready=True)], NOW)
    assert status["availableReplicas"] == 1 and wake is None


def test_with_min_ready_seconds_a_ready_condition_without_a_time_never_counts_as_available() -> None:
    assert available_after(pod("a", ready=True), 10, NOW) == float("inf")
    assert available_after(pod("a", ready=False), 10, NOW) is None


def test_finished_and_terminating_pods_are_not_active() -> None:
    assert is_pod_active(pod("a"))
    assert not is_pod_active(pod("b", deleting=True))
    assert not is_pod_active(pod("c", phase="Succeeded"))
    assert not is_pod_active(pod("d", phase="Failed"))
