"""The ownerReferences graph of the garbage collector (Kubernetes' GraphBuilder, pure):
every watched object by uid with its owners, who depends on whom, and which objects to
look at when something appears, changes or disappears. What the collector then does
with an object follows from `verdict`."""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass

from netplane.model.meta import OwnerReference


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

    @property
    def identity(self) -> tuple[str, str, str, str]:
        return (group_of(self.api_version), self.kind, self.namespace, self.name)


class OwnerState(enum.Enum):
    PRESENT = "present"  # an object with that name and uid exists
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

    def upsert(self, node: Node) -> list[str]:
        """Records the object; returns the uids to look at: the object itself when it has
        owners and they (or its being deleted) changed, or it is new."""
        old = self._nodes.get(node.uid)
        if old is not None:
            self._unlink(old)
        self._nodes[node.uid] = node
        self._by_identity[node.identity] = node.uid
        for ref in node.owners:
            self._dependents.setdefault(ref.uid, set()).add(node.uid)
        if not node.owners:
            return []
        if old is not None and old.owners == node.owners and old.deleting == node.deleting:
            return []
        return [node.uid]

    def remove(self, uid: str) -> list[str]:
        """Forgets the object; returns its dependents, whose owner may now be gone."""
        node = self._nodes.pop(uid, None)
        if node is None:
            return []
        self._unlink(node)
        return sorted(self._dependents.get(uid, ()))

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
        """PRESENT when the graph holds the owner with that uid; None when it cannot say
        (not seen yet, or seen with another uid: the cache may be behind either way)."""
        namespace = dependent.namespace if namespaced else ""
        uid = self._by_identity.get((group_of(ref.api_version), ref.kind, namespace, ref.name))
        return OwnerState.PRESENT if uid is not None and uid == ref.uid else None


@dataclass(frozen=True)
class Verdict:
    delete: bool = False
    # When some owners are gone and some are not: the references to keep.
    keep_owners: tuple[OwnerReference, ...] | None = None


def verdict(owners: Iterable[tuple[OwnerReference, OwnerState]]) -> Verdict:
    """Kubernetes' attemptToDeleteItem, without foreground deletion: an object whose every
    owner is absent is deleted; one with some owners absent loses only those references
    (it still has an owner); otherwise nothing happens."""
    pairs = list(owners)
    absent = [ref for ref, state in pairs if state is OwnerState.ABSENT]
    if not pairs or not absent:
        return Verdict()
    if len(absent) == len(pairs):
        return Verdict(delete=True)
    return Verdict(keep_owners=tuple(ref for ref, state in pairs if state is not OwnerState.ABSENT))
