"""The example `netplane up` suggests works as printed: applied with `netplane ctl apply`,
its pods start, pass their readiness probes and answer HTTP with their own names."""

from __future__ import annotations

from pathlib import Path

from kubernetes import client as k8s

from control.cluster.layout import Layout
from tests.e2e.conftest import ctl, eventually

WEB = Path(__file__).resolve().parents[2] / "examples" / "web.yaml"


def _ready_web_pods(core: k8s.CoreV1Api) -> list[k8s.V1Pod] | None:
    pods = [p for p in core.list_namespaced_pod("default", label_selector="app=web").items
            if not p.metadata.deletion_timestamp]
    ready = [p for p in pods if p.status.phase == "Running" and p.status.pod_ip and any(
        c.type == "Ready" and c.status == "True" for c in p.status.conditions or [])]
    return ready if len(ready) == 2 == len(pods) else None


def test_the_web_example_runs_and_its_pods_answer_with_their_names(cluster: Layout,
                                                                   api: k8s.ApiClient) -> None:
    core = k8s.CoreV1Api(api)
    applied = ctl(cluster, "apply", "-f", str(WEB))
    assert applied.returncode == 0, applied.stderr
    try:
        pods = eventually(lambda: _ready_web_pods(core), "the two web pods to be Ready", timeout=120)
        client, server = pods
        answer = ctl(cluster, "exec", client.metadata.name, "--", "curl", "-s",
                     f"http://{server.status.pod_ip}:8080/")
        assert (answer.returncode, answer.stdout.strip()) == (0, server.metadata.name), answer.stderr
    finally:
        ctl(cluster, "delete", "-f", str(WEB), "--wait=false")
