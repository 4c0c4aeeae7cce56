"""Pods as the kubelet runs them: their network, resolv.conf and service variables as
Kubernetes writes them, probes, restarts, logs, exec and graceful deletion."""

from __future__ import annotations

import ipaddress
import subprocess
import sys
from typing import Any

from kubernetes import client as k8s

from control.cluster.layout import Layout
from control.kubelet.network import uid8
from tests.e2e.conftest import ctl, eventually

AGNHOST = [sys.executable, "-m", "netplane.cli.main", "agnhost"]


def _pod(name: str, command: list[str], **container: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"test": name}},
            "spec": {"terminationGracePeriodSeconds": 2,
                     "containers": [{"name": "c", "image": "agnhost", "command": command, **container}]}}


def _ready(core: k8s.CoreV1Api, name: str) -> k8s.V1Pod | None:
    pod = core.read_namespaced_pod(name, "default")
    ok = pod.status.phase == "Running" and any(c.type == "Ready" and c.status == "True"
                                               for c in pod.status.conditions or [])
    return pod if ok else None


def test_a_pod_gets_kubernetes_resolv_conf_hosts_and_service_variables(cluster: Layout,
                                                                       api: k8s.ApiClient) -> None:
    core = k8s.CoreV1Api(api)
    core.create_namespaced_service("default", {
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "env-target"},
        "spec": {"ports": [{"name": "http", "port": 8080}], "selector": {"x": "y"}}})
    svc = core.read_namespaced_service("env-target", "default")
    core.create_namespaced_pod("default", _pod("env", ["sleep", "3600"]))
    pod = eventually(lambda: _ready(core, "env"), "the env pod to run")
    node = core.read_node(pod.spec.node_name)
    assert ipaddress.ip_address(pod.status.pod_ip) in ipaddress.ip_network(node.spec.pod_cidr)
    resolv = ctl(cluster, "exec", "env", "--", "cat", "/etc/resolv.conf").stdout
    assert resolv.splitlines()[:3][0].startswith(
        "search default.svc.cluster.local svc.cluster.local cluster.local")
    assert "nameserver 10.96.0.10" in resolv.splitlines() and "options ndots:5" in resolv.splitlines()
    hosts = ctl(cluster, "exec", "env", "--", "cat", "/etc/hosts").stdout
    assert hosts.startswith("# Kubernetes-managed hosts file.") and f"{pod.status.pod_ip}\tenv" in hosts
    assert ctl(cluster, "exec", "env", "--", "hostname").stdout.strip() == "env"
    # The runtime execs all the way down: the container's pid is its command's.
    pid = int(pod.status.container_statuses[0].container_id.removeprefix("netplane://"))
    with open(f"/proc/{pid}/environ", "rb") as f:
        environ = f.read().decode().split("\0")
    ip = svc.spec.cluster_ip
    for line in (f"ENV_TARGET_SERVICE_HOST={ip}", "ENV_TARGET_SERVICE_PORT=8080",
                 "ENV_TARGET_SERVICE_PORT_HTTP=8080", f"ENV_TARGET_PORT=tcp://{ip}:8080",
                 f"ENV_TARGET_PORT_8080_TCP_ADDR={ip}", "KUBERNETES_SERVICE_HOST=10.96.0.1",
                 "HOSTNAME=env"):
        assert line in environ
    core.delete_namespaced_pod("env", "default")


def test_liveness_failures_restart_the_container(cluster: Layout, api: k8s.ApiClient) -> None:
    core = k8s.CoreV1Api(api)
    probe = {"exec": {"command": ["test", "-e", "/nonexistent"]}, "periodSeconds": 1, "failureThreshold": 1}
    core.create_namespaced_pod("default", _pod("crashy", ["sleep", "3600"], livenessProbe=probe))

    def restarted() -> bool:
        statuses = core.read_namespaced_pod("crashy", "default").status.container_statuses or []
        return bool(statuses) and statuses[0].restart_count >= 1

    eventually(restarted, "a restart after the liveness probe failed", timeout=120)
    core.delete_namespaced_pod("crashy", "default")


def test_deleting_a_pod_stops_it_and_removes_its_namespace(cluster: Layout, api: k8s.ApiClient) -> None:
    core = k8s.CoreV1Api(api)
    core.create_namespaced_pod("default", _pod("doomed", [*AGNHOST, "serve-hostname"]))
    eventually(lambda: _ready(core, "doomed"), "the pod to run")
    out = ctl(cluster, "logs", "doomed")
    assert out.returncode == 0, out.stderr
    record = cluster.read_record()
    assert record is not None
    uid = core.read_namespaced_pod("doomed", "default").metadata.uid
    netns = f"np-{record.cluster_id}-p-{uid8(uid)}"
    assert netns in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    core.delete_namespaced_pod("doomed", "default")

    def gone() -> bool:
        try:
            core.read_namespaced_pod("doomed", "default")
        except k8s.ApiException as exc:
            return exc.status == 404
        return False

    eventually(gone, "the kubelet to finalise the deletion")
    assert netns not in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
