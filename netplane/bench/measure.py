"""One mode at one size, measured from inside the lab's node namespace:
`python -m netplane.bench.measure MODE SERVICES ENDPOINTS LABTAG WORKDIR OPTIONS-JSON`.

The apiserver and the proxy are child processes (so they live in the node namespace too);
clients run in the client namespace through `ip netns exec`. Progress goes to stderr as
one JSON object per line ({"step": ...}), the result to stdout as the last line.

What is measured, and how (the same for every mode):
- full sync: the first sync's duration from the proxy's own
  `kubeproxy_sync_proxy_rules_duration_seconds` (the whole state, after the informers synced);
- one change: one endpoint of one synthetic service replaced through the API, more than
  --min-sync-period apart; the sync it caused, from the same histogram;
- network programming latency: the `probe` service gets a real endpoint through the API
  and a client polls its ClusterIP every 2 ms until a request succeeds (then the endpoint
  is removed again and the client waits for failures); API write to first success;
- connection set-up: sequential new connections each carrying one request (connect, GET,
  answer, close) to `web`, timed one by one; the answers also give the spread over its
  endpoints;
- requests/s: wrk over keep-alive connections, and over a new connection per request;
- bulk: one 1 GiB download through `bulk` with curl;
- the proxy's CPU (user+system of its process) during the traffic phases, and memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from netplane.bench import clusterstate
from netplane.bench.lab import CLUSTER_CIDR, endpoint_ip, in_ns
from netplane.client.rest import ApiClient

NETPLANE = [sys.executable, "-m", "netplane.cli.main"]
CLIENT = [sys.executable, "-m", "netplane.bench.client"]
METRICS = "http://127.0.0.1:10249/metrics"
CHANGE_SPACING_S = 1.1  # more than the proxy's --min-sync-period (1 s): isolated changes
DEFAULTS = {"changes": 5, "programming": 10, "requests": 1000, "wrk_seconds": 5.0, "wrk_connections": 16,
            "bulk": True}


def progress(step: str) -> None:
    print(json.dumps({"step": step}), file=sys.stderr, flush=True)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def summary_ms(seconds: list[float]) -> dict[str, float]:
    return {"p50": round(statistics.median(seconds) * 1000, 2),
            "p99": round(percentile(seconds, 0.99) * 1000, 2),
            "max": round(max(seconds) * 1000, 2), "n": len(seconds)}


# -- processes ----------------------------------------------------------------------------

class Children:
    """Child processes, each in a session of its own, all stopped on exit."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, name: str, *argv: str, stdin: int | None = None,
              stdout: int | None = None) -> subprocess.Popen[bytes]:
        log = (self.logs / f"{name}.log").open("ab")
        proc = subprocess.Popen(list(argv), stdin=stdin, stdout=stdout or log, stderr=log,
                                start_new_session=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        self.procs.append(proc)
        return proc

    def stop(self) -> None:
        for proc in reversed(self.procs):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, 15)
        for proc in reversed(self.procs):
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, 9)
                proc.wait()


@contextlib.contextmanager
def children(logs: Path) -> Iterator[Children]:
    c = Children(logs)
    try:
        yield c
    finally:
        c.stop()


# -- the proxy's metrics and /proc ----------------------------------------------------------

def parse_metrics(text: str) -> dict[str, float]:
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out


async def metrics(session: Any) -> dict[str, float]:
    async with session.get(METRICS) as resp:
        return parse_metrics(await resp.text())


SYNC_SUM = "kubeproxy_sync_proxy_rules_duration_seconds_sum"
SYNC_COUNT = "kubeproxy_sync_proxy_rules_duration_seconds_count"


SYNC_TIMEOUT_S = 1800


