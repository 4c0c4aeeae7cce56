"""One cluster for the whole e2e session: `netplane up --nodes 2 --detach`, torn down with
`netplane down`, which must leave the host exactly as it was."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest
from kubernetes import client as k8s
from kubernetes import config as k8s_config

from control.apiserver.process import free_port
from control.cluster.layout import Layout
from tests.polling import poll

T = TypeVar("T")
NETPLANE = [sys.executable, "-m", "netplane.cli.main"]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/e2e/" in str(item.fspath):
            item.add_marker(pytest.mark.root)
            item.add_marker(pytest.mark.slow)
            if os.geteuid() != 0:
                item.add_marker(pytest.mark.skip(reason="netplane up creates network namespaces: needs root"))


def _host_state() -> tuple[str, str]:
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    links = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True,
                           check=True).stdout
    # Counters and link flags of the host's own links change by themselves; names do not.
    names = "\n".join(sorted(line.split(":")[1].strip() for line in links.splitlines()))
    return netns, names


# What counts as "not yet" while waiting here.
_NOT_YET = (k8s.ApiException, AssertionError, KeyError, IndexError)


def eventually(check: Callable[[], T | None], what: str, timeout: float = 90.0) -> T:
    """Polls `check` until it returns something truthy; no timing is asserted."""
    return poll(check, what, timeout=timeout, interval=0.5, not_yet=_NOT_YET)


@contextlib.contextmanager
def running_cluster(state: Path, *extra: str) -> Iterator[Layout]:
    """`netplane up --nodes 2 --detach` with `extra` flags; `netplane down` afterwards, which
    must remove every namespace it made."""
    # Free host ports for the ingress gateway: clusters of one session may run side by side.
    ingress_ports = ["--ingress-port", f"127.0.0.1:{free_port()}",
                     "--ingress-tls-port", f"127.0.0.1:{free_port()}"]
    up = subprocess.run([*NETPLANE, "up", "--nodes", "2", "--detach", "--state-dir", str(state),
                         "--api-port", str(free_port()), "--node-monitor-grace-period", "8s", *ingress_ports,
                         *extra],
                        capture_output=True, text=True, timeout=300)
    try:
        assert up.returncode == 0, f"netplane up failed:\n{up.stdout}\n{up.stderr}"
        assert "export KUBECONFIG=" in up.stdout
        yield Layout(state)
    finally:
        record = Layout(state).read_record()
        down = subprocess.run([*NETPLANE, "down", "--state-dir", str(state)],
                              capture_output=True, text=True, timeout=300)
        assert down.returncode == 0, down.stderr
        if record is not None:
            left = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
            assert f"np-{record.cluster_id}-" not in left, "netplane down left namespaces behind"


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Layout]:
    before = _host_state()
    with running_cluster(tmp_path_factory.mktemp("cluster") / "state") as layout:
        yield layout
    assert _host_state() == before, "netplane down left namespaces or links behind"


@pytest.fixture(scope="session")
def api(cluster: Layout) -> Iterator[k8s.ApiClient]:
    client = k8s_config.new_client_from_config(config_file=str(cluster.admin_kubeconfig))
    yield client
    client.close()


def ctl(cluster: Layout, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*NETPLANE, "ctl", "--kubeconfig", str(cluster.admin_kubeconfig), *args],
                          capture_output=True, text=True, timeout=timeout)


