"""How the etcd store talks to etcd, chosen by measurement: etcd's gRPC API (the bindings
aetcd ships, as control/store/etcd_conn.py uses them) against etcd's gRPC gateway (JSON
over HTTP, here with aiohttp), on the same etcd in one run.

Run: `python -m bench.store_clients --out bench/results/store_clients.json`. gRPC is the
anchor: every gateway figure is also given as a ratio to it. Each transport does the
store's own requests: a create (a transaction comparing create_revision with 0), a
range of every key under a prefix, and a watch (put -> event received).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import orjson
import uvloop
from aetcd import rpc

from control.store.etcd_process import EtcdCluster

VALUE = b"x" * 800


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def _end(prefix: bytes) -> bytes:
    return prefix[:-1] + bytes([prefix[-1] + 1])


class Gateway:
    def __init__(self, port: int) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))

    async def _post(self, path: str, body: dict[str, Any]) -> Any:
        async with self.session.post(self.url + path, data=orjson.dumps(body)) as resp:
            return orjson.loads(await resp.read())

    async def create(self, key: bytes) -> int:
        k = _b64(key)
        r = await self._post("/v3/kv/txn", {
            "compare": [{"key": k, "target": "CREATE", "result": "EQUAL", "create_revision": "0"}],
            "success": [{"request_put": {"key": k, "value": _b64(VALUE)}}]})
        assert r.get("succeeded"), r
        return int(r["header"]["revision"])

    async def list(self, prefix: bytes) -> list[tuple[bytes, bytes]]:
        r = await self._post("/v3/kv/range", {"key": _b64(prefix), "range_end": _b64(_end(prefix))})
        return [(base64.b64decode(kv["key"]), base64.b64decode(kv.get("value", "")))
                for kv in r.get("kvs", [])]

    async def watch(self, prefix: bytes, start: int, seen: asyncio.Queue[float]) -> None:
        body = {"create_request": {"key": _b64(prefix), "range_end": _b64(_end(prefix)),
                                   "start_revision": str(start), "prev_kv": True}}
        async with self.session.post(self.url + "/v3/watch", data=orjson.dumps(body),
                                     timeout=aiohttp.ClientTimeout(total=None)) as resp:
            async for line in resp.content:
                for _ev in orjson.loads(line)["result"].get("events", []):
                    seen.put_nowait(time.perf_counter())

    async def close(self) -> None:
        await self.session.close()


class Grpc:
    def __init__(self, port: int) -> None:
        self.channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}",
                                                 options=[("grpc.max_receive_message_length", -1)])
        self.kv = rpc.KVStub(self.channel)
        self.watcher = rpc.WatchStub(self.channel)

    async def create(self, key: bytes) -> int:
        r = await self.kv.Txn(rpc.TxnRequest(
            compare=[rpc.Compare(key=key, target=rpc.Compare.CREATE, result=rpc.Compare.EQUAL,
                                 create_revision=0)],
            success=[rpc.RequestOp(request_put=rpc.PutRequest(key=key, value=VALUE))]))
        assert r.succeeded
        return int(r.header.revision)

    async def list(self, prefix: bytes) -> list[tuple[bytes, bytes]]:
        r = await self.kv.Range(rpc.RangeRequest(key=prefix, range_end=_end(prefix)))
        return [(kv.key, kv.value) for kv in r.kvs]

    async def watch(self, prefix: bytes, start: int, seen: asyncio.Queue[float]) -> None:
        call = self.watcher.Watch()
        await call.write(rpc.WatchRequest(create_request=rpc.WatchCreateRequest(
            key=prefix, range_end=_end(prefix), start_revision=start, prev_kv=True)))
        while True:
            resp = await call.read()
            for _ev in resp.events:
                seen.put_nowait(time.perf_counter())

    async def close(self) -> None:
        await self.channel.close()


async def _round(client: Gateway | Grpc, tag: str, n: int, workers: int, events: int) -> dict[str, Any]:
    prefix = f"/{tag}/".encode()
    keys = iter(range(n))

    async def worker() -> None:
        for i in keys:
            await client.create(prefix + b"%06d" % i)

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(workers)))
    creates = n / (time.perf_counter() - start)
    list_ms = []
    for _ in range(5):
        start = time.perf_counter()
        assert len(await client.list(prefix)) == n
        list_ms.append((time.perf_counter() - start) * 1000)
    seen: asyncio.Queue[float] = asyncio.Queue()
    wprefix = f"/{tag}-w/".encode()
    rev = await client.create(f"/{tag}-start".encode())
    task = asyncio.create_task(client.watch(wprefix, rev + 1, seen))
    await asyncio.sleep(0.3)  # the watch is registered before the first put
    rtt = []
    for i in range(events):
        start = time.perf_counter()
        await client.create(wprefix + b"%d" % i)
        rtt.append((await asyncio.wait_for(seen.get(), 30) - start) * 1000)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    rtt.sort()
    return {"creates_per_s": round(creates, 1), "list_ms": round(statistics.median(list_ms), 1),
            "watch_ms": {"p50": round(rtt[len(rtt) // 2], 2), "p99": round(rtt[int(len(rtt) * 0.99)], 2)}}


async def run(n: int, workers: int, events: int, rounds: int) -> dict[str, Any]:
    makers: dict[str, Callable[[int], Gateway | Grpc]] = {"grpc": Grpc, "gateway": Gateway}
    results: dict[str, list[dict[str, Any]]] = {name: [] for name in makers}
    with tempfile.TemporaryDirectory(prefix="netplane-bench-") as tmp, \
            EtcdCluster(Path(tmp) / "etcd") as etcd:
        port = etcd.members[0].client_port
        for r in range(rounds):  # interleaved, so that a noisy moment hits both
            for name, make in makers.items():
                client = make(port)
                try:
                    results[name].append(await _round(client, f"{name}{r}", n, workers, events))
                finally:
                    await client.close()

    def best(name: str) -> dict[str, float]:
        rs = results[name]
        return {"creates_per_s": max(r["creates_per_s"] for r in rs),
                "list_ms": min(r["list_ms"] for r in rs),
                "watch_p99_ms": min(r["watch_ms"]["p99"] for r in rs)}

    g, gw = best("grpc"), best("gateway")
    return {
        "benchmark": "store_clients",
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "python": sys.version.split()[0]},
        "params": {"keys": n, "value_bytes": len(VALUE), "client_concurrency": workers,
                   "watch_events": events, "rounds": rounds},
        "rounds": results,
        "best": {"grpc": g, "gateway": gw},
        "gateway_vs_grpc": {k: round(gw[k] / g[k], 3) for k in g},
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--keys", type=int, default=5_000)
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--events", type=int, default=200)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--out", type=Path, default=Path("bench/results/store_clients.json"))
    args = p.parse_args()
    result = uvloop.run(run(args.keys, args.concurrency, args.events, args.rounds))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
