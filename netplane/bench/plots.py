"""The comparison's pictures: sync time against the number of services (log axes) and the
distribution of connection set-up latency per mode. Written next to the report."""

from __future__ import annotations

from pathlib import Path
from typing import Any

STYLE = {"userspace": ("tab:orange", "o"), "iptables": ("tab:blue", "s"), "ipvs": ("tab:green", "^")}


def draw(results: dict[str, Any], out: Path) -> dict[str, str]:
    """Writes the PNGs into `out`; returns {title: file name}."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    modes = results["plan"]["modes"]
    images: dict[str, str] = {}

    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    for mode in modes:
        rows = sorted((r for r in results["runs"] if r["mode"] == mode), key=lambda r: r["services"])
        if not rows:
            continue
        color, marker = STYLE.get(mode, ("black", "x"))
        xs = [r["services"] for r in rows]
        ax.plot(xs, [r["full_sync_s"] for r in rows], "-", color=color, marker=marker,
                label=f"{mode}: full sync")
        ax.plot(xs, [r["one_change_sync_ms"]["p50"] / 1000 for r in rows], "--", color=color, marker=marker,
                label=f"{mode}: one change (p50)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("services")
    ax.set_ylabel("sync time (s)")
    ax.set_title("Sync time against cluster size")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "sync_times.png", dpi=110)
    plt.close(fig)
    images["Sync time against the number of services"] = "sync_times.png"

    largest = max(r["services"] for r in results["runs"])
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    for mode in modes:
        run = next((r for r in results["runs"] if r["mode"] == mode and r["services"] == largest), None)
        if not run or not run.get("connect_request_samples_us"):
            continue
        samples = sorted(x / 1000 for x in run["connect_request_samples_us"])
        ys = [(i + 1) / len(samples) for i in range(len(samples))]
        ax.plot(samples, ys, color=STYLE.get(mode, ("black", "x"))[0], label=mode)
    ax.set_xscale("log")
    ax.set_xlabel("new connection + one request (ms)")
    ax.set_ylabel("fraction of connections")
    ax.set_title(f"Connection set-up latency at {largest:,} services")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "connection_latency.png", dpi=110)
    plt.close(fig)
    images[f"Connection set-up latency distribution at {largest:,} services"] = "connection_latency.png"
    return images
