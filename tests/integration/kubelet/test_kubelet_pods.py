"""The real kubelet, in a node namespace, against a real apiserver: it registers its node,
runs pods as processes in their own namespaces with Kubernetes' resolv.conf, hosts and
environment, probes them, restarts them, serves logs and exec, deletes them gracefully,
and adopts them across its own restart."""

from __future__ import annotations

import ipaddress
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as k8s

from control.kubelet.dnsconfig import ResolvConf
from netplane.kernel import netns as ns
from tests.integration.kubelet.conftest import CLUSTER_DNS, NODE_IP, POD_CIDR, Node, eventually

pytestmark = [pytest.mark.root, pytest.mark.slow,
              pytest.mark.skipif(os.geteuid() != 0,
                                 reason="the kubelet creates network namespaces: needs root")]


def _pod(name: str, command: list[str], *, node: Node, grace: int = 2, spec: dict[str, Any] | None = None,
         **container: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"nodeName": node.name, "terminationGracePeriodSeconds": grace, **(spec or {}),
                     "containers": [{"name": "c", "image": "registry.example/test:1", "command": command,
                                     **container}]}}


def _ready(pod: k8s.V1Pod) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])


def _running_ready(api: k8s.CoreV1Api, name: str) -> k8s.V1Pod | None:
    pod = api.read_namespaced_pod(name, "default")
    return pod if pod.status.phase == "Running" and _ready(pod) else None


def _pid(pod: k8s.V1Pod) -> int:
    return int(pod.status.container_statuses[0].container_id.removeprefix("netplane://"))


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _gone(api: k8s.CoreV1Api, name: str) -> bool:
    try:
        api.read_namespaced_pod(name, "default")
    except k8s.ApiException as exc:
        return exc.status == 404
    return False


def _delete(api: k8s.CoreV1Api, name: str) -> None:
    def deleted() -> bool:
        try:
            api.delete_namespaced_pod(name, "default")
        except k8s.ApiException as exc:
            if exc.status == 409:  # a concurrent status write: try again
                return False
            if exc.status != 404:
                raise
        return True

    eventually(deleted, f"pod {name} to accept its deletion")


def _netns_inode(path: str) -> int:
    return os.stat(path).st_ino


def test_the_node_registers_with_its_pod_cidr_addresses_capacity_and_socket(node: Node,
                                                                            api: k8s.CoreV1Api) -> None:
    def ready_node() -> k8s.V1Node | None:
        n = api.read_node(node.name)
        return n if any(c.type == "Ready" and c.status == "True" for c in n.status.conditions or []) else None

    n = eventually(ready_node, "the node to be Ready")
    assert n.spec.pod_cidr == POD_CIDR and n.spec.pod_cidrs == [POD_CIDR]
    addresses = {(a.type, a.address) for a in n.status.addresses}
    assert addresses == {("InternalIP", NODE_IP), ("Hostname", node.name)}
    assert n.status.capacity["pods"] == "110" and int(n.status.capacity["cpu"]) >= 1
    assert n.status.allocatable["memory"].endswith("Ki")
    assert n.metadata.annotations["netplane.io/kubelet-socket"] == str(node.socket)
    coordination = k8s.CoordinationV1Api(api.api_client)
    lease = eventually(lambda: coordination.read_namespaced_lease(node.name, "kube-node-lease"), "the lease")
    assert lease.spec.holder_identity == node.name and lease.spec.lease_duration_seconds == 40
    first = lease.spec.renew_time
    def renewed() -> bool:
        return bool(coordination.read_namespaced_lease(node.name, "kube-node-lease").spec.renew_time != first)

    eventually(renewed, "the lease to be renewed")
    status, body = node.get("/healthz")
    assert (status, body) == (200, b"ok")
    status, body = node.get("/metrics")
    assert status == 200 and f'kubelet_node_name{{node="{node.name}"}} 1.0'.encode() in body


