"""`netplane ctl` as a user runs it, against a real apiserver."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from control.apiserver.process import ApiServerProcess

MANIFEST = """\
apiVersion: v1
kind: Namespace
metadata: {name: shop}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop, labels: {app: web}}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Pod
metadata: {name: web-0, namespace: shop, labels: {app: web}}
spec:
  containers: [{name: web, image: netplane/agnhost}]
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServerProcess]:
    with ApiServerProcess(tmp_path_factory.mktemp("ctl") / "data") as srv:
        yield srv


def ctl(server: ApiServerProcess, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "netplane.cli.main", "ctl", "--kubeconfig",
                           str(server.kubeconfig), *args], capture_output=True, text=True, timeout=60)


def test_apply_get_describe_delete(server: ApiServerProcess, tmp_path: Path) -> None:
    (tmp_path / "app").mkdir()
    manifest = tmp_path / "app" / "shop.yaml"
    manifest.write_text(MANIFEST)
    out = ctl(server, "apply", "-f", str(tmp_path / "app"))
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["namespace/shop created", "service/web created", "pod/web-0 created"]
    again = ctl(server, "apply", "-f", str(manifest))
    assert again.stdout.splitlines() == ["namespace/shop unchanged", "service/web unchanged",
                                         "pod/web-0 unchanged"]
    manifest.write_text(MANIFEST.replace("port: 80,", "port: 81,"))
    changed = ctl(server, "apply", "-f", str(manifest))
    assert "service/web configured" in changed.stdout.splitlines()

    table = ctl(server, "get", "svc", "-n", "shop")
    header = ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"]
    assert table.stdout.split("\n")[0].split() == header
    assert "81/TCP" in table.stdout
    wide = ctl(server, "get", "services", "-n", "shop", "-o", "wide")
    assert "SELECTOR" in wide.stdout and "app=web" in wide.stdout
    as_json = json.loads(ctl(server, "get", "svc", "web", "-n", "shop", "-o", "json").stdout)
    assert as_json["spec"]["ports"][0]["port"] == 81
    as_yaml = yaml.safe_load(ctl(server, "get", "pods", "-n", "shop", "-o", "yaml").stdout)
    assert [p["metadata"]["name"] for p in as_yaml["items"]] == ["web-0"]
    every = ctl(server, "get", "pods", "-A")
    assert every.stdout.split("\n")[0].split()[0] == "NAMESPACE"
    described = ctl(server, "describe", "service", "web", "-n", "shop")
    assert re.search(r"^Selector: +app=web$", described.stdout, re.M) and "81/TCP" in described.stdout

    gone = ctl(server, "delete", "pod", "web-0", "-n", "shop")
    assert gone.stdout.strip() == 'pod "web-0" deleted'  # kubectl's wording
    missing = ctl(server, "get", "pod", "web-0", "-n", "shop")
    assert missing.returncode == 1 and "NotFound" in missing.stderr


def test_bad_input_is_one_line_and_a_nonzero_exit(server: ApiServerProcess, tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text("kind: Service\nmetadata: {name: x}\n")
    for args, message in [
        (("apply", "-f", str(tmp_path / "bad.yaml")), "has no apiVersion"),
        (("apply", "-f", str(tmp_path / "missing.yaml")), "no such file"),
        (("get", "widgets"), 'doesn\'t have a resource type "widgets"'),
    ]:
        out = ctl(server, *args)
        assert out.returncode != 0
        assert len(out.stderr.strip().splitlines()) == 1 and message in out.stderr
    bad_config = subprocess.run([sys.executable, "-m", "netplane.cli.main", "ctl", "--kubeconfig",
                                 str(tmp_path / "nope"), "get", "pods"], capture_output=True, text=True)
    assert bad_config.returncode == 1 and "no kubeconfig at" in bad_config.stderr


def test_an_invalid_object_is_reported_with_the_servers_reason(server: ApiServerProcess,
                                                               tmp_path: Path) -> None:
    (tmp_path / "svc.yaml").write_text("apiVersion: v1\nkind: Service\nmetadata: {name: bad}\n"
                                       "spec: {ports: [{port: 70000}]}\n")
    out = ctl(server, "apply", "-f", str(tmp_path / "svc.yaml"))
    assert out.returncode == 1
    assert "spec.ports[0].port" in out.stderr
