"""Unmodified `kubectl` against `netplane apiserver`."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from control.apiserver.process import ApiServerProcess

SERVICE_YAML = """\
apiVersion: v1
kind: Service
metadata:
  name: web
  labels: {app: web}
spec:
  selector: {app: web}
  ports:
  - name: http
    port: 80
    targetPort: 8080
---
apiVersion: v1
kind: Pod
metadata:
  name: web-1
  labels: {app: web}
spec:
  containers:
  - name: server
    image: agnhost
    ports:
    - containerPort: 8080
"""


class Kubectl:
    def __init__(self, binary: str, server: ApiServerProcess, namespace: str) -> None:
        self.base = [binary, "--kubeconfig", str(server.kubeconfig), "-n", namespace]

    def __call__(self, *args: str, check: bool = True, timeout: float = 30,
                 stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([*self.base, *args], capture_output=True, text=True,
                              timeout=timeout, input=stdin)
        if check and proc.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({proc.returncode}):\n"
                                 f"{proc.stdout}\n{proc.stderr}")
        return proc


@pytest.fixture
def kubectl(kubectl_bin: str, apiserver: ApiServerProcess, namespace: str) -> Kubectl:
    return Kubectl(kubectl_bin, apiserver, namespace)


def test_kubectl_create_get_and_delete(kubectl: Kubectl, tmp_path: Path) -> None:
    (tmp_path / "web.yaml").write_text(SERVICE_YAML)
    out = kubectl("create", "-f", str(tmp_path / "web.yaml")).stdout
    assert "service/web created" in out and "pod/web-1 created" in out
    table = kubectl("get", "services").stdout.splitlines()
    assert table[0].split() == ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"]
    assert table[1].split()[:2] == ["web", "ClusterIP"]
    assert table[1].split()[4] == "80/TCP"
    wide = kubectl("get", "svc", "web", "-o", "wide").stdout.splitlines()
    assert wide[0].split()[-1] == "SELECTOR" and wide[1].split()[-1] == "app=web"
    pods = kubectl("get", "pods").stdout.splitlines()
    assert pods[0].split() == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert pods[1].split()[:3] == ["web-1", "0/1", "Pending"]
    as_yaml = yaml.safe_load(kubectl("get", "svc", "web", "-o", "yaml").stdout)
    assert as_yaml["spec"]["ports"][0]["targetPort"] == 8080
    as_json = json.loads(kubectl("get", "svc", "-o", "json").stdout)
    assert [i["metadata"]["name"] for i in as_json["items"]] == ["web"]
    assert "deleted" in kubectl("delete", "-f", str(tmp_path / "web.yaml")).stdout
    assert "No resources found" in kubectl("get", "svc").stderr


def test_kubectl_apply_creates_configures_and_leaves_unchanged(
        kubectl: Kubectl, tmp_path: Path) -> None:
    manifest = tmp_path / "web.yaml"
    manifest.write_text(SERVICE_YAML)
    assert "service/web created" in kubectl("apply", "-f", str(manifest)).stdout
    assert "service/web unchanged" in kubectl("apply", "-f", str(manifest)).stdout
    manifest.write_text(SERVICE_YAML.replace("targetPort: 8080", "targetPort: 9090"))
    assert "service/web configured" in kubectl("apply", "-f", str(manifest)).stdout
    svc = json.loads(kubectl("get", "svc", "web", "-o", "json").stdout)
    assert svc["spec"]["ports"][0]["targetPort"] == 9090
    assert "kubectl.kubernetes.io/last-applied-configuration" in svc["metadata"]["annotations"]


def test_kubectl_describe_service(kubectl: Kubectl, tmp_path: Path) -> None:
    (tmp_path / "web.yaml").write_text(SERVICE_YAML)
    kubectl("apply", "-f", str(tmp_path / "web.yaml"))
    out = kubectl("describe", "service", "web").stdout
    assert "Name:" in out and "web" in out
    assert "TargetPort:" in out and "8080/TCP" in out


def test_kubectl_replace_with_a_stale_resource_version_conflicts(
        kubectl: Kubectl, tmp_path: Path) -> None:
    (tmp_path / "web.yaml").write_text(SERVICE_YAML)
    kubectl("apply", "-f", str(tmp_path / "web.yaml"))
    stale = kubectl("get", "svc", "web", "-o", "yaml").stdout
    kubectl("label", "svc", "web", "tier=front")
    (tmp_path / "stale.yaml").write_text(stale)
    proc = kubectl("replace", "-f", str(tmp_path / "stale.yaml"), check=False)
    assert proc.returncode != 0
    assert "the object has been modified" in proc.stderr


def test_kubectl_get_watch_streams_changes(kubectl: Kubectl, tmp_path: Path) -> None:
    (tmp_path / "web.yaml").write_text(SERVICE_YAML)
    watcher = subprocess.Popen([*kubectl.base, "get", "svc", "-w", "--request-timeout=8s"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(1.0)
        kubectl("apply", "-f", str(tmp_path / "web.yaml"))
        kubectl("label", "svc", "web", "tier=front")
    finally:
        out, _err = watcher.communicate(timeout=20)
    names = [line.split()[0] for line in out.splitlines()[1:] if line.strip()]
    assert names.count("web") >= 2


def test_kubectl_api_resources_lists_every_kind(kubectl: Kubectl) -> None:
    out = kubectl("api-resources").stdout
    for name in ("pods", "services", "endpointslices", "deployments", "ingresses", "leases",
                 "namespaces", "nodes", "replicasets", "configmaps", "secrets"):
        assert f"\n{name} " in out or out.startswith(f"{name} ")
    assert "svc" in out and "deploy" in out


def test_kubectl_reports_server_side_validation_errors(kubectl: Kubectl, tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text(SERVICE_YAML.split("---")[0].replace("port: 80",
                                                                            "port: 0"))
    proc = kubectl("apply", "-f", str(tmp_path / "bad.yaml"), check=False)
    assert proc.returncode != 0
    assert "spec.ports[0].port" in proc.stderr and "Invalid value" in proc.stderr


_KINDS = {
    "namespaces": "apiVersion: v1\nkind: Namespace\nmetadata: {name: NAME}\n",
    "services": "apiVersion: v1\nkind: Service\nmetadata: {name: NAME}\n"
                "spec: {ports: [{port: 80}]}\n",
    "pods": "apiVersion: v1\nkind: Pod\nmetadata: {name: NAME}\n"
            "spec: {containers: [{name: c, image: i}]}\n",
    "endpointslices": "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: NAME\n"
                      "  labels: {kubernetes.io/service-name: web}\naddressType: IPv4\n"
                      "endpoints: [{addresses: [10.244.1.5]}]\nports: [{name: http, port: 8080}]\n",
}


@pytest.mark.parametrize("plural", sorted(_KINDS))
def test_kubectl_round_trips_every_core_kind(kubectl: Kubectl, tmp_path: Path, plural: str,
                                             namespace: str) -> None:
    name = f"k-{namespace[-6:]}"
    manifest = tmp_path / "obj.yaml"
    manifest.write_text(_KINDS[plural].replace("NAME", name))
    watcher = subprocess.Popen([*kubectl.base, "get", plural, "-w", "--request-timeout=10s", "-o", "name",
                                f"--field-selector=metadata.name={name}"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(1.0)
        assert "created" in kubectl("create", "-f", str(manifest)).stdout
        listed = json.loads(kubectl("get", plural, "-o", "json").stdout)
        assert name in [i["metadata"]["name"] for i in listed["items"]]
        got = yaml.safe_load(kubectl("get", plural, name, "-o", "yaml").stdout)
        assert got["metadata"]["resourceVersion"]
        stale = tmp_path / "stale.yaml"
        stale.write_text(yaml.safe_dump(got))
        assert "labeled" in kubectl("label", plural, name, "edited=yes").stdout
        conflict = kubectl("replace", "-f", str(stale), check=False)
        assert conflict.returncode != 0 and "the object has been modified" in conflict.stderr
        assert "deleted" in kubectl("delete", plural, name, "--wait=false").stdout
        time.sleep(1.0)  # the watch has the events by now; no need to wait out its timeout
    finally:
        watcher.terminate()
        out, _err = watcher.communicate(timeout=30)
    assert len([line for line in out.splitlines() if line.endswith(f"/{name}")]) >= 2
