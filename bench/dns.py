"""Cluster DNS beside dnsmasq under dnsperf, for cached cluster names, in one run.

Run: `make bench-dns` (or `python -m bench.dns --out FILE`); loopback only, no root needed.
A real `netplane apiserver` holds N ClusterIP Services; `netplane dns` serves them from its
informers, and dnsmasq (the anchor) serves the same names with the same addresses from a
hosts file. Three servers answer the same query file (every service's A record, over and
over, so every answer is cached after the warm-up):
- dnsmasq (--cache-size 10000, the names as local hosts);
- netplane dns as it runs in the cluster;
- netplane dns with --answer-cache-size 0: every query parsed, answered and packed with
  dnslib (the "naive dnslib server"), which shows why the wire-format answer cache exists.

Fairness: every server is pinned with taskset to the same CPU (the last one), dnsperf to
another (the first), one server at a time, rounds interleaved so a noisy neighbour hurts
all alike. Two figures per server:
- throughput: dnsperf with 100 queries outstanding; queries/s, and the server's CPU time
  per query (from /proc), which stays meaningful when the load generator, not the server,
  is the limit (then both servers' CPU is below 100% and their queries/s are equal);
- latency at a fixed rate that dnsmasq and netplane sustain (dnsperf -Q, each answer's
  latency from -v): p50 and p99 of all rounds' answers pooled. Under saturation latency
  is only queue length over throughput, so latencies are compared at an equal, fixed load
  (the naive server cannot keep up with it: its figures are queueing).
Every figure is also a ratio to dnsmasq's, measured in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from bench.common import cpu_seconds, median_row, wait_for
from control.apiserver.process import ApiServerProcess, free_port

NETPLANE = [sys.executable, "-m", "netplane.cli.main"]
NAMESPACE = "bench"
ZONE = "cluster.local"
TARGETS = {"qps_vs_dnsmasq": 0.5, "p99_vs_dnsmasq": 2.0}
_QPS = re.compile(r"Queries per second:\s+([\d.]+)")
_SENT = re.compile(r"Queries sent:\s+(\d+)")
_DONE = re.compile(r"Queries completed:\s+(\d+)")
_LOST = re.compile(r"Queries lost:\s+(\d+)")
_AVG = re.compile(r"Average Latency \(s\):\s+([\d.]+)")


def _cpus() -> tuple[str, str]:
    """(the servers' CPU, dnsperf's CPU): the last and the first of those we may use."""
    allowed = sorted(os.sched_getaffinity(0))
    return str(allowed[-1]), str(allowed[0])


async def _create_services(apiserver: ApiServerProcess, count: int) -> dict[str, str]:
    """N ClusterIP services; name -> ClusterIP."""
    from netplane.client.rest import ApiClient, resource_path

    async with ApiClient.from_kubeconfig(apiserver.kubeconfig) as api:
        await api.create(resource_path("v1", "namespaces"), {"metadata": {"name": NAMESPACE}})
        gate = asyncio.Semaphore(16)

        async def one(i: int) -> tuple[str, str]:
            async with gate:
                svc = await api.create(resource_path("v1", "services", NAMESPACE), {
                    "metadata": {"name": f"svc{i}"}, "spec": {"ports": [{"name": "http", "port": 80}]}})
            return f"svc{i}.{NAMESPACE}.svc.{ZONE}", svc["spec"]["clusterIP"]

        return dict(await asyncio.gather(*(one(i) for i in range(count))))


class Servers:
    def __init__(self, tmp: Path, names: dict[str, str], apiserver: ApiServerProcess, cpu: str) -> None:
        self.tmp, self.names, self.apiserver, self.cpu = tmp, names, apiserver, cpu
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.ports: dict[str, int] = {}

    def start(self) -> None:
        hosts = self.tmp / "hosts"
        hosts.write_text("".join(f"{ip} {name}\n" for name, ip in self.names.items()))
        port = self.ports["dnsmasq"] = free_port()
        argv = ["taskset", "-c", self.cpu, "dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null",
                "--no-resolv", "--no-hosts", f"--addn-hosts={hosts}", "--listen-address=127.0.0.1",
                "--bind-interfaces", f"--port={port}", "--cache-size=10000", "--local-ttl=5", "--pid-file="]
        if os.geteuid() == 0:
            argv.append("--user=root")
        self.procs["dnsmasq"] = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for name, extra in (("netplane", []), ("netplane_naive", ["--answer-cache-size", "0"])):
            port, http_port = free_port(), free_port()
            self.ports[name] = port
            log = (self.tmp / f"{name}.log").open("wb")
            self.procs[name] = subprocess.Popen(
                ["taskset", "-c", self.cpu, *NETPLANE, "dns", "--kubeconfig", str(self.apiserver.kubeconfig),
                 "--listen", f"127.0.0.1:{port}", "--health-listen", f"127.0.0.1:{http_port}",
                 "--metrics-listen", "127.0.0.1:0", "--resolv-conf", "/dev/null",
                 "--upstream", f"127.0.0.1:{self.ports['dnsmasq']}", "--configmap", "", *extra],
                stdout=log, stderr=subprocess.STDOUT)
            wait_for(f"{name} to be ready", lambda p=http_port: urllib.request.urlopen(
                f"http://127.0.0.1:{p}/ready", timeout=2).status == 200, not_yet=(OSError,))

    def check_answers(self) -> None:
        """Every server gives every name its ClusterIP (a benchmark of wrong answers is none)."""
        for server, port in self.ports.items():
            for name, ip in list(self.names.items())[:: max(1, len(self.names) // 20)]:
                out = subprocess.run(["dig", "@127.0.0.1", "-p", str(port), "+short", name],
                                     capture_output=True, text=True, timeout=10).stdout.split()
                if out != [ip]:
                    raise RuntimeError(f"{server} answers {out} for {name}, not {ip}")

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


def dnsperf(port: int, queries: Path, cpu: str, seconds: int, *, rate: int | None = None) -> dict[str, Any]:
    """One dnsperf run; with `rate`, at that fixed rate and with every answer's latency."""
    argv = ["taskset", "-c", cpu, "dnsperf", "-s", "127.0.0.1", "-p", str(port), "-d", str(queries),
            "-l", str(seconds), "-c", "1", "-q", "100", "-t", "2"]
    if rate is not None:
        argv += ["-Q", str(rate), "-v"]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 30).stdout
    result: dict[str, Any] = {
        "qps": float(_QPS.search(out).group(1)), "sent": int(_SENT.search(out).group(1)),  # type: ignore[union-attr]
        "completed": int(_DONE.search(out).group(1)), "lost": int(_LOST.search(out).group(1)),  # type: ignore[union-attr]
        "avg_latency_ms": float(_AVG.search(out).group(1)) * 1000}  # type: ignore[union-attr]
    if rate is not None:
        result["latencies"] = [float(line.rsplit(" ", 1)[1]) for line in out.splitlines()
                               if line.startswith("> ")]
    return result


