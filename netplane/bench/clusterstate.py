"""The cluster state every mode is measured against, written through a real apiserver.

N synthetic Services of one TCP port each, with E endpoints at addresses nothing answers
on (they exist only in the proxy's tables), plus three services with real endpoints in the
lab: `web` (all E endpoint servers), `bulk` (one) and `probe` (none at first; the
programming-latency measurement adds and removes its endpoint).
"""

from __future__ import annotations

import asyncio
from typing import Any

from netplane.bench.lab import ENDPOINT_PORT, endpoint_ip
from netplane.client.rest import ApiClient, resource_path

NAMESPACE = "bench"
CONCURRENCY = 32
SLICES = "discovery.k8s.io/v1"


def synthetic_ip(k: int) -> str:
    return f"10.{252 + k // 65025}.{k // 255 % 255}.{k % 255 + 1}"


def service(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": NAMESPACE},
            "spec": {"ports": [{"name": "http", "port": 80, "targetPort": ENDPOINT_PORT}]}}


def endpoint_slice(svc: str, addresses: list[str]) -> dict[str, Any]:
    return {"apiVersion": SLICES, "kind": "EndpointSlice",
            "metadata": {"name": f"{svc}-1", "namespace": NAMESPACE,
                         "labels": {"kubernetes.io/service-name": svc}},
            "addressType": "IPv4", "ports": [{"name": "http", "port": ENDPOINT_PORT, "protocol": "TCP"}],
            "endpoints": [{"addresses": [ip], "conditions": {"ready": True}, "nodeName": "node-0"}
                          for ip in addresses]}


def slice_path(svc: str) -> str:
    return resource_path(SLICES, "endpointslices", NAMESPACE, f"{svc}-1")


async def populate(client: ApiClient, services: int, endpoints: int) -> dict[str, str]:
    """Creates the state; returns the ClusterIPs of web, bulk and probe."""
    await client.create(resource_path("v1", "namespaces"),
                        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}})
    real = {"web": [endpoint_ip(i) for i in range(endpoints)], "bulk": [endpoint_ip(0)], "probe": []}
    work: list[tuple[str, list[str]]] = list(real.items())
    work += [(f"svc-{i}", [synthetic_ip(i * endpoints + j) for j in range(endpoints)])
             for i in range(services)]
    queue: asyncio.Queue[tuple[str, list[str]]] = asyncio.Queue()
    for item in work:
        queue.put_nowait(item)
    ips: dict[str, str] = {}

    async def worker() -> None:
        while not queue.empty():
            name, addresses = queue.get_nowait()
            created = await client.create(resource_path("v1", "services", NAMESPACE), service(name))
            if name in real:
                ips[name] = created["spec"]["clusterIP"]
            await client.create(resource_path(SLICES, "endpointslices", NAMESPACE),
                                endpoint_slice(name, addresses))

    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    return ips


async def set_endpoints(client: ApiClient, svc: str, addresses: list[str]) -> None:
    body = await client.get(slice_path(svc))
    body["endpoints"] = endpoint_slice(svc, addresses)["endpoints"]
    await client.update(slice_path(svc), body)
