"""A whole cluster through the CLI and real clients: `netplane up --nodes 2 --detach`,
a Deployment of the built-in test server behind a Service, pod-to-pod traffic across
nodes, scaling, replacement, readiness, a dead kubelet, and `netplane down` leaving the
host exactly as it was."""

from __future__ import annotations

import ipaddress
import sys
from typing import Any

from kubernetes import client as k8s

from control.cluster.layout import Layout
from tests.e2e.conftest import ctl, eventually


def _deployment(replicas: int) -> dict[str, Any]:
    container = {
        "name": "netexec", "image": "netplane/agnhost",
        "command": [sys.executable, "-m", "netplane.cli.main", "agnhost", "netexec",
                    "--http-port", "8080"],
        "ports": [{"name": "http", "containerPort": 8080}],
        "readinessProbe": {"httpGet": {"path": "/readyz", "port": 8080},
                           "periodSeconds": 1, "failureThreshold": 1},
    }
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "netexec", "namespace": "default"},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "netexec"}},
                     "template": {"metadata": {"labels": {"app": "netexec"}},
                                  "spec": {"containers": [container]}}}}


def _service() -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "netexec"},
            "spec": {"selector": {"app": "netexec"},
                     "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}}


def _running_pods(core: k8s.CoreV1Api, want: int) -> list[k8s.V1Pod] | None:
    pods = [p for p in core.list_namespaced_pod("default", label_selector="app=netexec").items
            if not p.metadata.deletion_timestamp]
    ready = [p for p in pods if p.status.phase == "Running" and p.status.pod_ip and any(
        c.type == "Ready" and c.status == "True" for c in p.status.conditions or [])]
    return ready if len(pods) == want and len(ready) == want else None


def _slice_endpoints(api: k8s.ApiClient) -> list[Any]:
    slices = k8s.DiscoveryV1Api(api).list_namespaced_endpoint_slice(
        "default", label_selector="kubernetes.io/service-name=netexec").items
    return [ep for s in slices for ep in s.endpoints or []]


def _ready_ips(api: k8s.ApiClient) -> set[str]:
    return {ep.addresses[0] for ep in _slice_endpoints(api) if ep.conditions.ready}


def _scale(api: k8s.ApiClient, replicas: int) -> None:
    k8s.AppsV1Api(api).patch_namespaced_deployment_scale(
        "netexec", "default", {"spec": {"replicas": replicas}})


def test_a_deployment_behind_a_service_runs_across_both_nodes(cluster: Layout, api: k8s.ApiClient) -> None:
    core = k8s.CoreV1Api(api)
    k8s.AppsV1Api(api).create_namespaced_deployment("default", _deployment(3))
    core.create_namespaced_service("default", _service())
    pods = eventually(lambda: _running_pods(core, 3), "3 running, ready pods")
    nodes = {n.metadata.name: n for n in core.list_node().items}
    for pod in pods:
        cidr = ipaddress.ip_network(nodes[pod.spec.node_name].spec.pod_cidr)
        assert ipaddress.ip_address(pod.status.pod_ip) in cidr
    assert len({p.spec.node_name for p in pods}) == 2, "the scheduler did not spread the pods"
    ips = {p.status.pod_ip for p in pods}
    eventually(lambda: _ready_ips(api) == ips, "an EndpointSlice with the 3 ready pods")


def test_pods_reach_each_other_across_nodes(cluster: Layout, api: k8s.ApiClient) -> None:
    core = k8s.CoreV1Api(api)
    pods = eventually(lambda: _running_pods(core, 3), "3 running pods")
    client = next(p for p in pods if p.spec.node_name == "node-1")
    for target in pods:
        url = f"http://{target.status.pod_ip}:8080/hostname"
        code = f"import urllib.request as u; print(u.urlopen({url!r}, timeout=5).read().decode())"
        out = ctl(cluster, "exec", client.metadata.name, "--", sys.executable, "-c", code)
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip() == target.metadata.name


def test_slices_follow_scaling_and_a_deleted_pod_is_replaced(cluster: Layout, api: k8s.ApiClient) -> None:
    core = k8s.CoreV1Api(api)
    _scale(api, 5)
    pods = eventually(lambda: _running_pods(core, 5), "5 running pods")
    eventually(lambda: _ready_ips(api) == {p.status.pod_ip for p in pods}, "5 ready endpoints")
    _scale(api, 1)
    pods = eventually(lambda: _running_pods(core, 1), "1 running pod")
    eventually(lambda: _ready_ips(api) == {pods[0].status.pod_ip}, "1 ready endpoint")
    core.delete_namespaced_pod(pods[0].metadata.name, "default")
    replaced = eventually(lambda: [p for p in _running_pods(core, 1) or []
                                   if p.metadata.name != pods[0].metadata.name], "a replacement pod")
    eventually(lambda: _ready_ips(api) == {replaced[0].status.pod_ip}, "the replacement's endpoint")


def test_failing_readiness_takes_a_pod_out_of_the_slice(cluster: Layout, api: k8s.ApiClient) -> None:
    core = k8s.CoreV1Api(api)
    pod = eventually(lambda: _running_pods(core, 1), "1 running pod")[0]
    ip = pod.status.pod_ip

    def toggle(path: str) -> None:
        code = f"import urllib.request; urllib.request.urlopen('http://{ip}:8080{path}', timeout=5).read()"
        out = ctl(cluster, "exec", pod.metadata.name, "--", sys.executable, "-c", code)
        assert out.returncode == 0, out.stderr

    toggle("/fail-readiness")
    eventually(lambda: ip not in _ready_ips(api) and any(
        ep.addresses[0] == ip for ep in _slice_endpoints(api)), "the endpoint to turn not-ready")
    toggle("/pass-readiness")
    eventually(lambda: ip in _ready_ips(api), "the endpoint to turn ready again")


def test_logs_are_served_through_the_api(cluster: Layout, api: k8s.ApiClient) -> None:
    core = k8s.CoreV1Api(api)
    pod = eventually(lambda: _running_pods(core, 1), "1 running pod")[0]
    text = core.read_namespaced_pod_log(pod.metadata.name, "default")
    out = ctl(cluster, "logs", pod.metadata.name)
    assert out.returncode == 0, out.stderr
    assert out.stdout == text
