"""Node affinity: the wire types the model does not carry (`spec.affinity.nodeAffinity`)
and their compiled matchers, as Kubernetes' component-helpers nodeaffinity package.

Compiled once per pod, so that matching a node is a few dict lookups."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import msgspec

from netplane.model import Operator, Requirement, Selector, SelectorError
from netplane.model.meta import KubeStruct, decode

NODE_NAME_FIELD = "metadata.name"


class NodeSelectorRequirement(KubeStruct, frozen=True):
    key: str = ""
    operator: str = ""
    values: list[str] = msgspec.field(default_factory=list)


class NodeSelectorTerm(KubeStruct, frozen=True):
    match_expressions: list[NodeSelectorRequirement] = msgspec.field(default_factory=list)
    match_fields: list[NodeSelectorRequirement] = msgspec.field(default_factory=list)


class NodeSelector(KubeStruct, frozen=True):
    node_selector_terms: list[NodeSelectorTerm] = msgspec.field(default_factory=list)


class PreferredSchedulingTerm(KubeStruct, frozen=True):
    weight: int = 0
    preference: NodeSelectorTerm = msgspec.field(default_factory=NodeSelectorTerm)


class NodeAffinity(KubeStruct, frozen=True):
    required_during_scheduling_ignored_during_execution: NodeSelector | None = None
    preferred_during_scheduling_ignored_during_execution: list[PreferredSchedulingTerm] = (
        msgspec.field(default_factory=list))


class Affinity(KubeStruct, frozen=True):
    node_affinity: NodeAffinity | None = None


class _AffinitySpec(KubeStruct, frozen=True):
    affinity: Affinity | None = None


class _PodAffinityView(KubeStruct, frozen=True):
    spec: _AffinitySpec = msgspec.field(default_factory=_AffinitySpec)


def decode_affinity(raw: bytes | str | dict[str, Any]) -> Affinity | None:
    """`spec.affinity` of a raw pod (JSON or parsed)."""
    return decode(_PodAffinityView, raw).spec.affinity


_LABEL_OPS = {"In": Operator.IN, "NotIn": Operator.NOT_IN, "Exists": Operator.EXISTS,
              "DoesNotExist": Operator.DOES_NOT_EXIST, "Gt": Operator.GREATER_THAN,
              "Lt": Operator.LESS_THAN}


@dataclass(frozen=True, slots=True)
class CompiledTerm:
    """One nodeSelectorTerm: its matchExpressions AND its matchFields."""

    labels: Selector
    names_in: frozenset[str] | None = None  # metadata.name In (one value)
    names_not_in: frozenset[str] = frozenset()

    def matches(self, name: str, labels: Mapping[str, str]) -> bool:
        if self.names_in is not None and name not in self.names_in:
            return False
        if name in self.names_not_in:
            return False
        return self.labels.matches(labels)


def compile_term(term: NodeSelectorTerm) -> CompiledTerm | None:
    """None for a term that matches nothing: empty, or not parseable (Kubernetes skips
    such terms: nodeSelectorRequirementsAsSelector errors make the term fail)."""
    if not term.match_expressions and not term.match_fields:
        return None
    try:
        reqs = []
        for expr in term.match_expressions:
            op = _LABEL_OPS.get(expr.operator)
            if op is None:
                return None
            reqs.append(Requirement.new(expr.key, op, expr.values))
    except SelectorError:
        return None
    names_in: frozenset[str] | None = None
    names_not_in: set[str] = set()
    for expr in term.match_fields:
        # nodeSelectorRequirementsAsFieldSelector: only metadata.name, In/NotIn, one value.
        if expr.key != NODE_NAME_FIELD or len(expr.values) != 1:
            return None
        if expr.operator == "In":
            value = frozenset(expr.values)
            names_in = value if names_in is None else names_in & value
        elif expr.operator == "NotIn":
            names_not_in.update(expr.values)
        else:
            return None
    return CompiledTerm(Selector(tuple(reqs)), names_in, frozenset(names_not_in))


@dataclass(frozen=True, slots=True)
class RequiredNodeAffinity:
    """spec.nodeSelector AND (any of the required nodeSelectorTerms)."""

    node_selector: tuple[tuple[str, str], ...] = ()
    terms: tuple[CompiledTerm, ...] | None = None  # None: no required affinity

    @property
    def empty(self) -> bool:
        return not self.node_selector and self.terms is None

    def matches(self, name: str, labels: Mapping[str, str]) -> bool:
        for key, value in self.node_selector:
            if labels.get(key) != value:
                return False
        if self.terms is None:
            return True
        return any(t.matches(name, labels) for t in self.terms)


def required_affinity(node_selector: Mapping[str, str],
                      affinity: Affinity | None) -> RequiredNodeAffinity:
    required = affinity.node_affinity.required_during_scheduling_ignored_during_execution \
        if affinity is not None and affinity.node_affinity is not None else None
    terms = None
    if required is not None:
        compiled = (compile_term(t) for t in required.node_selector_terms)
        terms = tuple(t for t in compiled if t is not None)
    return RequiredNodeAffinity(tuple(sorted(node_selector.items())), terms)


def preferred_terms(affinity: Affinity | None) -> tuple[tuple[int, CompiledTerm], ...]:
    """(weight, term) of the preferred terms; an empty term or weight 0 is a no-op."""
    if affinity is None or affinity.node_affinity is None:
        return ()
    out = []
    for pref in affinity.node_affinity.preferred_during_scheduling_ignored_during_execution:
        term = compile_term(pref.preference)
        if term is not None and pref.weight:
            out.append((pref.weight, term))
    return tuple(out)