def test_a_pod_runs_ready_with_kubernetes_resolv_conf_hosts_and_environment(node: Node,
                                                                          api: k8s.CoreV1Api) -> None:
    api.create_namespaced_service("default", {
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "backend-api"},
        "spec": {"ports": [{"name": "http", "port": 8080}, {"name": "dns", "port": 53, "protocol": "UDP"}],
                 "selector": {"app": "backend"}}})
    svc_ip = api.read_namespaced_service("backend-api", "default").spec.cluster_ip

    def ref(name: str, path: str) -> dict[str, Any]:
        return {"name": name, "valueFrom": {"fieldRef": {"fieldPath": path}}}

    env = [ref("MY_NAME", "metadata.name"), ref("MY_NS", "metadata.namespace"), ref("MY_UID", "metadata.uid"),
           ref("MY_IP", "status.podIP"), ref("MY_NODE", "spec.nodeName"), ref("MY_HOST", "status.hostIP"),
           {"name": "GREETING", "value": "hi-$(MY_NAME)-$(BACKEND_API_SERVICE_PORT)"}]
    probe = {"httpGet": {"path": "/", "port": "web"}, "periodSeconds": 1}
    api.create_namespaced_pod("default", _pod(
        "web", [sys.executable, "-m", "http.server", "8080"], node=node, env=env,
        ports=[{"name": "web", "containerPort": 8080}], readinessProbe=probe, workingDir="/tmp"))
    pod = eventually(lambda: _running_ready(api, "web"), "the web pod to be Running and Ready")

    assert ipaddress.ip_address(pod.status.pod_ip) in ipaddress.ip_network(POD_CIDR)
    assert [p.ip for p in pod.status.pod_ips] == [pod.status.pod_ip]
    assert pod.status.host_ip == NODE_IP and pod.status.start_time is not None
    conditions = {c.type: c.status for c in pod.status.conditions}
    assert conditions == {"PodReadyToStartContainers": "True", "Initialized": "True", "Ready": "True",
                          "ContainersReady": "True", "PodScheduled": "True"}
    status = pod.status.container_statuses[0]
    assert (status.ready, status.restart_count, status.image) == (True, 0, "registry.example/test:1")
    assert status.state.running is not None

    pid = _pid(pod)
    netns = node.pod_netns(pod.metadata.uid)
    assert _netns_inode(f"/proc/{pid}/ns/net") == _netns_inode(ns.path(netns))
    assert os.readlink(f"/proc/{pid}/cwd") == "/tmp"
    environ = dict(line.split("=", 1) for line in
                   Path(f"/proc/{pid}/environ").read_bytes().decode().split("\0") if "=" in line)
    assert {k: environ[k] for k in ("MY_NAME", "MY_NS", "MY_UID", "MY_IP", "MY_NODE", "MY_HOST", "GREETING",
                                    "HOSTNAME")} == {
        "MY_NAME": "web", "MY_NS": "default", "MY_UID": pod.metadata.uid, "MY_IP": pod.status.pod_ip,
        "MY_NODE": node.name, "MY_HOST": NODE_IP, "GREETING": "hi-web-8080", "HOSTNAME": "web"}
    for key, value in {"BACKEND_API_SERVICE_HOST": svc_ip, "BACKEND_API_SERVICE_PORT": "8080",
                       "BACKEND_API_SERVICE_PORT_HTTP": "8080", "BACKEND_API_SERVICE_PORT_DNS": "53",
                       "BACKEND_API_PORT": f"tcp://{svc_ip}:8080",
                       "BACKEND_API_PORT_53_UDP": f"udp://{svc_ip}:53",
                       "BACKEND_API_PORT_53_UDP_PROTO": "udp", "KUBERNETES_SERVICE_HOST": "10.96.0.1",
                       "KUBERNETES_SERVICE_PORT_HTTPS": "443"}.items():
        assert environ.get(key) == value, key

    # The files as the container sees them, through its own mount namespace.
    host = ResolvConf.parse(Path("/etc/resolv.conf").read_text())
    search = " ".join(dict.fromkeys(["default.svc.cluster.local", "svc.cluster.local", "cluster.local",
                                     *host.searches]))
    resolv = Path(f"/proc/{pid}/root/etc/resolv.conf").read_text()
    assert resolv == f"search {search}\nnameserver {CLUSTER_DNS}\noptions ndots:5\n"
    hosts = Path(f"/proc/{pid}/root/etc/hosts").read_text()
    assert hosts.startswith("# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n")
    assert hosts.endswith(f"\n{pod.status.pod_ip}\tweb\n")
    assert Path("/etc/resolv.conf").read_text() != resolv, "the node's own file must stay as it was"
    out, _err, code = node.exec("web", "c", "hostname")
    assert (out, code) == (b"web\n", 0)
    _delete(api, "web")
    eventually(lambda: _gone(api, "web"), "the web pod to go")