async def wait_for_sync(session: Any, proxy: subprocess.Popen[bytes], after: float) -> dict[str, float]:
    """The metrics once the proxy has completed more than `after` syncs."""
    import aiohttp

    deadline = time.monotonic() + SYNC_TIMEOUT_S
    while time.monotonic() < deadline:
        if proxy.poll() is not None:
            raise RuntimeError(f"the proxy exited with {proxy.returncode}")
        with contextlib.suppress(aiohttp.ClientError, OSError):
            m = await metrics(session)
            if m.get(SYNC_COUNT, 0) > after:
                return m
        await asyncio.sleep(0.02)
    raise RuntimeError("the proxy did not sync")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_busy_seconds() -> float:
    """CPU time spent by the whole machine (every process and the kernel, softirqs included)."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]
    return (sum(values[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def memory_mb(pid: int) -> dict[str, float]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmHWM", "VmRSS"):
            fields[key] = round(int(value.split()[0]) / 1024, 1)
    return {"peak": fields["VmHWM"], "rss": fields["VmRSS"]}


# -- traffic ------------------------------------------------------------------------------

def client_json(lab: str, *args: str) -> Any:
    out = subprocess.run(in_ns(f"npb-{lab}-client", *CLIENT, *args), capture_output=True, text=True,
                         check=True, timeout=600)
    return json.loads(out.stdout.strip().splitlines()[-1])


_WRK_RATE = re.compile(r"Requests/sec:\s+([\d.]+)")
_WRK_PCT = re.compile(r"^\s+(50|99)(?:\.000)?%\s+([\d.]+)(us|ms|s)\s*$", re.M)
_UNIT = {"us": 1e-3, "ms": 1.0, "s": 1000.0}


def parse_wrk(text: str) -> dict[str, float]:
    rate = _WRK_RATE.search(text)
    if rate is None:
        raise RuntimeError(f"wrk printed no rate: {text[-500:]}")
    out = {"requests_per_s": round(float(rate.group(1)), 1)}
    for pct, value, unit in _WRK_PCT.findall(text):
        out[f"p{pct}_ms"] = round(float(value) * _UNIT[unit], 3)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    out["errors"] = (int(errors.group(1)) if errors else 0) + (
        sum(int(x) for x in socket_errors.groups()) if socket_errors else 0)
    return out


def wrk(lab: str, vip: str, seconds: float, connections: int, *, new_connections: bool) -> dict[str, float]:
    argv = ["wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", "--latency"]
    if new_connections:
        argv += ["-H", "Connection: close"]
    out = subprocess.run(in_ns(f"npb-{lab}-client", *argv, f"http://{vip}/"), capture_output=True,
                         text=True, check=True, timeout=seconds + 120)
    return parse_wrk(out.stdout)


def bulk(lab: str, vip: str) -> dict[str, float]:
    out = subprocess.run(in_ns(f"npb-{lab}-client", "curl", "-fsS", "-o", "/dev/null", "-w",
                               "%{size_download} %{time_total}", f"http://{vip}/bulk"),
                         capture_output=True, text=True, check=True, timeout=600)
    size, seconds = out.stdout.split()
    return {"bytes": int(size), "seconds": round(float(seconds), 3),
            "gbit_per_s": round(int(size) * 8 / float(seconds) / 1e9, 3)}


def spread(by_endpoint: dict[str, int], endpoints: int) -> dict[str, Any]:
    counts = [by_endpoint.get(f"ep-{i}", 0) for i in range(endpoints)]
    total = sum(counts)
    even = total / endpoints
    return {"counts": counts, "connections": total,
            "max_deviation_pct": round(max(abs(c - even) for c in counts) / even * 100, 1) if total else None,
            "cv": round(statistics.pstdev(counts) / even, 3) if total else None}


# -- the measurement ------------------------------------------------------------------------

async def measure(mode: str, services: int, endpoints: int, lab: str, workdir: Path,
                  opts: dict[str, Any]) -> dict[str, Any]:
    import aiohttp

    o = DEFAULTS | opts
    result: dict[str, Any] = {"mode": mode, "services": services, "endpoints": endpoints}
    data = workdir / "apiserver"
    kubeconfig = data / "admin.kubeconfig"
    with children(workdir) as kids:
        kids.start("apiserver", *NETPLANE, "apiserver", "--data-dir", str(data),
                   "--bind-address", "127.0.0.1")
        for _ in range(600):
            if kubeconfig.exists():
                break
            await asyncio.sleep(0.1)
        async with ApiClient.from_kubeconfig(kubeconfig) as api, aiohttp.ClientSession() as session:
            await _ready(api)
            progress("populating the API")
            t0 = time.perf_counter()
            vips = await clusterstate.populate(api, services, endpoints)
            result["api_populate_s"] = round(time.perf_counter() - t0, 2)

            progress("full sync")
            proxy = kids.start("proxy", *NETPLANE, "-v", "proxy", "--mode", mode,
                               "--kubeconfig", str(kubeconfig), "--node-name", "node-0",
                               "--cluster-cidr", CLUSTER_CIDR,
                               "--healthz-bind-address", "127.0.0.1:10256",
                               "--metrics-bind-address", "127.0.0.1:10249", *o.get("proxy_args", ()))
            m = await wait_for_sync(session, proxy, 0)
            result["full_sync_s"] = round(m[SYNC_SUM] / m[SYNC_COUNT], 4)

            progress("one-change syncs")
            changes = []
            for k in range(o["changes"]):
                await asyncio.sleep(CHANGE_SPACING_S)
                before = await metrics(session)
                i = (k * 7919) % services
                addresses = [clusterstate.synthetic_ip(i * endpoints + j) for j in range(endpoints)]
                addresses[0] = f"10.251.{k // 250}.{k % 250 + 1}"
                await clusterstate.set_endpoints(api, f"svc-{i}", addresses)
                after = await wait_for_sync(session, proxy, before[SYNC_COUNT])
                syncs = after[SYNC_COUNT] - before[SYNC_COUNT]
                changes.append((after[SYNC_SUM] - before[SYNC_SUM]) / syncs)
            result["one_change_sync_ms"] = summary_ms(changes)

            progress("network programming latency")
            result["programming_ms"] = summary_ms(await _programming(api, kids, lab, vips["probe"],
                                                                     endpoints, o["programming"]))

            progress("connection set-up")
            cpu0, busy0, wall0 = cpu_seconds(proxy.pid), machine_busy_seconds(), time.perf_counter()
            samples = await asyncio.to_thread(client_json, lab, "requests", vips["web"], str(o["requests"]))
            lat = [us / 1e6 for us in samples["latencies_us"]]
            result["connect_request_ms"] = summary_ms(lat) | {"failures": samples["failures"]}
            result["connect_request_samples_us"] = [round(x, 1) for x in samples["latencies_us"]]
            result["spread"] = spread(samples["by_endpoint"], endpoints)

            progress("requests/s (wrk)")
            for key, new in (("wrk_keepalive", False), ("wrk_new_connections", True)):
                result[key] = await asyncio.to_thread(wrk, lab, vips["web"], o["wrk_seconds"],
                                                      o["wrk_connections"], new_connections=new)
            if o["bulk"]:
                progress("bulk transfer")
                result["bulk"] = await asyncio.to_thread(bulk, lab, vips["bulk"])
            wall = time.perf_counter() - wall0
            result["proxy_cpu_pct_during_traffic"] = round((cpu_seconds(proxy.pid) - cpu0) / wall * 100, 1)
            result["machine_cpu_pct_during_traffic"] = round((machine_busy_seconds() - busy0) / wall * 100, 1)
            result["proxy_memory_mb"] = memory_mb(proxy.pid)
    return result


async def _ready(api: ApiClient) -> None:
    for _ in range(600):
        with contextlib.suppress(Exception):
            await api.get("/readyz")
            return
        await asyncio.sleep(0.1)
    raise RuntimeError("the apiserver did not become ready")


async def _programming(api: ApiClient, kids: Children, lab: str, vip: str, endpoints: int,
                       rounds: int) -> list[float]:
    probe = kids.start("probe", *in_ns(f"npb-{lab}-client", *CLIENT, "probe", vip),
                       stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert probe.stdin is not None and probe.stdout is not None

    def ask(what: str) -> float:
        probe.stdin.write(f"{what}\n".encode())  # type: ignore[union-attr]
        probe.stdin.flush()  # type: ignore[union-attr]
        answer = probe.stdout.readline().decode().strip()  # type: ignore[union-attr]
        if not answer or answer == "timeout":
            raise RuntimeError(f"the probe saw no '{what}' within its timeout")
        return float(answer)

    latencies = []
    for k in range(rounds):
        await asyncio.sleep(CHANGE_SPACING_S)
        start = time.monotonic()
        await clusterstate.set_endpoints(api, "probe", [endpoint_ip(k % endpoints)])
        latencies.append(await asyncio.to_thread(ask, "up") - start)
        await asyncio.sleep(CHANGE_SPACING_S)
        await clusterstate.set_endpoints(api, "probe", [])
        await asyncio.to_thread(ask, "down")
    return latencies


def main(argv: list[str]) -> int:
    mode, services, endpoints, lab, workdir, opts = argv
    if shutil.which("wrk") is None:
        print("wrk is not installed (Debian package wrk; `make bench-deps`)", file=sys.stderr)
        return 2
    result = asyncio.run(measure(mode, int(services), int(endpoints), lab, Path(workdir), json.loads(opts)))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
