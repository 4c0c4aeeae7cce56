"""The owner graph and verdicts for deletion propagation (pure): owners deleted with the
orphan or foregroundDeletion finalizer, dependents that block them, and dependents of an
owner that waits for them."""

from __future__ import annotations

from control.controllers.ownergraph import (
    Node,
    OwnerGraph,
    OwnerState,
    Verdict,
    owner_state,
    verdict,
)
from netplane.model.meta import OwnerReference


def ref(name: str, uid: str, *, block: bool | None = True) -> OwnerReference:
    return OwnerReference(api_version="apps/v1", kind="ReplicaSet", name=name, uid=uid,
                          controller=True, block_owner_deletion=block)


def node(uid: str, name: str, *owners: OwnerReference, deleting: bool = False,
         finalizers: tuple[str, ...] = (), kind: str = "ReplicaSet") -> Node:
    return Node(uid, "apps/v1", kind, "ns", name, tuple(owners), "1", deleting, finalizers)


def test_an_owner_deleted_with_a_propagation_finalizer_is_looked_at_once_per_change() -> None:
    g = OwnerGraph()
    assert g.upsert(node("r1", "rs")) == []
    orphaning = node("r1", "rs", deleting=True, finalizers=("orphan",))
    assert orphaning.orphaning and not orphaning.deleting_dependents
    assert g.upsert(orphaning) == ["r1"]
    assert g.upsert(orphaning) == []  # a status write changes nothing for the collector
    # Asked again with Foreground: the policy switched, so it is looked at again.
    foreground = node("r1", "rs", deleting=True, finalizers=("foregroundDeletion",))
    assert foreground.deleting_dependents and not foreground.orphaning
    assert g.upsert(foreground) == ["r1"]


def test_a_finalizer_alone_without_a_deletion_propagates_nothing() -> None:
    held = node("r1", "rs", finalizers=("orphan", "foregroundDeletion"))
    assert not held.orphaning and not held.deleting_dependents
    assert OwnerGraph().upsert(held) == []


def test_only_dependents_with_block_owner_deletion_block_a_foreground_owner() -> None:
    g = OwnerGraph()
    g.upsert(node("r1", "rs", deleting=True, finalizers=("foregroundDeletion",)))
    g.upsert(node("p1", "blocking", ref("rs", "r1"), kind="Pod"))
    g.upsert(node("p2", "not-blocking", ref("rs", "r1", block=False), kind="Pod"))
    g.upsert(node("p3", "unset", ref("rs", "r1", block=None), kind="Pod"))
    assert [n.uid for n in g.blocking_dependents("r1")] == ["p1"]
    assert g.dependents("r1") == {"p1", "p2", "p3"}


def test_a_foreground_owner_is_looked_at_again_when_a_dependent_goes_or_lets_go() -> None:
    g = OwnerGraph()
    g.upsert(node("r1", "rs", deleting=True, finalizers=("foregroundDeletion",)))
    g.upsert(node("p1", "a", ref("rs", "r1"), kind="Pod"))
    g.upsert(node("p2", "b", ref("rs", "r1"), kind="Pod"))
    # Its deletion starting is no news to the owner: it still blocks until it is gone.
    assert "r1" not in g.upsert(node("p1", "a", ref("rs", "r1"), deleting=True, kind="Pod"))
    assert g.remove("p1") == ["r1"]
    # No longer blocking: the owner may be free to go.
    assert g.upsert(node("p2", "b", ref("rs", "r1", block=False), kind="Pod")) == ["p2", "r1"]
    assert g.blocking_dependents("r1") == []


def test_an_owner_that_is_not_waiting_is_not_looked_at_when_a_dependent_goes() -> None:
    g = OwnerGraph()
    g.upsert(node("r1", "rs", deleting=True, finalizers=("orphan",)))
    g.upsert(node("p1", "a", ref("rs", "r1"), kind="Pod"))
    assert g.remove("p1") == []


def test_the_graph_tells_a_waiting_owner_from_a_present_one() -> None:
    g = OwnerGraph()
    pod = node("p1", "a", ref("rs", "r1"), kind="Pod")
    g.upsert(node("r1", "rs", deleting=True, finalizers=("orphan",)))
    assert g.owner_in_graph(pod, pod.owners[0], namespaced=True) is OwnerState.PRESENT
    g.upsert(node("r1", "rs", deleting=True, finalizers=("foregroundDeletion",)))
    assert g.owner_in_graph(pod, pod.owners[0], namespaced=True) is OwnerState.WAITING


def test_an_owner_read_from_the_apiserver_waits_only_while_deleted_in_foreground() -> None:
    assert owner_state({"uid": "r1"}) is OwnerState.PRESENT
    assert owner_state({"uid": "r1", "finalizers": ["foregroundDeletion"]}) is OwnerState.PRESENT
    assert owner_state({"uid": "r1", "deletionTimestamp": "2024-01-01T00:00:00Z",
                        "finalizers": ["foregroundDeletion"]}) is OwnerState.WAITING
    assert owner_state({"uid": "r1", "deletionTimestamp": "2024-01-01T00:00:00Z",
                        "finalizers": ["orphan"]}) is OwnerState.PRESENT


def test_a_dependent_of_a_waiting_owner_is_deleted_in_foreground_only_if_it_has_dependents() -> None:
    a = ref("a", "1")
    assert verdict([(a, OwnerState.WAITING)], has_dependents=True) == Verdict(delete=True, foreground=True)
    assert verdict([(a, OwnerState.WAITING)]) == Verdict(delete=True)


def test_a_solid_owner_keeps_the_dependent_which_lets_go_of_the_waiting_and_absent_ones() -> None:
    a, b, c = ref("a", "1"), ref("b", "2"), ref("c", "3")
    assert verdict([(a, OwnerState.PRESENT), (b, OwnerState.WAITING), (c, OwnerState.ABSENT)]) == \
        Verdict(keep_owners=(a,))
    # An owner whose kind cannot be looked up counts as solid: never collect on a guess.
    assert verdict([(a, OwnerState.UNKNOWN), (b, OwnerState.WAITING)]) == Verdict(keep_owners=(a,))
    assert verdict([(a, OwnerState.PRESENT), (b, OwnerState.UNKNOWN)]) == Verdict()


def test_waiting_and_absent_owners_together_mean_a_foreground_deletion() -> None:
    a, b = ref("a", "1"), ref("b", "2")
    assert verdict([(a, OwnerState.ABSENT), (b, OwnerState.WAITING)], has_dependents=True) == \
        Verdict(delete=True, foreground=True)
    assert verdict([(a, OwnerState.ABSENT), (b, OwnerState.ABSENT)], has_dependents=True) == \
        Verdict(delete=True)
