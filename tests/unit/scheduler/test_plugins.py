"""Each filter and score plugin on its own: what fits, and the reason when it does not."""

import pytest

from control.scheduler.framework import Code
from control.scheduler.plugins import (
    LeastAllocated,
    NodeAffinity,
    NodeSchedulable,
    OwnerSpread,
    ResourcesFit,
    TaintToleration,
)
from control.scheduler.plugins.taints import tolerates
from netplane.model.core import Taint
from netplane.model.pod import Toleration

from .builders import make_node, make_pod

# -- NodeSchedulable ----------------------------------------------------------------------


def test_a_ready_schedulable_node_passes():
    assert NodeSchedulable().filter(make_pod(), make_node()) is None


def test_a_cordoned_node_takes_no_pods():
    status = NodeSchedulable().filter(make_pod(), make_node(unschedulable=True))
    assert status.reasons == ("node(s) were unschedulable",)
    assert status.code is Code.UNRESOLVABLE


def test_a_pod_tolerating_the_unschedulable_taint_goes_to_a_cordoned_node():
    pod = make_pod(tolerations=[{"key": "node.kubernetes.io/unschedulable", "operator": "Exists",
                                 "effect": "NoSchedule"}])
    assert NodeSchedulable().filter(pod, make_node(unschedulable=True)) is None


@pytest.mark.parametrize(("ready", "taint"), [
    ("False", "node.kubernetes.io/not-ready"), ("Unknown", "node.kubernetes.io/unreachable"),
    (None, "node.kubernetes.io/unreachable"),
])
def test_a_node_that_is_not_ready_takes_no_pods(ready, taint):
    status = NodeSchedulable().filter(make_pod(), make_node(ready=ready))
    assert status.reasons == (f"node(s) had untolerated taint {{{taint}: }}",)


def test_a_pod_tolerating_not_ready_goes_to_a_not_ready_node():
    pod = make_pod(tolerations=[{"key": "node.kubernetes.io/not-ready", "operator": "Exists"}])
    assert NodeSchedulable().filter(pod, make_node(ready="False")) is None


def test_a_not_ready_node_that_carries_the_taint_already_is_left_to_the_taint_plugin():
    node = make_node(ready="False", taints=[{"key": "node.kubernetes.io/not-ready",
                                             "effect": "NoSchedule"}])
    assert NodeSchedulable().filter(make_pod(), node) is None
    assert TaintToleration().filter(make_pod(), node).reasons == (
        "node(s) had untolerated taint {node.kubernetes.io/not-ready: }",)


# -- ResourcesFit -------------------------------------------------------------------------


def test_a_pod_fits_when_its_requests_fit_in_what_is_left():
    node = make_node(cpu="1", memory="1Gi")
    node.add_pod(make_pod("a", cpu="500m", memory="512Mi", node_name="n"))
    assert ResourcesFit().filter(make_pod("b", cpu="500m", memory="512Mi"), node) is None


def test_every_shortfall_is_a_reason():
    node = make_node(cpu="1", memory="1Gi", extra={"example.com/gpu": "1"})
    node.add_pod(make_pod("a", cpu="800m", memory="1000Mi", node_name="n"))
    pod = make_pod("b", cpu="300m", memory="100Mi", extra={"example.com/gpu": "2"})
    assert ResourcesFit().filter(pod, node).reasons == (
        "Insufficient cpu", "Insufficient memory", "Insufficient example.com/gpu")


def test_a_node_with_allocatable_pods_reached_is_too_full():
    node = make_node(pods=1)
    node.add_pod(make_pod("a", node_name="n"))
    assert ResourcesFit().filter(make_pod("b"), node).reasons == ("Too many pods",)


def test_a_pod_without_requests_fits_a_node_with_no_room_left():
    node = make_node(cpu="1")
    node.add_pod(make_pod("a", cpu="1", node_name="n"))
    assert ResourcesFit().filter(make_pod("b"), node) is None


def test_a_resource_the_node_does_not_have_is_insufficient():
    pod = make_pod(extra={"ephemeral-storage": "1Gi"})
    assert ResourcesFit().filter(pod, make_node()).reasons == ("Insufficient ephemeral-storage",)


def test_init_containers_count_as_the_maximum_not_the_sum():
    pod = make_pod(cpu="1", init_requests=[{"cpu": "3"}, {"cpu": "2"}])
    assert pod.requests.milli_cpu == 3000
    assert ResourcesFit().filter(pod, make_node(cpu="3")) is None
    assert ResourcesFit().filter(pod, make_node(cpu="2900m")).reasons == ("Insufficient cpu",)


def test_limits_without_requests_are_the_requests():
    from control.scheduler.podinfo import decode_pod_info
    from netplane.model import apply_defaults
    raw = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "d"},
           "spec": {"containers": [{"name": "c", "resources": {"limits": {"cpu": "2"}}}]}}
    apply_defaults(raw)
    assert decode_pod_info(raw).requests.milli_cpu == 2000


