"""The scheduling queue: FIFO (by priority), backoff, the unschedulable set."""

from control.scheduler.queue import ACTIVE, BACKOFF, UNSCHEDULABLE, SchedulingQueue

from .builders import make_pod


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _queue(**kw):
    clock = Clock()
    return SchedulingQueue(clock=clock, **kw), clock


def test_pods_come_out_in_the_order_they_came_in():
    q, _ = _queue()
    for name in ("a", "b", "c"):
        q.add(make_pod(name))
    assert [q.pop().pod_info.name for _ in range(3)] == ["a", "b", "c"]
    assert q.pop() is None


def test_higher_priority_pods_go_first():
    from control.scheduler.podinfo import decode_pod_info
    q, _ = _queue()
    q.add(make_pod("low"))
    q.add(decode_pod_info({"metadata": {"name": "high", "namespace": "default"},
                           "spec": {"priority": 10, "containers": [{"name": "c"}]}}))
    assert q.pop().pod_info.name == "high"


def test_adding_a_queued_pod_again_updates_it_in_place():
    q, _ = _queue()
    q.add(make_pod("a", cpu="1"))
    q.add(make_pod("b"))
    q.add(make_pod("a", cpu="2"))
    first = q.pop()
    assert first.pod_info.name == "a"
    assert first.pod_info.requests.milli_cpu == 2000
    assert q.pop().pod_info.name == "b"


def test_deleted_pods_never_come_out():
    q, _ = _queue()
    q.add(make_pod("a"))
    q.add(make_pod("b"))
    q.delete("default/a")
    assert q.pop().pod_info.name == "b"
    assert len(q) == 0


def test_unschedulable_pods_wait_for_a_cluster_change():
    q, clock = _queue()
    q.add(make_pod("a"))
    qpi = q.pop()
    q.add_unschedulable(qpi, "0/1 nodes are available: 1 Insufficient cpu.")
    assert q.where("default/a") == UNSCHEDULABLE
    clock.now += 60
    assert q.pop() is None
    assert q.move_all() == 1
    assert q.where("default/a") == ACTIVE  # its 1 s backoff is long over
    assert q.pop().attempts == 2


def test_a_pod_moved_while_backing_off_waits_in_the_backoff_queue():
    q, clock = _queue(initial_backoff=1.0, max_backoff=10.0)
    q.add(make_pod("a"))
    q.add_unschedulable(q.pop())
    clock.now += 0.5
    q.move_all()
    assert q.where("default/a") == BACKOFF
    assert q.pop() is None
    assert q.next_wakeup() == 1001.0
    clock.now = 1001.0
    assert q.pop().pod_info.name == "a"


def test_backoff_doubles_per_attempt_up_to_the_maximum():
    q, _ = _queue(initial_backoff=1.0, max_backoff=10.0)
    q.add(make_pod("a"))
    qpi = q.pop()
    durations = []
    for attempts in range(1, 7):
        qpi.attempts = attempts
        durations.append(q.backoff_duration(qpi))
    assert durations == [1, 2, 4, 8, 10, 10]


def test_a_failed_binding_retries_after_backoff():
    q, clock = _queue()
    q.add(make_pod("a"))
    q.add_backoff(q.pop())
    assert q.pop() is None
    clock.now += 1
    assert q.pop().pod_info.name == "a"


def test_an_update_of_status_only_does_not_end_the_wait():
    q, _ = _queue()
    q.add(make_pod("a"))
    q.add_unschedulable(q.pop())
    q.update(make_pod("a"))
    assert q.where("default/a") == UNSCHEDULABLE


def test_an_update_of_the_spec_ends_the_wait():
    q, clock = _queue()
    q.add(make_pod("a"))
    q.add_unschedulable(q.pop())
    clock.now += 5
    q.update(make_pod("a", tolerations=[{"operator": "Exists"}]))
    assert q.where("default/a") == ACTIVE
    assert q.pop().pod_info.tolerations


def test_pods_unschedulable_for_too_long_are_retried_anyway():
    q, clock = _queue(max_unschedulable_seconds=300)
    q.add(make_pod("a"))
    q.add_unschedulable(q.pop())
    assert q.next_wakeup() == 1300
    clock.now += 299
    assert q.pop() is None
    clock.now += 1
    assert q.pop().pod_info.name == "a"


def test_counts_per_sub_queue():
    q, _ = _queue()
    for name in "abc":
        q.add(make_pod(name))
    q.add_unschedulable(q.pop())
    q.add_backoff(q.pop())
    assert q.counts() == {ACTIVE: 1, BACKOFF: 1, UNSCHEDULABLE: 1}
    assert len(q) == 3
    assert "default/a" in q


def test_on_ready_is_called_when_a_pod_becomes_active():
    calls = []
    q, _ = _queue(on_ready=lambda: calls.append(1))
    q.add(make_pod("a"))
    assert calls == [1]


def test_on_ready_is_also_called_when_a_pod_starts_backing_off():
    calls = []
    q, _ = _queue(on_ready=lambda: calls.append(1))
    q.add(make_pod("a"))
    q.add_unschedulable(q.pop())
    assert calls == [1]
    q.move_all()  # still backing off: to the backoff queue, and the waiter must know
    assert calls == [1, 1]