def percentiles(latencies: list[float]) -> dict[str, float]:
    ordered = sorted(latencies)
    if not ordered:
        return {}
    return {f"p{q}_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * q / 100))] * 1000, 4)
            for q in (50, 90, 99)}


def throughput(servers: Servers, name: str, queries: Path, cpu: str, seconds: int) -> dict[str, Any]:
    pid = servers.procs[name].pid
    before, start = cpu_seconds(pid), time.monotonic()
    result = dnsperf(servers.ports[name], queries, cpu, seconds)
    cpu_s, wall = cpu_seconds(pid) - before, time.monotonic() - start
    result["server_cpu_utilization"] = round(cpu_s / wall, 3)
    result["server_cpu_us_per_query"] = round(cpu_s / max(1, result["completed"]) * 1e6, 2)
    return result


def summarize(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """Throughput: the median over rounds. Latency: percentiles of every answer of every
    round pooled, so that the rounds' different neighbours weigh on each server alike."""
    out: dict[str, Any] = {}
    for name in rounds[0]:
        latency_runs = [rnd[name]["latency"] for rnd in rounds]
        pooled = [x for run in latency_runs for x in run["latencies"]]
        out[name] = {"throughput": median_row([rnd[name]["throughput"] for rnd in rounds]),
                     "latency": {**percentiles(pooled), "answers": len(pooled),
                                 "lost": sum(run["lost"] for run in latency_runs),
                                 "qps": round(statistics.median(run["qps"] for run in latency_runs), 1)}}
    return out


def plot(result: dict[str, Any], png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(result["summary"])
    fig, (ax1, ax3, ax2) = plt.subplots(1, 3, figsize=(15, 4))
    qps = [result["summary"][n]["throughput"]["qps"] for n in names]
    ax1.bar(names, qps, color=["#888", "#2a7", "#c63"][: len(names)])
    ax1.set_title("queries/s (100 outstanding)")
    for i, v in enumerate(qps):
        ax1.text(i, v, f"{v:,.0f}\n{v / qps[0]:.2f}x", ha="center", va="bottom", fontsize=8)
    cpu = [result["summary"][n]["throughput"]["server_cpu_us_per_query"] for n in names]
    ax3.bar(names, cpu, color=["#888", "#2a7", "#c63"][: len(names)])
    ax3.set_title("server CPU µs per query")
    for i, v in enumerate(cpu):
        ax3.text(i, v, f"{v:.1f}\n{v / cpu[0]:.2f}x", ha="center", va="bottom", fontsize=8)
    width = 0.38
    p50 = [result["summary"][n]["latency"].get("p50_ms", 0) for n in names]
    p99 = [result["summary"][n]["latency"].get("p99_ms", 0) for n in names]
    xs = range(len(names))
    ax2.bar([x - width / 2 for x in xs], p50, width, label="p50")
    ax2.bar([x + width / 2 for x in xs], p99, width, label="p99")
    ax2.set_xticks(list(xs), names)
    ax2.set_yscale("log")
    ax2.set_title(f"latency (ms) at {result['params']['rate']:,} queries/s")
    ax2.legend()
    fig.suptitle(f"cached cluster names, {result['params']['services']} services; servers pinned to one CPU")
    fig.tight_layout()
    fig.savefig(png, dpi=100)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--services", type=int, default=200)
    p.add_argument("--seconds", type=int, default=3, help="length of each dnsperf run")
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--rate", type=int, default=10000, help="queries/s of the fixed-rate latency runs")
    p.add_argument("--out", type=Path, default=Path("bench/results/dns.json"))
    args = p.parse_args()
    missing = [t for t in ("dnsperf", "dnsmasq", "dig", "taskset") if shutil.which(t) is None]
    if missing:
        sys.exit(f"bench/dns: install {' '.join(missing)} (make bench-dns does)")
    server_cpu, client_cpu = _cpus()
    tmp = Path(tempfile.mkdtemp(prefix="np-bench-dns-"))
    apiserver = ApiServerProcess(tmp / "apiserver")
    servers: Servers | None = None
    rounds: list[dict[str, Any]] = []
    try:
        apiserver.start()
        names = asyncio.run(_create_services(apiserver, args.services))
        queries = tmp / "queries"
        queries.write_text("".join(f"{name} A\n" for name in names))
        servers = Servers(tmp, names, apiserver, server_cpu)
        servers.start()
        servers.check_answers()
        order = ["dnsmasq", "netplane", "netplane_naive"]
        for name in order:  # warm-up: every answer cached
            dnsperf(servers.ports[name], queries, client_cpu, 1)
        for r in range(args.rounds):
            row: dict[str, Any] = {}
            for name in order if r % 2 == 0 else list(reversed(order)):
                row[name] = {"throughput": throughput(servers, name, queries, client_cpu, args.seconds),
                             "latency": dnsperf(servers.ports[name], queries, client_cpu, args.seconds,
                                                rate=args.rate)}
                pct = percentiles(row[name]["latency"]["latencies"])
                print(f"round {r + 1} {name}: {row[name]['throughput']['qps']:,.0f} q/s "
                      f"({row[name]['throughput']['server_cpu_utilization']:.0%} CPU), "
                      f"p50 {pct.get('p50_ms', 0):.3f} ms, p99 {pct.get('p99_ms', 0):.3f} ms "
                      f"at {args.rate}/s", flush=True)
            rounds.append(row)
    finally:
        if servers is not None:
            servers.stop()
        apiserver.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    summary = summarize(rounds)
    for rnd in rounds:  # the raw latencies made the percentiles; the JSON keeps the figures
        for row in rnd.values():
            row["latency"] = {**percentiles(row["latency"].pop("latencies")), **row["latency"]}
    anchor = summary["dnsmasq"]
    vs = {name: {
        "qps": round(s["throughput"]["qps"] / anchor["throughput"]["qps"], 3),
        "cpu_per_query": round(s["throughput"]["server_cpu_us_per_query"]
                               / anchor["throughput"]["server_cpu_us_per_query"], 3),
        "p50": round(s["latency"]["p50_ms"] / anchor["latency"]["p50_ms"], 3),
        "p99": round(s["latency"]["p99_ms"] / anchor["latency"]["p99_ms"], 3)} for name, s in summary.items()}
    result = {
        "benchmark": "dns",
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "python": platform.python_version(),
                    "dnsmasq": subprocess.run(["dnsmasq", "--version"], capture_output=True,
                                              text=True).stdout.splitlines()[0],
                    "dnsperf": subprocess.run(["dnsperf", "-h"], capture_output=True,
                                              text=True).stdout.strip().splitlines()[-1],
                    "pinning": f"servers on CPU {server_cpu}, dnsperf on CPU {client_cpu} (taskset)"},
        "params": {"services": args.services, "seconds": args.seconds, "rounds": args.rounds,
                   "rate": args.rate, "outstanding": 100},
        "summary": summary,
        "vs_dnsmasq": vs,
        "targets_vs_dnsmasq": TARGETS,
        "meets_targets": {"qps": vs["netplane"]["qps"] >= TARGETS["qps_vs_dnsmasq"],
                          "p99": vs["netplane"]["p99"] <= TARGETS["p99_vs_dnsmasq"]},
        "rounds": rounds,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    with contextlib.suppress(ImportError):
        plot(result, args.out.with_suffix(".png"))
    print(json.dumps({k: result[k] for k in ("summary", "vs_dnsmasq", "meets_targets")}, indent=2))


if __name__ == "__main__":
    main()