def test_a_pod_with_a_malformed_quantity_is_invalid():
    pod = make_pod(cpu="lots")
    assert pod.invalid.startswith("invalid resource requests")


# -- LeastAllocated -----------------------------------------------------------------------


def test_least_allocated_prefers_the_emptier_node():
    busy, idle = make_node("busy", cpu="4", memory="4Gi"), make_node("idle", cpu="4", memory="4Gi")
    busy.add_pod(make_pod("a", cpu="2", memory="2Gi", node_name="busy"))
    pod = make_pod("b", cpu="1", memory="1Gi")
    scores = [LeastAllocated().score(pod, n) for n in (busy, idle)]
    assert scores == [25, 75]


def test_pods_without_requests_count_as_the_non_zero_defaults_when_scoring():
    node = make_node(cpu="1", memory="1000Mi")
    # 100m of 1000m and 200Mi of 1000Mi requested: (90 + 80) / 2
    assert LeastAllocated().score(make_pod(), node) == 85


def test_an_overcommitted_node_scores_zero():
    node = make_node(cpu="1", memory="1Gi")
    assert LeastAllocated().score(make_pod(cpu="2", memory="2Gi"), node) == 0


# -- NodeAffinity -------------------------------------------------------------------------


def test_node_selector_must_match_every_label():
    pod = make_pod(node_selector={"disk": "ssd", "zone": "a"})
    plugin = NodeAffinity()
    assert plugin.pre_filter(pod)
    assert plugin.filter(pod, make_node(labels={"disk": "ssd", "zone": "a", "x": "y"})) is None
    status = plugin.filter(pod, make_node(labels={"disk": "ssd"}))
    assert status.reasons == ("node(s) didn't match Pod's node affinity/selector",)


def test_a_pod_without_selector_or_affinity_skips_the_filter():
    assert not NodeAffinity().pre_filter(make_pod())


def _required(*terms):
    return {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": list(terms)}}}


def test_required_terms_are_ored_and_their_expressions_anded():
    pod = make_pod(affinity=_required(
        {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a", "b"]},
                              {"key": "gpu", "operator": "DoesNotExist"}]},
        {"matchExpressions": [{"key": "special", "operator": "Exists"}]}))
    plugin = NodeAffinity()
    assert plugin.filter(pod, make_node(labels={"zone": "b"})) is None
    assert plugin.filter(pod, make_node(labels={"zone": "b", "gpu": "1"})) is not None
    assert plugin.filter(pod, make_node(labels={"special": ""})) is None
    assert plugin.filter(pod, make_node(labels={"zone": "c"})) is not None


def test_node_selector_and_required_affinity_must_both_match():
    pod = make_pod(node_selector={"disk": "ssd"}, affinity=_required(
        {"matchExpressions": [{"key": "zone", "operator": "NotIn", "values": ["a"]}]}))
    plugin = NodeAffinity()
    assert plugin.filter(pod, make_node(labels={"disk": "ssd"})) is None  # NotIn: absent matches
    assert plugin.filter(pod, make_node(labels={"disk": "ssd", "zone": "a"})) is not None
    assert plugin.filter(pod, make_node(labels={"zone": "b"})) is not None


def test_gt_and_lt_compare_integer_labels():
    pod = make_pod(affinity=_required({"matchExpressions": [
        {"key": "cores", "operator": "Gt", "values": ["4"]},
        {"key": "cores", "operator": "Lt", "values": ["64"]}]}))
    plugin = NodeAffinity()
    assert plugin.filter(pod, make_node(labels={"cores": "8"})) is None
    assert plugin.filter(pod, make_node(labels={"cores": "4"})) is not None
    assert plugin.filter(pod, make_node(labels={"cores": "64"})) is not None
    assert plugin.filter(pod, make_node(labels={"cores": "many"})) is not None
    assert plugin.filter(pod, make_node()) is not None