def test_readiness_follows_the_probe_without_restarting(node: Node, api: k8s.CoreV1Api,
                                                        tmp_path: Path) -> None:
    flag = tmp_path / "ready"
    probe = {"exec": {"command": ["test", "-e", str(flag)]}, "periodSeconds": 1, "failureThreshold": 1}
    api.create_namespaced_pod("default", _pod("gate", ["sleep", "3600"], node=node, readinessProbe=probe))

    def running_unready() -> bool:
        pod = api.read_namespaced_pod("gate", "default")
        return pod.status.phase == "Running" and not _ready(pod)

    eventually(running_unready, "the gate pod to run, not ready")
    flag.touch()
    pod = eventually(lambda: _running_ready(api, "gate"), "the gate pod to become ready")
    flag.unlink()
    eventually(running_unready, "the gate pod to become unready again")
    after = api.read_namespaced_pod("gate", "default")
    ready = next(c for c in after.status.conditions if c.type == "Ready")
    assert ready.reason == "ContainersNotReady" and ready.message == "containers with unready status: [c]"
    assert after.status.container_statuses[0].restart_count == 0 and _pid(after) == _pid(pod)
    _delete(api, "gate")


def test_a_failing_liveness_probe_restarts_the_container_with_its_logs_kept(node: Node,
                                                                           api: k8s.CoreV1Api) -> None:
    probe = {"exec": {"command": ["false"]}, "periodSeconds": 1, "failureThreshold": 1}
    command = ["sh", "-c", "echo started $$; exec sleep 3600"]
    api.create_namespaced_pod("default", _pod("crashy", command, node=node, livenessProbe=probe, grace=1))

    def restarted_twice() -> k8s.V1Pod | None:
        pod = api.read_namespaced_pod("crashy", "default")
        return pod if (pod.status.container_statuses or [None])[0].restart_count >= 2 else None

    pod = eventually(restarted_twice, "two restarts after liveness failures")
    status = pod.status.container_statuses[0]
    assert status.last_state.terminated is not None
    assert status.last_state.terminated.exit_code in (137, 143)  # SIGTERM, or SIGKILL after the grace
    assert pod.status.phase == "Running"
    code, previous = node.get("/containerLogs/default/crashy/c?previous=true")
    assert code == 200 and previous.startswith(b"started ")
    _delete(api, "crashy")


def test_restart_policies_end_pods_in_succeeded_or_failed_and_release_their_network(
        node: Node, api: k8s.CoreV1Api) -> None:
    api.create_namespaced_pod("default", _pod("oneshot", ["sh", "-c", "echo done; exit 3"], node=node,
                                              spec={"restartPolicy": "Never"}))
    api.create_namespaced_pod("default", _pod("job", ["sh", "-c", "exit 0"], node=node,
                                              spec={"restartPolicy": "OnFailure"}))
    def phase(name: str, wanted: str) -> k8s.V1Pod | None:
        pod = api.read_namespaced_pod(name, "default")
        return pod if pod.status.phase == wanted else None

    failed = eventually(lambda: phase("oneshot", "Failed"), "the Never pod to fail")
    terminated = failed.status.container_statuses[0].state.terminated
    assert (terminated.exit_code, terminated.reason) == (3, "Error")
    assert failed.status.container_statuses[0].restart_count == 0
    eventually(lambda: phase("job", "Succeeded"), "the job to succeed")
    eventually(lambda: not ns.exists(node.pod_netns(failed.metadata.uid)),
               "the finished pod's namespace to go")
    code, log = node.get("/containerLogs/default/oneshot/c")
    assert (code, log) == (200, b"done\n")
    for name in ("oneshot", "job"):
        _delete(api, name)
        eventually(lambda name=name: _gone(api, name), f"{name} to go")


