"""Scheduler throughput: pods bound per second with 1,000 pending pods and 100 nodes.

Run: `python -m bench.scheduler --out bench/results/scheduler.json`. A real apiserver
(its own process, HTTPS on loopback) gets 100 simulated Nodes registered through the
API (Ready; allocatable cpu 8, memory 32Gi, pods 110; no kubelets) and 1,000 pending
pods (100m cpu, 128Mi each, owned by 10 ReplicaSets so that spreading is exercised).
Then `netplane scheduler` starts as its own process, as in production, and this
process watches the pods: throughput is counted from the first to the last binding the
watch shows, and end to end from starting the scheduler process.

The anchor, measured in the same run against the same apiserver: a client that binds
the same number of pods round-robin over the nodes with the same concurrency, with no
scheduling logic, timed the same way (first to last binding seen by the watch). The
result is the ratio scheduler / anchor. Each of `--rounds` rounds uses a fresh
apiserver (the SQLite commit latency of this machine's disk varies a lot from second
to second); medians are reported, and every round in "rounds".
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import uvloop

from control.apiserver.process import ApiServerProcess, free_port
from netplane.client.rest import ApiClient, resource_path

TARGET_PODS_PER_S = 500.0
NETPLANE = [sys.executable, "-c", "import sys; from netplane.cli.main import main; sys.exit(main())"]


def _node(i: int) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": f"node-{i:03d}", "labels": {"kubernetes.io/hostname": f"node-{i:03d}"}}}


def _pod(ns: str, i: int, owners: int) -> dict[str, Any]:
    owner = f"rs-{i % owners}"
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": f"pod-{i:04d}", "namespace": ns, "labels": {"app": owner},
                         "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                                              "name": owner, "uid": f"{ns}-{owner}",
                                              "controller": True}]},
            "spec": {"containers": [{"name": "c", "image": "agnhost", "resources": {
                "requests": {"cpu": "100m", "memory": "128Mi"}}}]}}


async def _bounded(coros: list[Any], concurrency: int) -> None:
    sem = asyncio.Semaphore(concurrency)

    async def one(coro: Any) -> None:
        async with sem:
            await coro

    await asyncio.gather(*(one(c) for c in coros))


async def _register_nodes(api: ApiClient, n: int) -> list[str]:
    resources = {"cpu": "8", "memory": "32Gi", "pods": "110"}
    status = {"status": {"capacity": resources, "allocatable": resources,
                         "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}]}}

    async def register(i: int) -> None:
        body = _node(i)
        await api.create("/api/v1/nodes", body)
        await api.patch(resource_path("v1", "nodes", name=body["metadata"]["name"], subresource="status"),
                        status)

    await _bounded([register(i) for i in range(n)], 16)
    return [f"node-{i:03d}" for i in range(n)]


async def _create_pods(api: ApiClient, ns: str, n: int, owners: int, concurrency: int) -> None:
    await api.create("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                            "metadata": {"name": ns}})
    path = resource_path("v1", "pods", ns)
    await _bounded([api.create(path, _pod(ns, i, owners)) for i in range(n)], concurrency)


class BindingWatch:
    """Watches one namespace's pods and records when each is first seen bound."""

    def __init__(self, api: ApiClient, ns: str, expected: int) -> None:
        self.api, self.ns, self.expected = api, ns, expected
        self.bound_at: dict[str, float] = {}
        self.node_of: dict[str, str] = {}
        self.done = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        listed = await self.api.list(resource_path("v1", "pods", self.ns))
        rv = listed["metadata"]["resourceVersion"]
        self._task = asyncio.create_task(self._watch(rv))

    async def _watch(self, rv: str) -> None:
        async for event in self.api.watch(resource_path("v1", "pods", self.ns),
                                          {"resourceVersion": rv, "timeoutSeconds": 600}):
            obj = event.get("object") or {}
            name = (obj.get("metadata") or {}).get("name")
            node = (obj.get("spec") or {}).get("nodeName")
            if name and node and name not in self.bound_at:
                self.bound_at[name] = time.perf_counter()
                self.node_of[name] = node
                if len(self.bound_at) >= self.expected:
                    self.done.set()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def span(self) -> tuple[float, float]:
        times = sorted(self.bound_at.values())
        return times[0], times[-1]