def test_match_fields_select_nodes_by_name():
    pod = make_pod(affinity=_required(
        {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n2"]}]}))
    plugin = NodeAffinity()
    assert plugin.filter(pod, make_node("n2")) is None
    assert plugin.filter(pod, make_node("n1")) is not None
    not_in = make_pod(affinity=_required(
        {"matchFields": [{"key": "metadata.name", "operator": "NotIn", "values": ["n2"]}]}))
    assert plugin.filter(not_in, make_node("n1")) is None
    assert plugin.filter(not_in, make_node("n2")) is not None


@pytest.mark.parametrize("term", [
    {},  # an empty term matches nothing
    {"matchExpressions": [{"key": "zone", "operator": "Near", "values": ["a"]}]},
    {"matchExpressions": [{"key": "zone", "operator": "In", "values": []}]},
    {"matchExpressions": [{"key": "cores", "operator": "Gt", "values": ["x"]}]},
    {"matchFields": [{"key": "metadata.uid", "operator": "In", "values": ["n"]}]},
    {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n", "m"]}]},
    {"matchFields": [{"key": "metadata.name", "operator": "Exists"}]},
])
def test_invalid_or_empty_terms_match_no_node(term):
    pod = make_pod(affinity=_required(term))
    assert NodeAffinity().filter(pod, make_node("n", labels={"zone": "a", "cores": "9"})) is not None


def test_required_affinity_without_terms_matches_nothing():
    pod = make_pod(affinity=_required())
    assert NodeAffinity().filter(pod, make_node()) is not None


def test_preferred_affinity_scores_the_sum_of_matching_weights():
    pod = make_pod(affinity={"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
        {"weight": 10, "preference": {"matchExpressions": [
            {"key": "zone", "operator": "In", "values": ["a"]}]}},
        {"weight": 5, "preference": {"matchExpressions": [
            {"key": "disk", "operator": "Exists"}]}},
        {"weight": 50, "preference": {}},  # empty: a no-op
    ]}})
    plugin = NodeAffinity()
    assert plugin.pre_score(pod)
    assert not plugin.pre_filter(pod)
    nodes = [make_node(labels={"zone": "a", "disk": "x"}), make_node(labels={"zone": "a"}),
             make_node(labels={})]
    raw = [plugin.score(pod, n) for n in nodes]
    assert raw == [15, 10, 0]
    assert plugin.normalize(pod, raw) == [100, 66, 0]


# -- TaintToleration ----------------------------------------------------------------------


def _tol(**kw):
    return Toleration(**kw)


@pytest.mark.parametrize(("toleration", "expected"), [
    (_tol(key="k", operator="Equal", value="v", effect="NoSchedule"), True),
    (_tol(key="k", value="v"), True),  # empty operator is Equal, empty effect matches all
    (_tol(key="k", value="w"), False),
    (_tol(key="k", operator="Exists"), True),
    (_tol(operator="Exists"), True),  # empty key with Exists tolerates everything
    (_tol(key="other", operator="Exists"), False),
    (_tol(key="k", operator="Exists", effect="NoExecute"), False),
    (_tol(key="k", operator="Bogus", value="v"), False),
])
def test_tolerations_match_taints_as_kubernetes_does(toleration, expected):
    assert tolerates(toleration, Taint(key="k", value="v", effect="NoSchedule")) is expected


def test_untolerated_no_schedule_and_no_execute_taints_filter():
    plugin = TaintToleration()
    for effect in ("NoSchedule", "NoExecute"):
        node = make_node(taints=[{"key": "dedicated", "value": "db", "effect": effect}])
        assert plugin.filter(make_pod(), node).reasons == (
            "node(s) had untolerated taint {dedicated: db}",)
        pod = make_pod(tolerations=[{"key": "dedicated", "operator": "Equal", "value": "db",
                                     "effect": effect}])
        assert plugin.filter(pod, node) is None


def test_prefer_no_schedule_taints_only_lower_the_score():
    plugin = TaintToleration()
    soft = make_node("soft", taints=[{"key": "a", "effect": "PreferNoSchedule"},
                                     {"key": "b", "effect": "PreferNoSchedule"}])
    clean = make_node("clean")
    pod = make_pod()
    assert plugin.filter(pod, soft) is None
    raw = [plugin.score(pod, n) for n in (soft, clean)]
    assert raw == [2, 0]
    assert plugin.normalize(pod, raw) == [0, 100]
    tolerant = make_pod(tolerations=[{"key": "a", "operator": "Exists"},
                                     {"key": "b", "operator": "Exists", "effect": "NoSchedule"}])
    assert plugin.score(tolerant, soft) == 1  # a NoSchedule toleration does not count


# -- OwnerSpread --------------------------------------------------------------------------


def test_pods_of_one_controller_prefer_nodes_with_fewer_of_them():
    plugin = OwnerSpread()
    a, b, c = make_node("a"), make_node("b"), make_node("c")
    a.add_pod(make_pod("x1", owner="rs", node_name="a"))
    a.add_pod(make_pod("x2", owner="rs", node_name="a"))
    b.add_pod(make_pod("x3", owner="rs", node_name="b"))
    c.add_pod(make_pod("y1", owner="other", node_name="c"))
    pod = make_pod("new", owner="rs")
    raw = [plugin.score(pod, n) for n in (a, b, c)]
    assert raw == [2, 1, 0]
    assert plugin.normalize(pod, raw) == [0, 50, 100]


def test_a_pod_without_a_controller_skips_spreading():
    assert not OwnerSpread().pre_score(make_pod())
