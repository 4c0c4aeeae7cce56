"""Pod start latency on a real 2-node cluster: created → Running and Ready, p50/p99.

Run as root: `make bench-cluster` (or `python -m bench.cluster --out FILE`). It brings a
cluster up with `netplane up --detach`, creates `--pods` pods (no probes, a long sleep as
the container, as Kubernetes' pod-startup SLO does with a pause image) at each of
`--rates` pods per second (a steady rate, as the SLO is measured, and a burst), and
times each from its create call returning to the watch event that shows
it Running with Ready=True. The anchor, measured in the same run, is what the same
container costs without the cluster: spawning the process and seeing it alive.
The scheduler's throughput is measured separately by bench/scheduler.py.
"""

from __future__ import annotations

import argparse
import asyncio
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

from control.apiserver.process import free_port
from netplane.client.rest import ApiClient

TARGET_P99_S = 1.0
NETPLANE = [sys.executable, "-m", "netplane.cli.main"]


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _pod(i: int, prefix: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": f"start-{prefix}-{i:04d}", "labels": {"bench": prefix}},
            "spec": {"terminationGracePeriodSeconds": 0,
                     "containers": [{"name": "c", "image": "pause", "command": ["sleep", "3600"]}]}}


def _ready(pod: dict[str, Any]) -> bool:
    status = pod.get("status") or {}
    return status.get("phase") == "Running" and any(
        c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])


def _anchor(samples: int) -> list[float]:
    """Spawning the container's process directly: the floor of any pod start."""
    out = []
    for _ in range(samples):
        start = time.perf_counter()
        proc = subprocess.Popen(["sleep", "3600"])
        while not Path(f"/proc/{proc.pid}/cmdline").read_bytes().startswith(b"sleep"):
            time.sleep(0.0005)
        out.append(time.perf_counter() - start)
        proc.kill()
        proc.wait()
    return out


async def _measure(kubeconfig: Path, pods: int, rate: float, prefix: str) -> dict[str, float]:
    created: dict[str, float] = {}
    ready: dict[str, float] = {}
    async with ApiClient.from_kubeconfig(kubeconfig) as api:
        listing = await api.list("/api/v1/namespaces/default/pods")
        rv = listing["metadata"]["resourceVersion"]

        async def watch() -> None:
            async for event in api.watch("/api/v1/namespaces/default/pods",
                                         {"resourceVersion": rv, "labelSelector": f"bench={prefix}"}):
                obj = event["object"]
                name = obj["metadata"]["name"]
                if event["type"] in ("ADDED", "MODIFIED") and name not in ready and _ready(obj):
                    ready[name] = time.perf_counter()
                    if len(ready) == pods:
                        return

        watcher = asyncio.create_task(watch())
        for i in range(pods):
            body = _pod(i, prefix)
            await api.create("/api/v1/namespaces/default/pods", body)
            created[body["metadata"]["name"]] = time.perf_counter()
            await asyncio.sleep(1 / rate)
        await asyncio.wait_for(watcher, timeout=300)
    return {name: ready[name] - t for name, t in created.items()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pods", type=int, default=100)
    p.add_argument("--rates", default="10,100",
                   help="pods created per second, one round per rate (the target is checked on the first)")
    p.add_argument("--out", type=Path, default=Path("bench/results/cluster.json"))
    args = p.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench/cluster: needs root (netplane up creates network namespaces)")
    state = Path(tempfile.mkdtemp(prefix="np-bench-")) / "state"
    up = subprocess.run([*NETPLANE, "up", "--nodes", "2", "--detach", "--state-dir", str(state),
                         "--api-port", str(free_port())], capture_output=True, text=True)
    if up.returncode != 0:
        sys.exit(f"netplane up failed:\n{up.stdout}\n{up.stderr}")
    rates = [float(r) for r in args.rates.split(",")]
    rounds = []
    try:
        for i, rate in enumerate(rates):
            latencies = asyncio.run(_measure(state / "admin.kubeconfig", args.pods, rate, prefix=f"r{i}"))
            values = list(latencies.values())
            p99 = _pct(values, 0.99)
            rounds.append({"create_rate_per_s": rate,
                           "pod_start_s": {"p50": round(_pct(values, 0.5), 4),
                                           "p99": round(p99, 4),
                                           "max": round(max(values), 4),
                                           "mean": round(statistics.fmean(values), 4)},
                           "p99_under_target": p99 < TARGET_P99_S})
    finally:
        subprocess.run([*NETPLANE, "down", "--state-dir", str(state)], capture_output=True)
    anchor = _anchor(20)
    first = rounds[0]["pod_start_s"]
    result = {
        "benchmark": "cluster",
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "python": platform.python_version()},
        "config": {"pods_per_round": args.pods, "nodes": 2},
        "rounds": rounds,
        "anchor_process_spawn_s": {"p50": round(_pct(anchor, 0.5), 5)},
        "pod_start_p50_vs_spawn": round(first["p50"] / max(_pct(anchor, 0.5), 1e-6), 1),
        "target_p99_s": TARGET_P99_S,
        # The target is Kubernetes' pod-startup SLO, which is measured at a steady rate
        # (the first round); the burst rounds are reported beside it, not judged by it.
        "meets_target": first["p99"] < TARGET_P99_S,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
