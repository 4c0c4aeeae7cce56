"""Two apiserver processes on one 3-member etcd cluster, on loopback: each serves what the
other wrote, watches included; Service allocations never clash; an etcd member or an
apiserver may die and what was acknowledged stays, while the rest keeps serving.

The service range is a /24 and the node-port range 300 ports, so that the two apiservers'
picks collide often and the store has to settle who gets a value."""

from __future__ import annotations

import asyncio
import ipaddress
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from control.apiserver.process import ApiServerProcess
from control.store import open_store
from control.store.etcd_process import EtcdCluster
from netplane.client.rest import ApiClient, ApiError
from tests.integration.store.etcd_fixtures import require_etcd

TIMEOUT = 60.0
SERVICE_CIDR = "10.96.0.0/24"
NODE_PORTS = (30000, 30299)


@dataclass
class Setup:
    etcd: EtcdCluster
    apis: list[ApiServerProcess]


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    require_etcd()
    base = tmp_path_factory.mktemp("etcd-apiservers")
    etcd = EtcdCluster(base / "etcd", size=3)
    etcd.start()
    args = ["--store", etcd.url(), "--service-cidr", SERVICE_CIDR,
            "--service-node-port-range", f"{NODE_PORTS[0]}-{NODE_PORTS[1]}"]
    apis = [ApiServerProcess(base / f"api{i}", extra_args=args) for i in (1, 2)]
    try:
        for api in apis:
            api.start()
        yield Setup(etcd, apis)
    finally:
        for api in apis:
            api.stop()
        etcd.stop()


def _client(api: ApiServerProcess) -> ApiClient:
    return ApiClient.from_kubeconfig(api.kubeconfig)


async def _namespace(api: ApiClient) -> str:
    name = f"t-{uuid.uuid4().hex[:8]}"
    await api.create("/api/v1/namespaces", {"metadata": {"name": name}})
    return name


def _cm(name: str, value: str = "v") -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"k": value}}


async def test_a_watch_on_one_apiserver_sees_the_writes_made_through_the_other(setup: Setup) -> None:
    async with _client(setup.apis[0]) as one, _client(setup.apis[1]) as two:
        ns = await _namespace(two)
        path = f"/api/v1/namespaces/{ns}/configmaps"
        rv = (await one.list(path))["metadata"]["resourceVersion"]
        seen: list[tuple[str, str, str]] = []

        async def watch() -> None:
            async for ev in one.watch(path, {"resourceVersion": rv, "timeoutSeconds": "60"}):
                if ev["type"] != "BOOKMARK":
                    meta = ev["object"]["metadata"]
                    seen.append((ev["type"], meta["name"], meta["resourceVersion"]))
                if len(seen) == 4:
                    return

        task = asyncio.create_task(watch())
        a = await two.create(path, _cm("a"))
        a2 = await two.update(f"{path}/a", {**a, "data": {"k": "changed"}})
        await two.delete(f"{path}/a")
        b = await two.create(path, _cm("b"))
        await asyncio.wait_for(task, TIMEOUT)
        rvs = [a["metadata"]["resourceVersion"], a2["metadata"]["resourceVersion"]]
        assert seen[:2] == [("ADDED", "a", rvs[0]), ("MODIFIED", "a", rvs[1])]
        assert [(t, n) for t, n, _ in seen[2:]] == [("DELETED", "a"), ("ADDED", "b")]
        assert seen[3][2] == b["metadata"]["resourceVersion"]
        assert (await one.get(f"{path}/b"))["metadata"]["resourceVersion"] == seen[3][2]


async def test_200_services_created_at_once_through_both_apiservers_get_distinct_ips_and_ports(
        setup: Setup) -> None:
    async with _client(setup.apis[0]) as one, _client(setup.apis[1]) as two:
        ns = await _namespace(one)
        path = f"/api/v1/namespaces/{ns}/services"

        async def create(api: ApiClient, i: int) -> dict[str, Any]:
            return await api.create(path, {
                "apiVersion": "v1", "kind": "Service", "metadata": {"name": f"svc-{i:03d}"},
                "spec": {"type": "NodePort", "selector": {"app": "x"}, "ports": [{"port": 80}]}})

        sem = asyncio.Semaphore(32)

        async def bounded(api: ApiClient, i: int) -> dict[str, Any]:
            async with sem:
                return await create(api, i)

        created = await asyncio.wait_for(asyncio.gather(
            *(bounded(one if i % 2 else two, i) for i in range(200))), TIMEOUT * 2)
        ips = [svc["spec"]["clusterIP"] for svc in created]
        ports = [svc["spec"]["ports"][0]["nodePort"] for svc in created]
        assert len(set(ips)) == 200 and len(set(ports)) == 200
        assert all(ipaddress.ip_address(ip) in ipaddress.ip_network(SERVICE_CIDR) for ip in ips)
        assert all(NODE_PORTS[0] <= p <= NODE_PORTS[1] for p in ports)
        listed = (await two.list(path))["items"]
        assert sorted(s["spec"]["clusterIP"] for s in listed) == sorted(ips)
    # Every value is held by exactly its Service's reservation key in etcd.
    store = await open_store(setup.etcd.url(compact_interval=0))
    try:
        held = {kv.key.rsplit("/", 1)[1]: orjson.loads(kv.value)["owner"]
                for prefix in ("/registry/ipaddresses/", "/registry/servicenodeports/")
                for kv in (await store.list(prefix)).items}
    finally:
        await store.close()
    for svc, ip, port in zip(created, ips, ports, strict=True):
        owner = f"{ns}/{svc['metadata']['name']}"
        assert held[ip] == owner and held[str(port)] == owner


