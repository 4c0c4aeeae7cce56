"""One scheduling cycle: filtering, scoring, choosing, and the unschedulable message."""

import random

from control.scheduler.framework import Framework, Status, default_normalize, unschedulable_message
from control.scheduler.plugins import default_framework

from .builders import make_node, make_pod


def test_the_message_counts_reasons_over_nodes_sorted_as_kubernetes_does():
    statuses = [Status.of("Insufficient cpu"),
                Status.of("node(s) had untolerated taint {dedicated: db}"),
                Status.of("node(s) had untolerated taint {dedicated: db}")]
    assert unschedulable_message(3, statuses) == (
        "0/3 nodes are available: 1 Insufficient cpu, "
        "2 node(s) had untolerated taint {dedicated: db}.")


def test_a_node_with_several_shortfalls_counts_each():
    statuses = [Status.of("Insufficient cpu", "Insufficient memory"), Status.of("Insufficient cpu")]
    assert unschedulable_message(2, statuses) == (
        "0/2 nodes are available: 1 Insufficient memory, 2 Insufficient cpu.")


def test_no_nodes_at_all_says_so():
    assert unschedulable_message(0, []) == "no nodes available to schedule pods"


def test_a_pre_filter_failure_replaces_the_per_node_reasons():
    assert unschedulable_message(2, [], "invalid resource requests: x") == (
        "0/2 nodes are available: invalid resource requests: x.")


def test_default_normalize_scales_by_the_maximum():
    assert default_normalize([0, 5, 10]) == [0, 50, 100]
    assert default_normalize([0, 5, 10], reverse=True) == [100, 50, 0]
    assert default_normalize([0, 0]) == [0, 0]
    assert default_normalize([0, 0], reverse=True) == [100, 100]


def test_a_pod_that_fits_nowhere_gets_the_full_message():
    nodes = [make_node("a", cpu="1", labels={"zone": "y"}), make_node("b", cpu="1", taints=[
        {"key": "dedicated", "value": "db", "effect": "NoSchedule"}]),
        make_node("c", cpu="1", taints=[{"key": "dedicated", "value": "db", "effect": "NoSchedule"}]),
        make_node("d", unschedulable=True), make_node("e", labels={"zone": "x"}, cpu="8")]
    result = default_framework().schedule(make_pod(cpu="2", node_selector={"zone": "y"}), nodes)
    assert result.node is None
    assert result.message == (
        "0/5 nodes are available: 1 Insufficient cpu, 1 node(s) didn't match Pod's node "
        "affinity/selector, 1 node(s) were unschedulable, "
        "2 node(s) had untolerated taint {dedicated: db}.")


def test_the_only_feasible_node_is_chosen_without_scoring():
    nodes = [make_node("a", cpu="1"), make_node("b", cpu="4")]
    result = default_framework().schedule(make_pod(cpu="2"), nodes)
    assert result.node == "b"
    assert list(result.failures) == ["a"]


def test_the_highest_weighted_score_wins():
    busy, idle = make_node("busy"), make_node("idle")
    busy.add_pod(make_pod("x", cpu="3", memory="6Gi", node_name="busy"))
    assert default_framework().schedule(make_pod(cpu="100m"), [busy, idle]).node == "idle"


def test_preferred_affinity_outweighs_a_little_load():
    busy, idle = make_node("busy", labels={"zone": "a"}), make_node("idle")
    busy.add_pod(make_pod("x", cpu="1", memory="1Gi", node_name="busy"))
    pod = make_pod(affinity={"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
        {"weight": 1, "preference": {"matchExpressions": [
            {"key": "zone", "operator": "In", "values": ["a"]}]}}]}})
    assert default_framework().schedule(pod, [busy, idle]).node == "busy"


def test_ties_are_broken_at_random_among_the_best():
    nodes = [make_node(f"n{i}") for i in range(4)]
    fw = default_framework(random.Random(1))
    chosen = {fw.schedule(make_pod(), nodes).node for _ in range(200)}
    assert chosen == {"n0", "n1", "n2", "n3"}


def test_a_burst_of_one_controllers_pods_spreads_when_each_is_counted():
    nodes = [make_node(f"n{i}", cpu="8", memory="32Gi") for i in range(5)]
    fw = default_framework(random.Random(7))
    for i in range(20):
        pod = make_pod(f"p{i}", owner="rs", cpu="100m", memory="64Mi")
        node = fw.schedule(pod, nodes).node
        next(n for n in nodes if n.name == node).add_pod(pod)
    assert sorted(len(n.pods) for n in nodes) == [4, 4, 4, 4, 4]


def test_skipped_plugins_are_not_called():
    calls = []

    class Recording:
        name = "Recording"
        weight = 1

        def pre_filter(self, pod):
            return False

        def filter(self, pod, node):
            calls.append("filter")

        def pre_score(self, pod):
            return False

        def score(self, pod, node):
            calls.append("score")
            return 0

        def normalize(self, pod, scores):
            return scores

    fw = Framework([Recording()], [Recording()])
    assert fw.schedule(make_pod(), [make_node("a"), make_node("b")]).node in ("a", "b")
    assert calls == []
