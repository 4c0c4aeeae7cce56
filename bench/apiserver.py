"""Benchmark of `netplane apiserver`: creates/s, list latency, watch fan-out latency, memory.

Run: `make bench-apiserver` (or `python -m bench.apiserver --out FILE`). The server
runs as its own process on loopback over HTTPS, as in production. Anchors measured
in the same run, so the figures survive a noisy machine:
- the HTTP floor: the same client against a bare aiohttp handler on the same TLS
  setup (what a request costs before the apiserver does any work);
- the store floor: listing the same 10k objects straight from the store file.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import ssl
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import uvloop
from aiohttp import web

from control.apiserver.process import ApiServerProcess, free_port
from control.store import open_store

TARGETS = {"creates_per_s": 1000, "list_10k_ms": 300, "watch_p99_ms": 50}


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _svc(i: int) -> bytes:
    return orjson.dumps({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": f"svc-{i:05d}", "labels": {"app": f"app-{i % 50}", "bench": "1"}},
        "spec": {"selector": {"app": f"app-{i % 50}"},
                 "ports": [{"name": "http", "port": 80, "targetPort": 8080},
                           {"name": "https", "port": 443, "targetPort": 8443}]},
    })


async def _create_all(session: aiohttp.ClientSession, url: str, bodies: list[bytes],
                      workers: int) -> float:
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for b in bodies:
        queue.put_nowait(b)
    failures: list[str] = []

    async def worker() -> None:
        while not queue.empty():
            body = queue.get_nowait()
            async with session.post(url, data=body,
                                    headers={"Content-Type": "application/json"}) as resp:
                await resp.read()
                if resp.status not in (200, 201):
                    failures.append(f"{resp.status}")

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(workers)))
    elapsed = time.perf_counter() - start
    if failures:
        raise RuntimeError(f"{len(failures)} creates failed, e.g. {failures[:3]}")
    return elapsed


async def _http_floor(ctx: ssl.SSLContext, cert_dir: Path, bodies: list[bytes],
                      workers: int) -> float:
    """The same POSTs against a handler that only reads the body and answers it back."""
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert_dir / "apiserver.crt", cert_dir / "apiserver.key")

    async def echo(request: web.Request) -> web.Response:
        return web.Response(body=await request.read(), status=201,
                            content_type="application/json")

    app = web.Application()
    app.router.add_post("/echo", echo)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port, ssl_context=server_ctx).start()
    try:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ctx)) as s:
            return await _create_all(s, f"https://127.0.0.1:{port}/echo", bodies, workers)
    finally:
        await runner.cleanup()


async def _watch_fanout(session: aiohttp.ClientSession, base: str, ns: str, watchers: int,
                        events: int) -> list[float]:
    async with session.get(f"{base}/api/v1/namespaces/{ns}/configmaps") as resp:
        rv = (await resp.json())["metadata"]["resourceVersion"]
    sent: dict[str, float] = {}
    latencies: list[float] = []
    ready = asyncio.Event()
    opened = 0

    async def watch() -> None:
        nonlocal opened
        url = (f"{base}/api/v1/namespaces/{ns}/configmaps?watch=1&resourceVersion={rv}"
               "&timeoutSeconds=120")
        async with session.get(url, timeout=aiohttp.ClientTimeout(total=None)) as resp:
            opened += 1
            if opened == watchers:
                ready.set()
            seen = 0
            async for line in resp.content:
                now = time.perf_counter()
                ev = orjson.loads(line)
                name = ev["object"]["metadata"]["name"]
                latencies.append(now - sent[name])
                seen += 1
                if seen == events:
                    return

    tasks = [asyncio.create_task(watch()) for _ in range(watchers)]
    await asyncio.wait_for(ready.wait(), 60)
    await asyncio.sleep(0.5)  # let every watch register in the store before writing
    for i in range(events):
        name = f"fan-{i}"
        body = orjson.dumps({"apiVersion": "v1", "kind": "ConfigMap",
                             "metadata": {"name": name}, "data": {"i": str(i)}})
        sent[name] = time.perf_counter()
        async with session.post(f"{base}/api/v1/namespaces/{ns}/configmaps", data=body,
                                headers={"Content-Type": "application/json"}) as resp:
            await resp.read()
        await asyncio.sleep(0.05)  # one event at a time: latency, not throughput
    await asyncio.wait_for(asyncio.gather(*tasks), 120)
    return latencies


def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def run(n: int, watchers: int, events: int, workers: int, store_url: str = "") -> dict[str, Any]:
    """One round; `store_url` puts the apiserver on that store (default: SQLite in its data dir)."""
    extra = ["--store", store_url] if store_url else []
    with tempfile.TemporaryDirectory(prefix="netplane-bench-") as tmp, \
            ApiServerProcess(Path(tmp) / "data", extra_args=extra) as server:
        ctx = server.ssl_context()
        headers = {"Authorization": f"Bearer {server.token()}"}
        base = server.url
        bodies = [_svc(i) for i in range(n)]
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ctx, limit=0),
                                         headers=headers) as session:
            async with session.post(f"{base}/api/v1/namespaces", data=orjson.dumps(
                    {"metadata": {"name": "bench"}}),
                    headers={"Content-Type": "application/json"}) as resp:
                assert resp.status == 201, await resp.text()
            create_s = await _create_all(
                session, f"{base}/api/v1/namespaces/bench/services", bodies, workers)
            list_ms: list[float] = []
            for _ in range(5):
                start = time.perf_counter()
                async with session.get(f"{base}/api/v1/namespaces/bench/services") as resp:
                    body = await resp.read()
                list_ms.append((time.perf_counter() - start) * 1000)
                assert len(orjson.loads(body)["items"]) == n
            latencies = await _watch_fanout(session, base, "bench", watchers, events)
        assert server.proc is not None
        peak_mb = _peak_rss_mb(server.proc.pid)
        floor_s = await _http_floor(ctx, server.data_dir / "pki", bodies, workers)
        server.stop()
        store = await open_store(store_url or f"sqlite:///{server.data_dir / 'state.db'}")
        try:
            store_ms = []
            for _ in range(5):
                start = time.perf_counter()
                page = await store.list("/registry/services/specs/bench/")
                [orjson.loads(kv.value) for kv in page.items]
                store_ms.append((time.perf_counter() - start) * 1000)
        finally:
            await store.close()
    creates_per_s = n / create_s
    floor_per_s = n / floor_s
    lat_ms = [x * 1000 for x in latencies]
    return {
        "benchmark": "apiserver",
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "python": sys.version.split()[0]},
        "params": {"services": n, "watchers": watchers, "watch_events": events,
                   "client_concurrency": workers},
        "creates_per_s": round(creates_per_s, 1),
        "http_floor_posts_per_s": round(floor_per_s, 1),
        "creates_vs_http_floor": round(creates_per_s / floor_per_s, 3),
        "list_ms": {"median": round(statistics.median(list_ms), 1), "min": round(min(list_ms), 1)},
        "store_list_decode_ms": round(statistics.median(store_ms), 1),
        "list_vs_store_floor": round(statistics.median(list_ms) / statistics.median(store_ms), 2),
        "watch_delivery_ms": {"p50": round(_pct(lat_ms, 0.5), 2), "p99": round(_pct(lat_ms, 0.99), 2),
                              "max": round(max(lat_ms), 2), "samples": len(lat_ms)},
        "apiserver_peak_rss_mb": round(peak_mb, 1),
        "targets": TARGETS,
        "meets_targets": {
            "creates_per_s": creates_per_s >= TARGETS["creates_per_s"],
            "list_10k_ms": statistics.median(list_ms) < TARGETS["list_10k_ms"],
            "watch_p99_ms": _pct(lat_ms, 0.99) < TARGETS["watch_p99_ms"],
        },
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--services", type=int, default=10_000)
    p.add_argument("--watchers", type=int, default=100)
    p.add_argument("--events", type=int, default=20)
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--out", type=Path, default=Path("bench/results/apiserver.json"))
    args = p.parse_args()
    result = uvloop.run(run(args.services, args.watchers, args.events, args.concurrency))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
