"""The scheduler cache: nodes, assigned pods and assumed pods."""

import pytest

from control.scheduler.cache import SchedulerCache

from .builders import make_node_object, make_pod


def _bound(pod_name, node, **kw):
    return make_pod(pod_name, node_name=node, **kw)


def test_assumed_pods_count_on_their_node_at_once():
    cache = SchedulerCache()
    cache.add_node(make_node_object("n1", cpu="1"))
    cache.assume(make_pod("a", cpu="600m"), "n1")
    info = cache.node("n1")
    assert info.requested_cpu == 600
    assert cache.is_assumed("default/a")


def test_the_watch_confirms_an_assumed_pod_without_counting_it_twice():
    cache = SchedulerCache()
    cache.add_node(make_node_object("n1"))
    cache.assume(make_pod("a", cpu="600m"), "n1")
    cache.add_pod(_bound("a", "n1", cpu="600m"))
    assert not cache.is_assumed("default/a")
    assert cache.node("n1").requested_cpu == 600
    assert len(cache.node("n1").pods) == 1


def test_a_pod_bound_elsewhere_than_assumed_moves():
    cache = SchedulerCache()
    cache.add_node(make_node_object("n1"))
    cache.add_node(make_node_object("n2"))
    cache.assume(make_pod("a", cpu="1"), "n1")
    cache.add_pod(_bound("a", "n2", cpu="1"))
    assert cache.node("n1").requested_cpu == 0
    assert cache.node("n2").requested_cpu == 1000


def test_forgetting_a_failed_binding_frees_the_room():
    cache = SchedulerCache()
    cache.add_node(make_node_object("n1"))
    cache.assume(make_pod("a", cpu="1", owner="rs"), "n1")
    cache.forget("default/a")
    info = cache.node("n1")
    assert (info.requested_cpu, info.pods, info.owner_counts) == (0, {}, {})


def test_forget_ignores_confirmed_pods():
    cache = SchedulerCache()
    cache.add_node(make_node_object("n1"))
    cache.add_pod(_bound("a", "n1", cpu="1"))
    cache.forget("default/a")
    assert cache.node("n1").requested_cpu == 1000


def test_deleting_a_pod_frees_its_node():
    cache = SchedulerCache()
    cache.add_node(make_node_object("n1"))
    cache.add_pod(_bound("a", "n1", cpu="1", owner="rs"))
    assert cache.node("n1").owner_counts == {"uid-rs": 1}
    cache.remove_pod("default/a")
    assert cache.node("n1").requested_cpu == 0
    assert cache.node("n1").owner_counts == {}


def test_pods_on_an_unknown_node_wait_for_it_without_offering_it():
    cache = SchedulerCache()
    cache.add_pod(_bound("a", "later", cpu="1"))
    assert cache.nodes() == []
    cache.add_node(make_node_object("later"))
    assert [n.name for n in cache.nodes()] == ["later"]
    assert cache.node("later").requested_cpu == 1000


def test_a_removed_node_is_no_longer_offered():
    cache = SchedulerCache()
    cache.add_node(make_node_object("n1"))
    cache.add_node(make_node_object("n2"))
    cache.add_pod(_bound("a", "n1"))
    cache.remove_node("n1")
    cache.remove_node("n2")
    assert cache.nodes() == []
    assert cache.node("n2") is None
    cache.remove_pod("default/a")
    assert cache.node("n1") is None


def test_node_updates_change_what_filters_see():
    cache = SchedulerCache()
    cache.add_node(make_node_object("n1", cpu="1"))
    nodes = cache.nodes()
    cache.update_node(make_node_object("n1", cpu="2", labels={"a": "b"}))
    assert cache.nodes() is nodes  # same list, live NodeInfos
    assert nodes[0].alloc_cpu == 2000
    assert nodes[0].labels == {"a": "b"}


def test_an_unbound_pod_cannot_be_added_as_assigned():
    with pytest.raises(ValueError, match="not assigned"):
        SchedulerCache().add_pod(make_pod("a"))


def test_stats():
    cache = SchedulerCache()
    cache.add_node(make_node_object("n1"))
    cache.assume(make_pod("a"), "n1")
    cache.add_pod(_bound("b", "n1"))
    assert cache.stats() == {"nodes": 1, "pods": 2, "assumed": 1}
