"""The ownerReferences graph of the garbage collector (Kubernetes' GraphBuilder, pure):
every watched object by uid with its owners and finalizers, who depends on whom, and
which objects to look at when something appears, changes or disappears. What the
collector then does with a dependent follows from `verdict`, with an owner being deleted
from `Node.orphaning` / `Node.deleting_dependents` and `OwnerGraph.blocking_dependents`."""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from netplane.model.meta import OwnerReference

# metav1.FinalizerOrphanDependents and metav1.FinalizerDeleteDependents: the apiserver
# puts them on an object deleted with propagationPolicy Orphan or Foreground.
ORPHAN_FINALIZER = "orphan"
FOREGROUND_FINALIZER = "foregroundDeletion"


def group_of(api_version: str) -> str:
    """"apps/v1" -> "apps"; "v1" -> "" (the core group). Versions of a group share objects."""
    return api_version.rpartition("/")[0]


@dataclass(frozen=True)
class Node:
    uid: str
    api_version: str
    kind: str
    namespace: str  # "" for cluster-scoped objects
    name: str
    owners: tuple[OwnerReference, ...] = ()
    resource_version: str = ""
    deleting: bool = False
    finalizers: tuple[str, ...] = ()

    @property
    def identity(self) -> tuple[str, str, str, str]:
        return (group_of(self.api_version), self.kind, self.namespace, self.name)

    @property
    def orphaning(self) -> bool:
        """Being deleted with propagationPolicy=Orphan: its dependents are to be released."""
        return self.deleting and ORPHAN_FINALIZER in self.finalizers

    @property
    def deleting_dependents(self) -> bool:
        """Being deleted with propagationPolicy=Foreground: it waits for its dependents."""
        return self.deleting and FOREGROUND_FINALIZER in self.finalizers and not self.orphaning


class OwnerState(enum.Enum):
    PRESENT = "present"  # an object with that name and uid exists
    WAITING = "waiting"  # it exists, deleted in foreground: it waits for its dependents
    ABSENT = "absent"  # confirmed: no such name, or the name now has another uid
    UNKNOWN = "unknown"  # cannot tell (a kind the apiserver does not serve): never collect


class OwnerGraph:
    """Objects by uid, dependents by owner uid, and uids by (group, kind, namespace, name)."""

    def __init__(self) -> None:
        self._nodes: dict[str, Node] = {}
        self._dependents: dict[str, set[str]] = {}
        self._by_identity: dict[tuple[str, str, str, str], str] = {}

    def __len__(self) -> int:
        return len(self._nodes)

    def get(self, uid: str) -> Node | None:
        return self._nodes.get(uid)

    def dependents(self, owner_uid: str) -> set[str]:
        return set(self._dependents.get(owner_uid, ()))

    def blocking_dependents(self, owner_uid: str) -> list[Node]:
        """The dependents whose reference to this owner says blockOwnerDeletion: a
        foreground deletion of the owner ends only once they are gone."""
        out = []
        for uid in sorted(self._dependents.get(owner_uid, ())):
            node = self._nodes.get(uid)
            if node is not None and any(r.uid == owner_uid and r.block_owner_deletion
                                        for r in node.owners):
                out.append(node)
        return out

    def upsert(self, node: Node) -> list[str]:
        """Records the object; returns the uids to look at: the object itself when it is
        new, or its owners or deletion changed (as a dependent: it has owners; as an owner:
        it is being deleted with the orphan or foregroundDeletion finalizer), and owners
        deleted in foreground that it stopped or started pointing to."""
        old = self._nodes.get(node.uid)
        if old is not None:
            self._unlink(old)
        self._nodes[node.uid] = node
        self._by_identity[node.identity] = node.uid
        for ref in node.owners:
            self._dependents.setdefault(ref.uid, set()).add(node.uid)
        out: list[str] = []
        changed = old is None or old.owners != node.owners or old.deleting != node.deleting
        if node.owners and changed:
            out.append(node.uid)
        propagating = node.orphaning or node.deleting_dependents
        if propagating and (old is None or old.deleting != node.deleting
                            or old.finalizers != node.finalizers):
            out.append(node.uid)
        if old is not None and old.owners != node.owners:
            # A reference gone or no longer blocking may be what a foreground owner awaits.
            out += self._waiting_owners({*old.owners, *node.owners})
        return sorted(set(out))

    def remove(self, uid: str) -> list[str]:
        """Forgets the object; returns its dependents, whose owner may now be gone, and its
        owners that wait for their dependents' deletion (this may have been the last)."""
        node = self._nodes.pop(uid, None)
        if node is None:
            return []
        self._unlink(node)
        return sorted({*self._dependents.get(uid, ()), *self._waiting_owners(node.owners)})

    def _waiting_owners(self, refs: Iterable[OwnerReference]) -> list[str]:
        out = []
        for ref in refs:
            owner = self._nodes.get(ref.uid)
            if owner is not None and owner.deleting_dependents:
                out.append(owner.uid)
        return out

    def _unlink(self, node: Node) -> None:
        if self._by_identity.get(node.identity) == node.uid:
            del self._by_identity[node.identity]
        for ref in node.owners:
            deps = self._dependents.get(ref.uid)
            if deps is not None:
                deps.discard(node.uid)
                if not deps:
                    del self._dependents[ref.uid]

    def owner_in_graph(self, dependent: Node, ref: OwnerReference, namespaced: bool) -> OwnerState | None:
        """PRESENT (or WAITING, when it is deleted in foreground) when the graph holds the
        owner with that uid; None when it cannot say (not seen yet, or seen with another
        uid: the cache may be behind either way)."""
        namespace = dependent.namespace if namespaced else ""
        uid = self._by_identity.get((group_of(ref.api_version), ref.kind, namespace, ref.name))
        if uid is None or uid != ref.uid:
            return None
        return OwnerState.WAITING if self._nodes[uid].deleting_dependents else OwnerState.PRESENT


def owner_state(meta: dict[str, Any]) -> OwnerState:
    """The state of an owner read from the apiserver (its metadata), for a matching uid."""
    waiting = meta.get("deletionTimestamp") and FOREGROUND_FINALIZER in (meta.get("finalizers") or [])
    return OwnerState.WAITING if waiting else OwnerState.PRESENT


@dataclass(frozen=True)
class Verdict:
    delete: bool = False
    # When some owners are gone and some are not: the references to keep.
    keep_owners: tuple[OwnerReference, ...] | None = None
    # Delete it in foreground: an owner waits for it (Kubernetes does so when it has
    # dependents of its own, so that they go first too).
    foreground: bool = False


def verdict(owners: Iterable[tuple[OwnerReference, OwnerState]], *, has_dependents: bool = False) -> Verdict:
    """Kubernetes' attemptToDeleteItem for an object that is not being deleted. Owners
    that exist and are not deleted in foreground are solid (so is an owner that cannot be
    looked up). With a solid owner, the object stays and loses only its references to
    absent or waiting owners; with none, it is deleted: in foreground when an owner waits
    for it and it has dependents itself, else as its own finalizers say."""
    pairs = list(owners)
    solid = [ref for ref, state in pairs if state in (OwnerState.PRESENT, OwnerState.UNKNOWN)]
    if len(solid) == len(pairs):
        return Verdict()
    if solid:
        return Verdict(keep_owners=tuple(solid))
    waiting = any(state is OwnerState.WAITING for _ref, state in pairs)
    return Verdict(delete=True, foreground=waiting and has_dependents)
