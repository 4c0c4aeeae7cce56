"""How informer events move pods between the queue and the cache (no apiserver: the
client is never called by the handlers)."""

import pytest

from control.scheduler.queue import ACTIVE, UNSCHEDULABLE
from control.scheduler.scheduler import Scheduler, SchedulerOptions

from .builders import make_node_object, make_pod


@pytest.fixture
def scheduler() -> Scheduler:
    return Scheduler(client=object(), options=SchedulerOptions(port=0))  # type: ignore[arg-type]


def test_a_new_unbound_pod_is_queued_and_a_bound_one_is_counted(scheduler):
    scheduler._pod_added(make_pod("pending"))
    scheduler._pod_added(make_pod("running", node_name="n1"))
    assert scheduler.queue.where("default/pending") == ACTIVE
    assert "default/running" not in scheduler.queue
    assert scheduler.cache.pod_node("default/running") == "n1"


def test_pods_for_another_scheduler_are_ignored(scheduler):
    scheduler._pod_added(make_pod("theirs", scheduler_name="other"))
    scheduler._pod_added(make_pod("ours", scheduler_name="default-scheduler"))
    assert "default/theirs" not in scheduler.queue
    assert "default/ours" in scheduler.queue


def test_binding_seen_by_the_watch_leaves_the_queue_and_confirms_the_assumed_pod(scheduler):
    pending = make_pod("p", cpu="1")
    scheduler._pod_added(pending)
    scheduler.queue.pop()
    scheduler.cache.assume(pending, "n1")
    scheduler._pod_updated(pending, make_pod("p", cpu="1"))  # a stale unbound update
    assert "default/p" not in scheduler.queue
    scheduler._pod_updated(pending, make_pod("p", cpu="1", node_name="n1"))
    assert not scheduler.cache.is_assumed("default/p")
    assert scheduler.cache.pod_node("default/p") == "n1"


def test_a_pod_bound_by_someone_else_leaves_the_queue(scheduler):
    pending = make_pod("p")
    scheduler._pod_added(pending)
    scheduler._pod_updated(pending, make_pod("p", node_name="n2"))
    assert "default/p" not in scheduler.queue
    assert scheduler.cache.pod_node("default/p") == "n2"


def test_deleting_a_bound_pod_retries_the_unschedulable_ones(scheduler):
    scheduler._pod_added(make_pod("waiting"))
    scheduler.queue.add_unschedulable(scheduler.queue.pop())
    bound = make_pod("bound", node_name="n1")
    scheduler._pod_added(bound)
    scheduler._pod_deleted(bound)
    assert scheduler.cache.pod_node("default/bound") is None
    assert scheduler.queue.where("default/waiting") != UNSCHEDULABLE


def test_deleting_a_pending_pod_removes_it_from_the_queue(scheduler):
    pod = make_pod("p")
    scheduler._pod_added(pod)
    scheduler._pod_deleted(pod)
    assert len(scheduler.queue) == 0


def test_node_heartbeats_do_not_retry_unschedulable_pods_but_real_changes_do(scheduler):
    node = make_node_object("n1", cpu="1")
    scheduler._node_added(node)
    scheduler._pod_added(make_pod("big", cpu="2"))
    scheduler.queue.add_unschedulable(scheduler.queue.pop())
    scheduler._node_updated(node, make_node_object("n1", cpu="1"))
    assert scheduler.queue.where("default/big") == UNSCHEDULABLE
    scheduler._node_updated(node, make_node_object("n1", cpu="4"))
    assert scheduler.queue.where("default/big") != UNSCHEDULABLE
    assert scheduler.cache.node("n1").alloc_cpu == 4000


def test_a_deleted_node_is_no_longer_offered(scheduler):
    node = make_node_object("n1")
    scheduler._node_added(node)
    scheduler._node_deleted(node)
    assert scheduler.cache.nodes() == []
