"""Runs last (it kills a kubelet): a node whose kubelet dies goes NotReady."""

from __future__ import annotations

import os

from kubernetes import client as k8s

from control.cluster.layout import Layout
from tests.e2e.conftest import eventually


def test_a_dead_kubelet_makes_its_node_not_ready(cluster: Layout, api: k8s.ApiClient) -> None:
    record = cluster.read_record()
    assert record is not None
    kubelet = next(p for p in record.processes if p.name == "kubelet-node-2")
    os.kill(kubelet.pid, 9)
    core = k8s.CoreV1Api(api)

    def not_ready() -> bool:
        node = core.read_node("node-2")
        return any(c.type == "Ready" and c.status != "True" for c in node.status.conditions)

    eventually(not_ready, "node-2 to become NotReady", timeout=120)
