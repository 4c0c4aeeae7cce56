"""Pods as the kubelet runs them: their network, resolv.conf and service variables as
Kubernetes writes them, probes, restarts, logs, exec and graceful deletion."""

from __future__ import annotations

import ipaddress
import json
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any

import pytest
from kubernetes import client as k8s

from control.cluster.layout import Layout
from control.kubelet.network import uid8
from tests.e2e.conftest import NETPLANE, ctl, eventually

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


def _line_reader(stream: IO[str]) -> queue.Queue[str | None]:
    """The stream's lines as they arrive (None at its end), read on a thread of its own so
    that waiting for one never blocks past a deadline."""
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        for line in stream:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, name="log-reader", daemon=True).start()
    return lines


def _read_until(lines: queue.Queue[str | None], marker: str, timeout: float = 90.0) -> list[str]:
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while True:
        try:
            line = lines.get(timeout=max(deadline - time.monotonic(), 0.01))
        except queue.Empty:
            raise AssertionError(f"no {marker!r} in the stream yet; it said {seen}") from None
        if line is None:
            raise AssertionError(f"the stream ended before {marker!r}; it said {seen}")
        seen.append(line)
        if marker in line:
            return seen


def test_logs_pick_a_container_with_c_and_follow_streams_lines_as_they_are_written(
        cluster: Layout, api: k8s.ApiClient, tmp_path: Path) -> None:
    core = k8s.CoreV1Api(api)
    flag = tmp_path / "go"  # pods run on the node's own filesystem: they see this file appear
    first = (f"echo first-started; while [ ! -e {flag} ]; do sleep 0.1; done; echo first-marker; "
             "exec sleep 3600")
    pod = _pod("talkers", ["sh", "-c", first])
    pod["spec"]["containers"][0]["name"] = "first"
    pod["spec"]["containers"].append({"name": "second", "image": "agnhost",
                                      "command": ["sh", "-c", "echo second-says-hello; exec sleep 3600"]})
    core.create_namespaced_pod("default", pod)
    follow: subprocess.Popen[str] | None = None
    try:
        eventually(lambda: _ready(core, "talkers"), "the two-container pod to run")
        second = ctl(cluster, "logs", "talkers", "-c", "second")
        assert (second.returncode, second.stdout) == (0, "second-says-hello\n"), second.stderr
        unnamed = ctl(cluster, "logs", "talkers")
        assert unnamed.returncode == 1 and "a container name must be specified" in unnamed.stderr

        follow = subprocess.Popen(
            [*NETPLANE, "ctl", "--kubeconfig", str(cluster.admin_kubeconfig), "logs", "-f", "talkers",
             "-c", "first"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert follow.stdout is not None
        lines = _line_reader(follow.stdout)
        assert _read_until(lines, "first-started") == ["first-started\n"]
        flag.touch()  # only now does the container write its marker
        assert _read_until(lines, "first-marker") == ["first-marker\n"]
        assert follow.poll() is None, "logs -f returned instead of following"
    finally:
        if follow is not None:
            follow.terminate()
            try:
                follow.wait(timeout=30)
            except subprocess.TimeoutExpired:
                follow.kill()
                follow.wait()
        core.delete_namespaced_pod("talkers", "default")


def test_log_options_the_kubelet_cannot_honour_are_refused_not_ignored(cluster: Layout,
                                                                        api: k8s.ApiClient) -> None:
    core = k8s.CoreV1Api(api)
    core.create_namespaced_pod("default", _pod("stamped", ["sh", "-c", "echo hi; exec sleep 3600"]))
    try:
        eventually(lambda: _ready(core, "stamped"), "the pod to run")
        assert core.read_namespaced_pod_log("stamped", "default", container="c") == "hi\n"
        for option in ({"timestamps": True}, {"since_seconds": 60}):
            with pytest.raises(k8s.ApiException) as info:
                core.read_namespaced_pod_log("stamped", "default", container="c", **option)
            assert info.value.status == 400
            assert "not supported" in json.loads(info.value.body)["message"]
    finally:
        core.delete_namespaced_pod("stamped", "default")
