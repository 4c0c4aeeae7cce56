"""tcpSocket readiness probes on a real pod: the kubelet, in the node namespace, dials the
pod's IP; a container whose port listens becomes ready, one whose port is closed stays
unready however often it is probed, and the pod is Ready only when both are."""

from __future__ import annotations

import os
import sys
from typing import Any

import pytest
from kubernetes import client as k8s

from tests.integration.kubelet.conftest import Node, eventually

pytestmark = [pytest.mark.root, pytest.mark.slow,
              pytest.mark.skipif(os.geteuid() != 0,
                                 reason="the kubelet creates network namespaces: needs root")]


def _tcp_ready(port: int) -> dict[str, Any]:
    return {"tcpSocket": {"port": port}, "periodSeconds": 1, "failureThreshold": 1}


def _probe_count(node: Node, pod: str, container: str, result: str) -> float:
    """prober_probe_total for one container's readiness attempts with `result`, from the
    kubelet's /metrics."""
    _status, body = node.get("/metrics")
    labels = (f'container="{container}"', f'pod="{pod}"', 'probe_type="Readiness"', f'result="{result}"')
    total = 0.0
    for line in body.decode().splitlines():
        if line.startswith("prober_probe_total{") and all(label in line for label in labels):
            total += float(line.rsplit(" ", 1)[1])
    return total


def _statuses(api: k8s.CoreV1Api, name: str) -> dict[str, bool]:
    pod = api.read_namespaced_pod(name, "default")
    return {s.name: bool(s.ready) for s in pod.status.container_statuses or []}


def test_a_tcp_socket_readiness_probe_passes_on_a_listening_port_and_fails_on_a_closed_one(
        node: Node, api: k8s.CoreV1Api) -> None:
    # Both containers share the pod's network namespace: 8080 listens, 8081 never does.
    api.create_namespaced_pod("default", {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "tcp"},
        "spec": {"nodeName": node.name, "terminationGracePeriodSeconds": 1, "containers": [
            {"name": "open", "image": "registry.example/test:1",
             "command": [sys.executable, "-m", "http.server", "8080"], "readinessProbe": _tcp_ready(8080)},
            {"name": "closed", "image": "registry.example/test:1", "command": ["sleep", "3600"],
             "readinessProbe": _tcp_ready(8081)}]}})

    eventually(lambda: _statuses(api, "tcp").get("open"), "the listening container to become ready")
    eventually(lambda: _probe_count(node, "tcp", "closed", "failed") >= 3,
               "several failed probes of the closed port")
    assert _statuses(api, "tcp") == {"open": True, "closed": False}
    assert _probe_count(node, "tcp", "closed", "successful") == 0
    assert _probe_count(node, "tcp", "open", "successful") >= 1
    pod = api.read_namespaced_pod("tcp", "default")
    ready = next(c for c in pod.status.conditions if c.type == "Ready")
    assert (pod.status.phase, ready.status) == ("Running", "False")
    assert ready.message == "containers with unready status: [closed]"

    def deleted() -> bool:
        try:
            api.delete_namespaced_pod("tcp", "default")
        except k8s.ApiException as exc:
            if exc.status == 409:  # a concurrent status write: try again
                return False
            if exc.status != 404:
                raise
        return True

    def gone() -> bool:
        try:
            api.read_namespaced_pod("tcp", "default")
        except k8s.ApiException as exc:
            return exc.status == 404
        return False

    eventually(deleted, "the pod to accept its deletion")
    eventually(gone, "the pod to go")
