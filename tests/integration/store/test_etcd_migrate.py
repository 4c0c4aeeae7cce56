"""`netplane store migrate` from an apiserver's SQLite file to etcd: every object arrives,
an apiserver on etcd then serves them (allocations included), and bad input gets one line
and an exit code."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from control.apiserver.process import ApiServerProcess
from control.store import open_store
from control.store.etcd_process import EtcdCluster
from netplane.client.rest import ApiClient
from tests.integration.store.etcd_fixtures import etcd, etcd_clusters  # noqa: F401

ROOT = Path(__file__).parents[3]


def _netplane(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "netplane.cli.main", *args], capture_output=True,
                          text=True, cwd=ROOT, timeout=120)


def _svc(name: str) -> dict[str, object]:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
            "spec": {"type": "NodePort", "selector": {"app": name}, "ports": [{"port": 80}]}}


@pytest.mark.slow
async def test_an_apiservers_sqlite_store_moves_to_etcd_and_is_served_from_there(
        tmp_path: Path, etcd: EtcdCluster) -> None:  # noqa: F811
    data = tmp_path / "api"
    with ApiServerProcess(data) as server:
        async with ApiClient.from_kubeconfig(server.kubeconfig) as api:
            await api.create("/api/v1/namespaces", {"metadata": {"name": "shop"}})
            before = [await api.create("/api/v1/namespaces/shop/services", _svc(f"s{i}")) for i in range(5)]
            await api.create("/api/v1/namespaces/shop/configmaps", {
                "metadata": {"name": "cfg", "labels": {"a": "b"}}, "data": {"big": "x" * 100_000}})
    sqlite_url = f"sqlite://{data / 'state.db'}"

    done = _netplane("store", "migrate", "--from", sqlite_url, "--to", etcd.url())
    assert done.returncode == 0, done.stderr
    source, target = await open_store(sqlite_url), await open_store(etcd.url(compact_interval=0))
    try:
        copied = {kv.key: kv.value for kv in (await source.list("")).items}
        assert {kv.key: kv.value for kv in (await target.list("")).items} == copied
    finally:
        await source.close()
        await target.close()
    assert f"copied {len(copied)} objects (0 replaced)" in done.stdout

    again = _netplane("store", "migrate", "--from", sqlite_url, "--to", etcd.url())
    assert again.returncode == 1
    assert again.stderr.strip() == (
        f"netplane store: the target store holds {len(copied)} keys already ({etcd.url()}); migrate "
        "into an empty store, or pass --overwrite to replace the keys it holds")
    over = _netplane("store", "migrate", "--from", sqlite_url, "--to", etcd.url(), "--overwrite")
    assert over.returncode == 0 and f"({len(copied)} replaced)" in over.stdout, over.stderr

    # The same data dir (certificates, tokens) with the store on etcd now.
    with ApiServerProcess(data, extra_args=["--store", etcd.url()]) as server:
        async with ApiClient.from_kubeconfig(server.kubeconfig) as api:
            items = (await api.list("/api/v1/namespaces/shop/services"))["items"]
            assert {s["metadata"]["uid"]: s["spec"]["clusterIP"] for s in items} == {
                s["metadata"]["uid"]: s["spec"]["clusterIP"] for s in before}
            cfg = await api.get("/api/v1/namespaces/shop/configmaps/cfg")
            assert cfg["data"]["big"] == "x" * 100_000
            # The reservations came along: a new Service gets values nobody holds.
            new = await api.create("/api/v1/namespaces/shop/services", _svc("new"))
            assert new["spec"]["clusterIP"] not in {s["spec"]["clusterIP"] for s in before}
            assert new["spec"]["ports"][0]["nodePort"] not in {
                s["spec"]["ports"][0]["nodePort"] for s in before}


@pytest.mark.parametrize(("args", "code", "message"), [
    (["--from", "sqlite:///nowhere/state.db", "--to", "etcd://127.0.0.1:2379"], 1,
     "netplane store: --from: no such file: /nowhere/state.db"),
    (["--from", "mysql://db", "--to", "etcd://127.0.0.1:2379"], 2,
     "netplane store: --from: store URL 'mysql://db': unknown scheme 'mysql'; use sqlite:///PATH or "
     "etcd://HOST:PORT[,HOST:PORT...]"),
    (["--from", "etcd://127.0.0.1:2379", "--to", "etcd://127.0.0.1:port"], 2,
     "netplane store: --to: store URL 'etcd://127.0.0.1:port': '127.0.0.1:port' is not HOST:PORT"),
    (["--from", "etcd://127.0.0.1:2379", "--to", "etcd://127.0.0.1:2379"], 2,
     "netplane store: --from and --to name the same store"),
])
def test_bad_migrate_arguments_get_one_line_and_an_exit_code(
        args: list[str], code: int, message: str) -> None:
    done = _netplane("store", "migrate", *args)
    assert (done.returncode, done.stderr.strip()) == (code, message)


def test_an_unreachable_target_gets_one_line_naming_it(tmp_path: Path) -> None:
    (tmp_path / "state.db").touch()
    done = _netplane("store", "migrate", "--from", f"sqlite://{tmp_path}/state.db",
                     "--to", "etcd://127.0.0.1:9", "--connect-timeout", "1")
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("netplane store: --to: cannot open etcd://127.0.0.1:9: ")
    assert "no etcd member of 127.0.0.1:9 answered" in lines[0]