def _rate(count: int, seconds: float) -> float:
    return round((count - 1) / seconds, 1) if seconds > 0 else float("inf")


async def _run_scheduler_phase(api: ApiClient, server: ApiServerProcess, n_pods: int, owners: int,
                               concurrency: int, log_path: Path) -> dict[str, Any]:
    ns = "bench-scheduler"
    await _create_pods(api, ns, n_pods, owners, concurrency)
    watch = BindingWatch(api, ns, n_pods)
    await watch.start()
    metrics_port = free_port()
    assert server.proc is not None
    apiserver_cpu_before = _cpu_seconds(server.proc.pid)
    with log_path.open("wb") as log:
        start = time.perf_counter()
        proc = await asyncio.create_subprocess_exec(
            *NETPLANE, "scheduler", "--kubeconfig", str(server.kubeconfig), "--port", str(metrics_port),
            "--parallel-binds", str(concurrency),
            stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        try:
            async with asyncio.timeout(300):
                await watch.done.wait()
            end_to_end = time.perf_counter() - start
            metrics = await _scrape(metrics_port)
            cpu = {"scheduler_cpu_s": _cpu_seconds(proc.pid),
                   "apiserver_cpu_s": _cpu_seconds(server.proc.pid) - apiserver_cpu_before}
        finally:
            proc.terminate()
            try:
                async with asyncio.timeout(20):
                    await proc.wait()
            except TimeoutError:
                proc.kill()
                await proc.wait()
    await watch.stop()
    first, last = watch.span()
    per_node = collections.Counter(watch.node_of.values())
    return {
        "bound": len(watch.bound_at),
        "first_to_last_s": round(last - first, 3),
        "pods_per_s": _rate(len(watch.bound_at), last - first),
        "end_to_end_s": round(end_to_end, 3),
        "end_to_end_pods_per_s": round(len(watch.bound_at) / end_to_end, 1),
        "first_binding_after_start_s": round(first - start, 3),
        "pods_per_node": {"min": min(per_node.values()), "max": max(per_node.values()),
                          "nodes_used": len(per_node)},
        "scheduler_metrics": metrics,
        # CPU used from starting the scheduler to the last binding (2 cores shared).
        "cpu_s": {k: round(v, 3) for k, v in cpu.items()},
    }


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _scrape(port: int) -> dict[str, float]:
    import aiohttp

    wanted = ('scheduler_schedule_attempts_total{result="scheduled"}',
              'scheduler_schedule_attempts_total{result="unschedulable"}',
              'scheduler_schedule_attempts_total{result="error"}',
              "scheduler_scheduling_attempt_duration_seconds_sum{result=\"scheduled\"}")
    async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}/metrics") as resp:
        text = await resp.text()
    out = {}
    for line in text.splitlines():
        for name in wanted:
            if line.startswith(name + " "):
                out[name] = float(line.split()[-1])
    return out


async def _run_anchor_phase(api: ApiClient, nodes: list[str], n_pods: int, owners: int,
                            concurrency: int) -> dict[str, Any]:
    ns = "bench-anchor"
    await _create_pods(api, ns, n_pods, owners, concurrency)
    watch = BindingWatch(api, ns, n_pods)
    await watch.start()

    def bind(i: int) -> Any:
        name = f"pod-{i:04d}"
        return api.create(resource_path("v1", "pods", ns, name, "binding"), {
            "apiVersion": "v1", "kind": "Binding", "metadata": {"name": name, "namespace": ns},
            "target": {"apiVersion": "v1", "kind": "Node", "name": nodes[i % len(nodes)]}})

    start = time.perf_counter()
    await _bounded([bind(i) for i in range(n_pods)], concurrency)
    requests_s = time.perf_counter() - start
    async with asyncio.timeout(120):
        await watch.done.wait()
    await watch.stop()
    first, last = watch.span()
    return {"bound": len(watch.bound_at), "first_to_last_s": round(last - first, 3),
            "pods_per_s": _rate(len(watch.bound_at), last - first),
            "requests_s": round(requests_s, 3),
            "requests_pods_per_s": round(n_pods / requests_s, 1)}