async def _write_until(api: ApiClient, path: str, acked: dict[str, str], errors: list[str],
                       stop: asyncio.Event, tag: str) -> None:
    i = 0
    while not stop.is_set():
        name = f"{tag}-{i}"
        i += 1
        try:
            acked[name] = (await api.create(path, _cm(name)))["metadata"]["resourceVersion"]
        except (TimeoutError, ApiError, OSError, aiohttp.ClientError) as exc:
            errors.append(f"{name}: {exc}")
            await asyncio.sleep(0.05)


async def _until(predicate: Any) -> None:
    async def wait() -> None:
        while not predicate():  # noqa: ASYNC110
            await asyncio.sleep(0.02)

    await asyncio.wait_for(wait(), TIMEOUT)


@pytest.mark.slow
async def test_killing_an_etcd_member_loses_no_acknowledged_write_and_both_apiservers_keep_serving(
        setup: Setup) -> None:
    async with _client(setup.apis[0]) as one, _client(setup.apis[1]) as two:
        ns = await _namespace(one)
        path = f"/api/v1/namespaces/{ns}/configmaps"
        acked: list[dict[str, str]] = [{}, {}]
        errors: list[str] = []
        stop = asyncio.Event()
        writers = [asyncio.create_task(_write_until(api, path, acked[i], errors, stop, f"w{i}{j}"))
                   for i, api in enumerate((one, two)) for j in range(4)]
        try:
            await _until(lambda: min(map(len, acked)) >= 100)
            setup.etcd.kill(0)  # the member both apiservers talk to
            before = [len(a) for a in acked]
            await _until(lambda: all(len(a) >= n + 100 for a, n in zip(acked, before, strict=True)))
        finally:
            stop.set()
            await asyncio.wait_for(asyncio.gather(*writers), TIMEOUT)
        # In-flight writes failed over to another member: none failed.
        assert errors == []
        every = {**acked[0], **acked[1]}
        for api in (one, two):
            items = (await api.list(path))["items"]
            assert {i["metadata"]["name"]: i["metadata"]["resourceVersion"] for i in items} == every


@pytest.mark.slow
async def test_killing_an_apiserver_leaves_the_other_serving_with_every_acknowledged_write(
        setup: Setup) -> None:
    async with _client(setup.apis[0]) as one, _client(setup.apis[1]) as two:
        ns = await _namespace(one)
        path = f"/api/v1/namespaces/{ns}/configmaps"
        rv = (await one.list(path))["metadata"]["resourceVersion"]
        watched: set[str] = set()

        async def watch() -> None:
            async for ev in one.watch(path, {"resourceVersion": rv, "timeoutSeconds": "120"}):
                if ev["type"] == "ADDED":
                    watched.add(ev["object"]["metadata"]["name"])

        watcher = asyncio.create_task(watch())
        acked: list[dict[str, str]] = [{}, {}]
        errors: list[list[str]] = [[], []]
        stop = asyncio.Event()
        writers = [asyncio.create_task(_write_until(api, path, acked[i], errors[i], stop, f"w{i}{j}"))
                   for i, api in enumerate((one, two)) for j in range(4)]
        try:
            await _until(lambda: min(map(len, acked)) >= 100)
            setup.apis[1].stop(signal.SIGKILL)
            before = len(acked[0])
            await _until(lambda: len(acked[0]) >= before + 200)
        finally:
            stop.set()
            await asyncio.wait_for(asyncio.gather(*writers), TIMEOUT)
        assert errors[0] == []  # the survivor never failed a write
        every = {**acked[0], **acked[1]}
        items = (await one.list(path))["items"]
        stored = {i["metadata"]["name"]: i["metadata"]["resourceVersion"] for i in items}
        assert stored.items() >= every.items()
        # Besides: writes the killed apiserver had committed but not yet answered.
        assert all(name.startswith("w1") for name in set(stored) - set(every))
        await _until(lambda: watched >= set(every))  # its watch saw the writes of both
        watcher.cancel()


def test_a_bad_store_url_stops_the_apiserver_with_one_line(tmp_path: Path) -> None:
    server = ApiServerProcess(tmp_path / "bad", extra_args=["--store", "etcd://127.0.0.1:notaport"])
    with pytest.raises(RuntimeError, match="exited with 2") as err:
        server.start(timeout=TIMEOUT)
    assert "netplane apiserver: store URL 'etcd://127.0.0.1:notaport': '127.0.0.1:notaport' is not " \
           "HOST:PORT" in str(err.value)


def test_up_refuses_a_bad_store_url_with_one_line_before_building_anything(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "netplane.cli.main", "up", "--state-dir", str(tmp_path),
                           "--store", "etcd://127.0.0.1:2379,"], capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stderr.strip()) == (
        2, "netplane up: store URL 'etcd://127.0.0.1:2379,': '' is not HOST:PORT")
    assert list(tmp_path.iterdir()) == []
