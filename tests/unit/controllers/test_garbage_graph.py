"""The garbage collector's owner graph and its verdicts (pure)."""

from __future__ import annotations

from control.controllers.ownergraph import Node, OwnerGraph, OwnerState, Verdict, group_of, verdict
from netplane.model.meta import OwnerReference


def ref(kind: str, name: str, uid: str, api_version: str = "apps/v1") -> OwnerReference:
    return OwnerReference(api_version=api_version, kind=kind, name=name, uid=uid, controller=True)


def node(uid: str, kind: str, name: str, *owners: OwnerReference, namespace: str = "ns",
         api_version: str = "apps/v1", deleting: bool = False) -> Node:
    return Node(uid, api_version, kind, namespace, name, tuple(owners), "1", deleting)


def test_an_object_with_owners_is_looked_at_when_it_appears_and_when_its_owners_change() -> None:
    g = OwnerGraph()
    assert g.upsert(node("d1", "Deployment", "web")) == []  # no owners: nothing to decide
    rs = node("r1", "ReplicaSet", "web-abc", ref("Deployment", "web", "d1"))
    assert g.upsert(rs) == ["r1"]
    assert g.upsert(rs) == []  # a status update changes nothing for the collector
    moved = node("r1", "ReplicaSet", "web-abc", ref("Deployment", "other", "d2"))
    assert g.upsert(moved) == ["r1"]
    assert g.dependents("d1") == set() and g.dependents("d2") == {"r1"}


def test_an_object_going_away_hands_over_its_dependents() -> None:
    g = OwnerGraph()
    g.upsert(node("d1", "Deployment", "web"))
    g.upsert(node("r1", "ReplicaSet", "web-a", ref("Deployment", "web", "d1")))
    g.upsert(node("r2", "ReplicaSet", "web-b", ref("Deployment", "web", "d1")))
    g.upsert(node("p1", "Pod", "web-a-x", ref("ReplicaSet", "web-a", "r1"), api_version="v1"))
    assert g.remove("d1") == ["r1", "r2"]
    assert g.remove("r1") == ["p1"]
    assert g.remove("p1") == []
    assert g.remove("unknown") == []
    assert len(g) == 1


def test_a_dependent_that_goes_away_leaves_no_trace_under_its_owner() -> None:
    g = OwnerGraph()
    g.upsert(node("p1", "Pod", "a", ref("ReplicaSet", "rs", "r1"), api_version="v1"))
    g.remove("p1")
    assert g.dependents("r1") == set()


def test_the_graph_knows_an_owner_only_by_name_and_uid() -> None:
    g = OwnerGraph()
    pod = node("p1", "Pod", "a", ref("ReplicaSet", "rs", "r1"), api_version="v1")
    owner_ref = pod.owners[0]
    assert g.owner_in_graph(pod, owner_ref, namespaced=True) is None  # not seen (yet)
    g.upsert(node("r1", "ReplicaSet", "rs"))
    assert g.owner_in_graph(pod, owner_ref, namespaced=True) is OwnerState.PRESENT
    # Replaced by a namesake: the graph cannot say the owner exists.
    g.remove("r1")
    g.upsert(node("r9", "ReplicaSet", "rs"))
    assert g.owner_in_graph(pod, owner_ref, namespaced=True) is None
    # Another namespace's object of that name is not the owner.
    other_ns = node("p2", "Pod", "b", ref("ReplicaSet", "rs", "r9"), api_version="v1", namespace="other")
    assert g.owner_in_graph(other_ns, other_ns.owners[0], namespaced=True) is None


def test_cluster_scoped_owners_are_looked_up_without_a_namespace() -> None:
    g = OwnerGraph()
    g.upsert(node("n1", "Node", "node-1", namespace="", api_version="v1"))
    pod = node("p1", "Pod", "mirror", ref("Node", "node-1", "n1", api_version="v1"), api_version="v1")
    assert g.owner_in_graph(pod, pod.owners[0], namespaced=False) is OwnerState.PRESENT


def test_versions_of_one_group_name_the_same_objects() -> None:
    assert group_of("apps/v1") == group_of("apps/v1beta2") == "apps"
    assert group_of("v1") == ""
    g = OwnerGraph()
    g.upsert(node("r1", "ReplicaSet", "rs"))
    pod = node("p1", "Pod", "a", ref("ReplicaSet", "rs", "r1", api_version="apps/v1beta2"), api_version="v1")
    assert g.owner_in_graph(pod, pod.owners[0], namespaced=True) is OwnerState.PRESENT


def test_an_object_is_deleted_only_when_every_owner_is_absent() -> None:
    a, b = ref("ReplicaSet", "a", "ua"), ref("Deployment", "b", "ub")
    assert verdict([(a, OwnerState.ABSENT)]) == Verdict(delete=True)
    assert verdict([(a, OwnerState.ABSENT), (b, OwnerState.ABSENT)]) == Verdict(delete=True)
    assert verdict([(a, OwnerState.PRESENT)]) == Verdict()
    assert verdict([]) == Verdict()


def test_a_dependent_with_a_live_owner_only_loses_its_dangling_references() -> None:
    a, b = ref("ReplicaSet", "a", "ua"), ref("Deployment", "b", "ub")
    assert verdict([(a, OwnerState.ABSENT), (b, OwnerState.PRESENT)]) == Verdict(keep_owners=(b,))


def test_an_owner_of_unknown_kind_protects_its_dependent() -> None:
    a, b = ref("ReplicaSet", "a", "ua"), ref("Widget", "w", "uw", api_version="example.com/v1")
    assert verdict([(b, OwnerState.UNKNOWN)]) == Verdict()
    assert verdict([(a, OwnerState.ABSENT), (b, OwnerState.UNKNOWN)]) == Verdict(keep_owners=(b,))