def test_a_container_without_a_command_waits_with_a_clear_reason(node: Node, api: k8s.CoreV1Api) -> None:
    body = _pod("imageonly", [], node=node)
    del body["spec"]["containers"][0]["command"]
    api.create_namespaced_pod("default", body)

    def waiting() -> k8s.V1ContainerStateWaiting | None:
        statuses = api.read_namespaced_pod("imageonly", "default").status.container_statuses or []
        state = statuses[0].state.waiting if statuses else None
        return state if state is not None and state.reason == "CreateContainerConfigError" else None

    state = eventually(waiting, "the container to wait with CreateContainerConfigError")
    assert "neither command nor args" in state.message
    assert api.read_namespaced_pod("imageonly", "default").status.phase == "Pending"
    _delete(api, "imageonly")
    eventually(lambda: _gone(api, "imageonly"), "the pod to go")


def test_logs_and_exec_work_over_the_kubelet_socket(node: Node, api: k8s.CoreV1Api) -> None:
    script = "echo hello; echo oops >&2; i=0; while true; do i=$((i+1)); echo tick $i; sleep 0.2; done"
    api.create_namespaced_pod("default", _pod("talker", ["sh", "-c", script], node=node))
    eventually(lambda: _running_ready(api, "talker"), "the talker pod to run")
    def some_log() -> tuple[int, bytes] | None:
        code, log = node.get("/containerLogs/default/talker/c")
        return (code, log) if log.count(b"tick") >= 3 else None

    code, log = eventually(some_log, "a few lines of log")
    assert code == 200 and log.startswith(b"hello\noops\ntick 1\n")
    code, last = node.get("/containerLogs/default/talker/c?tailLines=1")
    assert code == 200 and last.count(b"\n") == 1 and last.startswith(b"tick ")
    resp = node.request("GET", "/containerLogs/default/talker/c?follow=true&tailLines=0")
    assert resp.status == 200
    followed = b""
    while followed.count(b"tick") < 3:
        followed += resp.read1(4096)
    resp.close()
    code, _ = node.get("/containerLogs/default/talker/c?previous=true")
    assert code == 400
    assert node.get("/containerLogs/default/nosuch/c")[0] == 404

    out, err, code = node.exec("talker", "c", "cat", "/etc/resolv.conf")
    assert code == 0 and f"nameserver {CLUSTER_DNS}".encode() in out and err == b""
    assert node.exec("talker", "c", "sh", "-c", "echo to-err >&2; exit 7") == (b"", b"to-err\n", 7)
    assert node.exec("talker", "c", "cat", stdin=b"round trip")[0] == b"round trip"
    assert node.exec("talker", "c", "sh", "-c", "echo $HOSTNAME")[0] == b"talker\n"
    _delete(api, "talker")


def test_deleting_a_pod_stops_its_processes_gracefully_and_removes_its_namespace(
        node: Node, api: k8s.CoreV1Api) -> None:
    script = "trap 'echo bye; exit 0' TERM; while true; do sleep 0.1; done"
    api.create_namespaced_pod("default", _pod("doomed", ["sh", "-c", script], node=node, grace=10))
    pod = eventually(lambda: _running_ready(api, "doomed"), "the doomed pod to run")
    pid, uid, ip = _pid(pod), pod.metadata.uid, pod.status.pod_ip
    assert ns.exists(node.pod_netns(uid)) and (node.root / "ipam" / ip).exists()
    _delete(api, "doomed")
    eventually(lambda: _gone(api, "doomed"), "the kubelet to finalise the deletion")
    assert not _alive(pid)
    assert not ns.exists(node.pod_netns(uid))
    assert not (node.root / "ipam" / ip).exists()
    eventually(lambda: not (node.root / "pods" / uid).exists(), "the pod's directory to go")