async def _round(index: int, tmp: Path, n_nodes: int, n_pods: int, owners: int,
                 concurrency: int) -> dict[str, Any]:
    """One fresh apiserver with its nodes; the scheduler and the anchor, in alternating
    order from round to round so that neither always meets the fuller database."""
    server = ApiServerProcess(tmp / f"apiserver-{index}")
    server.start()
    try:
        async with ApiClient.from_kubeconfig(server.kubeconfig) as api:
            nodes = await _register_nodes(api, n_nodes)
            log = tmp / f"scheduler-{index}.log"
            if index % 2 == 0:
                scheduler = await _run_scheduler_phase(api, server, n_pods, owners, concurrency, log)
                anchor = await _run_anchor_phase(api, nodes, n_pods, owners, concurrency)
            else:
                anchor = await _run_anchor_phase(api, nodes, n_pods, owners, concurrency)
                scheduler = await _run_scheduler_phase(api, server, n_pods, owners, concurrency, log)
    finally:
        server.stop()
    return {"scheduler": scheduler, "anchor_raw_binding": anchor,
            "scheduler_vs_anchor": round(scheduler["pods_per_s"] / anchor["pods_per_s"], 3)}


async def run(n_nodes: int, n_pods: int, owners: int, concurrency: int, rounds: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-scheduler-") as tmp:
        results = [await _round(i, Path(tmp), n_nodes, n_pods, owners, concurrency)
                   for i in range(rounds)]
    sched = [r["scheduler"]["pods_per_s"] for r in results]
    e2e = [r["scheduler"]["end_to_end_pods_per_s"] for r in results]
    anchor = [r["anchor_raw_binding"]["pods_per_s"] for r in results]
    ratios = [r["scheduler_vs_anchor"] for r in results]
    median = statistics.median
    return {
        "benchmark": "scheduler",
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "python": platform.python_version()},
        "params": {"nodes": n_nodes, "pods": n_pods, "owners": owners, "rounds": rounds,
                   "parallel_binds": concurrency, "scheduler": "netplane scheduler subprocess",
                   "measured_by": "a pod watch in the bench process (first to last binding)"},
        "scheduler_pods_per_s": {"median": median(sched), "min": min(sched), "max": max(sched)},
        "scheduler_end_to_end_pods_per_s": {"median": median(e2e), "min": min(e2e), "max": max(e2e)},
        "anchor_raw_binding_pods_per_s": {"median": median(anchor), "min": min(anchor),
                                          "max": max(anchor)},
        "scheduler_vs_anchor": {"median": median(ratios), "min": min(ratios), "max": max(ratios)},
        "target_pods_per_s": TARGET_PODS_PER_S,
        "meets_target": median(sched) >= TARGET_PODS_PER_S,
        "rounds": results,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--nodes", type=int, default=100)
    p.add_argument("--pods", type=int, default=1000)
    p.add_argument("--owners", type=int, default=10, help="ReplicaSets the pods belong to")
    p.add_argument("--concurrency", type=int, default=32,
                   help="bindings in flight (scheduler --parallel-binds, and the anchor's)")
    p.add_argument("--rounds", type=int, default=5,
                   help="fresh apiserver per round; medians are reported (the disk is noisy)")
    p.add_argument("--out", type=Path, default=Path("bench/results/scheduler.json"))
    args = p.parse_args()
    result = uvloop.run(run(args.nodes, args.pods, args.owners, args.concurrency, args.rounds))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
