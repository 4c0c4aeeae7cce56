"""Benchmark of the apiserver's store: bench/apiserver.py's round on SQLite and on etcd, side
by side (creates/s, list latency at 10k Services, watch delivery p99), and the stores'
own write rate without the apiserver.

Run: `make bench-store` (or `python -m bench.store --out FILE`). Needs the etcd binary
(Debian: etcd-server); etcd runs on loopback with its data in a temporary directory.
Anchors measured in the same run: every figure of etcd is also given as a ratio to
SQLite's, and each round keeps bench/apiserver.py's own anchors (the HTTP floor and the
raw store list), so the ratios survive a noisy machine. SQLite commits without an fsync
(synchronous=NORMAL, safe against a process crash), etcd fsyncs its log on every commit
(safe against a machine crash): that difference is part of what is measured.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import uvloop

from bench.apiserver import run as apiserver_round
from control.store import open_store
from control.store.etcd_process import EtcdCluster, etcd_binary


async def _store_creates_per_s(url: str, n: int, workers: int) -> float:
    """Creates of 1 KiB values straight into the store, `workers` at a time."""
    store = await open_store(url)
    try:
        value = b"x" * 1024
        keys = iter(range(n))

        async def worker() -> None:
            for i in keys:
                await store.create(f"/bench/raw/{i:06d}", value)

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(workers)))
        return n / (time.perf_counter() - start)
    finally:
        await store.close()


def _etcd_version() -> str:
    binary = etcd_binary()
    if binary is None:
        return "missing"
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, check=False).stdout
    return out.splitlines()[0].split()[-1] if out else "unknown"


def _ratio(a: float, b: float) -> float:
    return round(a / b, 3) if b else float("nan")


async def run(services: int, watchers: int, events: int, workers: int, raw: int,
              members: int) -> dict[str, Any]:
    if etcd_binary() is None:
        raise SystemExit("bench/store: etcd is not installed (Debian: apt-get install etcd-server)")
    rounds: dict[str, dict[str, Any]] = {}
    rounds["sqlite"] = await apiserver_round(services, watchers, events, workers)
    with tempfile.TemporaryDirectory(prefix="netplane-bench-etcd-") as tmp, \
            EtcdCluster(Path(tmp) / "etcd", members) as etcd:
        rounds["etcd"] = await apiserver_round(services, watchers, events, workers, etcd.url())
        etcd_raw = await _store_creates_per_s(etcd.url("/raw", compact_interval=0), raw, workers)
    with tempfile.TemporaryDirectory(prefix="netplane-bench-sqlite-") as tmp:
        sqlite_raw = await _store_creates_per_s(f"sqlite://{tmp}/raw.db?compact_interval=0", raw, workers)
    for name, per_s in (("sqlite", sqlite_raw), ("etcd", etcd_raw)):
        rounds[name]["store_creates_per_s"] = round(per_s, 1)
        rounds[name]["creates_vs_store_creates"] = _ratio(rounds[name]["creates_per_s"], per_s)
    sq, et = rounds["sqlite"], rounds["etcd"]
    return {
        "benchmark": "store",
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "python": sys.version.split()[0]},
        "params": {"services": services, "watchers": watchers, "watch_events": events,
                   "client_concurrency": workers, "raw_store_creates": raw,
                   "etcd_members": members, "etcd_version": _etcd_version()},
        "sqlite": sq,
        "etcd": et,
        # The anchor of every etcd figure: SQLite, measured in the same run.
        "etcd_vs_sqlite": {
            "creates_per_s": _ratio(et["creates_per_s"], sq["creates_per_s"]),
            "list_10k_ms": _ratio(et["list_ms"]["median"], sq["list_ms"]["median"]),
            "watch_p99_ms": _ratio(et["watch_delivery_ms"]["p99"], sq["watch_delivery_ms"]["p99"]),
            "store_creates_per_s": _ratio(et["store_creates_per_s"], sq["store_creates_per_s"]),
            "apiserver_peak_rss_mb": _ratio(et["apiserver_peak_rss_mb"], sq["apiserver_peak_rss_mb"]),
        },
    }


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [
        ("creates/s through the apiserver", lambda r: r["creates_per_s"], "HTTP floor",
         lambda r: r["http_floor_posts_per_s"]),
        ("list of 10k Services, ms (median)", lambda r: r["list_ms"]["median"], "raw store list",
         lambda r: r["store_list_decode_ms"]),
        ("watch delivery to 100 watchers, ms", lambda r: r["watch_delivery_ms"]["p99"], "p50",
         lambda r: r["watch_delivery_ms"]["p50"]),
    ]
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.8))
    for ax, (title, value, anchor_name, anchor) in zip(axes, panels, strict=True):
        names = ["sqlite", "etcd"]
        ax.bar([0, 1], [value(result[n]) for n in names], width=0.4, label="p99" if "watch" in title else
               "apiserver", color="#4878a8")
        ax.bar([0.4, 1.4], [anchor(result[n]) for n in names], width=0.4, label=anchor_name, color="#bbbbbb")
        ax.set_xticks([0.2, 1.2], names)
        ax.set_title(title, fontsize=10)
        ax.legend(fontsize=8)
    fig.suptitle(f"netplane apiserver on SQLite and on etcd {result['params']['etcd_version']} "
                 f"({result['params']['etcd_members']} member), {result['date']}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--services", type=int, default=10_000)
    p.add_argument("--watchers", type=int, default=100)
    p.add_argument("--events", type=int, default=20)
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--raw-creates", type=int, default=5_000)
    p.add_argument("--etcd-members", type=int, default=1)
    p.add_argument("--out", type=Path, default=Path("bench/results/store.json"))
    args = p.parse_args()
    result = uvloop.run(run(args.services, args.watchers, args.events, args.concurrency,
                            args.raw_creates, args.etcd_members))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    plot(result, args.out.with_suffix(".png"))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