def test_a_restarted_kubelet_adopts_running_pods_and_cleans_up_after_deleted_ones(
        node: Node, api: k8s.CoreV1Api) -> None:
    api.create_namespaced_pod("default", _pod("steady", ["sleep", "3600"], node=node))
    api.create_namespaced_pod("default", _pod("ghost", ["sleep", "3600"], node=node))
    steady = eventually(lambda: _running_ready(api, "steady"), "the steady pod to run")
    ghost = eventually(lambda: _running_ready(api, "ghost"), "the ghost pod to run")
    node.stop()
    assert _alive(_pid(steady)) and _alive(_pid(ghost)), "stopping the kubelet must not stop its pods"
    api.delete_namespaced_pod("ghost", "default", grace_period_seconds=0)  # while no kubelet runs
    eventually(lambda: _gone(api, "ghost"), "the force-deleted pod to go from the API")
    node.start()
    eventually(lambda: not _alive(_pid(ghost)), "the deleted pod's process to be killed")
    eventually(lambda: not ns.exists(node.pod_netns(ghost.metadata.uid)), "the deleted pod's namespace to go")
    assert not (node.root / "ipam" / ghost.status.pod_ip).exists()
    time.sleep(1)  # let the new kubelet report at least once
    after = eventually(lambda: _running_ready(api, "steady"), "the steady pod to stay ready")
    assert _pid(after) == _pid(steady) and after.status.container_statuses[0].restart_count == 0
    assert after.status.pod_ip == steady.status.pod_ip
    assert node.exec("steady", "c", "sh", "-c", "echo $HOSTNAME")[0] == b"steady\n"
    # The adopted container is still watched: when it dies, it is restarted.
    os.kill(_pid(steady), signal.SIGKILL)

    def restarted() -> k8s.V1Pod | None:
        pod = api.read_namespaced_pod("steady", "default")
        status = pod.status.container_statuses[0]
        return pod if status.restart_count == 1 and status.state.running is not None else None

    pod = eventually(restarted, "the adopted container to be restarted")
    assert pod.status.container_statuses[0].last_state.terminated.reason == "ContainerStatusUnknown"
    _delete(api, "steady")


def test_healthz_answers_inside_the_node_namespace(node: Node) -> None:
    code = "import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:10248/healthz').read().decode())"
    def healthz() -> str | None:
        argv = ["nsenter", f"--net={ns.path(node.netns)}", "--", sys.executable, "-c", code]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=30)
        return done.stdout if done.returncode == 0 else None

    out = eventually(healthz, "the kubelet's healthz port")
    assert out.strip() == "ok"


def test_a_pod_bound_after_creation_through_the_binding_subresource_runs(node: Node,
                                                                        api: k8s.CoreV1Api) -> None:
    body = _pod("late", ["sleep", "3600"], node=node)
    del body["spec"]["nodeName"]
    api.create_namespaced_pod("default", body)
    time.sleep(1)
    assert api.read_namespaced_pod("late", "default").status.container_statuses is None
    binding = k8s.V1Binding(metadata=k8s.V1ObjectMeta(name="late"),
                            target=k8s.V1ObjectReference(api_version="v1", kind="Node", name=node.name))
    # The answer is a Status, which this client cannot read as a Binding: take it raw.
    api.create_namespaced_pod_binding("late", "default", binding, _preload_content=False)
    pod = eventually(lambda: _running_ready(api, "late"), "the bound pod to run")
    assert ipaddress.ip_address(pod.status.pod_ip) in ipaddress.ip_network(POD_CIDR)
    _delete(api, "late")
