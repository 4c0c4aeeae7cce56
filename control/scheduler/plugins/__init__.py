"""The default plugins and the framework they make, in kube-scheduler's order."""

from __future__ import annotations

import random

from control.scheduler.framework import Framework
from control.scheduler.plugins.nodeaffinity import NodeAffinity
from control.scheduler.plugins.nodeschedulable import NodeSchedulable
from control.scheduler.plugins.resources import LeastAllocated, ResourcesFit
from control.scheduler.plugins.spread import OwnerSpread
from control.scheduler.plugins.taints import TaintToleration

__all__ = ["LeastAllocated", "NodeAffinity", "NodeSchedulable", "OwnerSpread", "ResourcesFit",
           "TaintToleration", "default_framework"]


def default_framework(rng: random.Random | None = None) -> Framework:
    """Filters: schedulable & ready, taints, node affinity, resources. Scores (weights as
    kube-scheduler's defaults): taints 3, node affinity 2, spreading 2, least allocated 1."""
    taints, affinity = TaintToleration(), NodeAffinity()
    return Framework(
        filters=[NodeSchedulable(), taints, affinity, ResourcesFit()],
        scores=[taints, affinity, OwnerSpread(), LeastAllocated()],
        rng=rng)
