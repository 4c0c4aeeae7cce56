"""iptables mode at 1k-10k services: sync times beside the raw iptables-restore floor, for
nf_tables and legacy; network programming latency from an API write to the rule in the
kernel; the proxy's memory; and python-iptables (libiptc) measured as a sync path.

Run as root: `make bench-proxy-iptables` (or `python -m bench.proxy_iptables --out FILE`).
Every measurement runs in network namespaces the benchmark creates and removes.

- Sync times drive the real backend (netplane/proxy_iptables/backend.py) with a synthetic
  service map, N services x E endpoints: the first full sync, a full resync of populated
  tables, and a one-endpoint change (partial sync). The floor is the raw
  `iptables-<variant>-restore --noflush` of exactly what the backend applied, in a fresh
  namespace: the ratio is what netplane adds (rendering, iptables-save, the jump rules).
- Network programming latency runs the whole chain: a real apiserver holding N services and
  their EndpointSlices, `netplane proxy --mode iptables`, and a slice PUT whose new
  endpoint's chain is polled for in the kernel (`iptables -t nat -S CHAIN`, ~3 ms at 10k).
- libiptc: the same full rule set built through python-iptables and committed once,
  against iptables-legacy-restore (libiptc speaks only to legacy tables).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from types import MappingProxyType
from typing import Any

from bench.common import namespace
from netplane.kernel.iptables import Iptables
from netplane.model import ProxyState, StateChange, diff
from netplane.model.servicemap import Endpoint, ServicePort, ServicePortName
from netplane.proxy_iptables import chains
from netplane.proxy_iptables.backend import IptablesBackend
from netplane.proxy_iptables.renderer import Renderer, RenderOptions
from netplane.trace.ruleset import Option, parse_spec

CLUSTER_CIDR = "10.244.0.0/16"
NETPLANE = [sys.executable, "-m", "netplane.cli.main"]
TARGETS = {"full_sync_vs_floor": 1.2, "one_change_10k_end_to_end_ms": 100.0, "memory_10k_mb": 300.0}
CLONE_NEWNET = 0x40000000


# -- namespaces ---------------------------------------------------------------------------

def in_namespace(name: str, *argv: str, stdin: bytes | None = None, timeout: float | None = None,
                 ) -> subprocess.CompletedProcess[bytes]:
    """Runs `argv` in namespace `name`. Every measurement is a process of its own there:
    setns() moves only one thread, and the backend runs iptables from worker threads too,
    which must never reach the host's tables. A failure says what the command printed."""
    done = subprocess.run(["ip", "netns", "exec", name, *argv], input=stdin, capture_output=True,
                          timeout=timeout)
    if done.returncode != 0:
        tail = done.stderr.decode(errors="replace").strip().splitlines()[-20:]
        raise RuntimeError(f"{' '.join(argv[:6])} in {name} exited {done.returncode}:\n" + "\n".join(tail))
    return done


def worker(name: str, *args: str) -> dict[str, Any]:
    """`python -m bench.proxy_iptables --worker ...` in namespace `name`; its JSON answer."""
    out = in_namespace(name, sys.executable, "-m", "bench.proxy_iptables", "--worker", *args)
    return json.loads(out.stdout.decode().strip().splitlines()[-1])


# -- synthetic state ----------------------------------------------------------------------

def _name(i: int) -> ServicePortName:
    return ServicePortName("bench", f"svc-{i}", "http", "TCP")


def _endpoint(k: int) -> Endpoint:
    ip = f"10.{100 + k // 62500}.{(k // 250) % 250}.{k % 250 + 1}"
    return Endpoint(ip, 8080, node_name=f"node-{k % 3}")


def synthetic_state(services: int, endpoints: int) -> ProxyState:
    svcs, eps = {}, {}
    for i in range(services):
        name = _name(i)
        svcs[name] = ServicePort(cluster_ips=(f"10.96.{i // 250}.{i % 250 + 1}",), port=80, protocol="TCP")
        eps[name] = tuple(_endpoint(i * endpoints + j) for j in range(endpoints))
    return ProxyState(MappingProxyType(svcs), MappingProxyType(eps))


def one_endpoint_changed(state: ProxyState, k: int) -> tuple[ProxyState, StateChange]:
    name = _name((k * 7919) % len(state.services))
    eps = list(state.endpoints_for(name))
    eps[0] = Endpoint(f"10.200.{k // 250}.{k % 250 + 1}", 8080, node_name="node-0")
    endpoints = dict(state.endpoints)
    endpoints[name] = tuple(eps)
    new = ProxyState(state.services, MappingProxyType(endpoints))
    return new, diff(ProxyState(MappingProxyType({name: state.services[name]}),
                                MappingProxyType({name: state.endpoints_for(name)})),
                     ProxyState(MappingProxyType({name: new.services[name]}),
                                MappingProxyType({name: new.endpoints_for(name)})))


def _restore(variant: str, text: str, netns: str | None = None) -> float:
    argv = [f"iptables-{variant}-restore", "-w", "5", "--noflush"]
    start = time.perf_counter()
    if netns is None:
        subprocess.run(argv, input=text.encode(), check=True, capture_output=True)
    else:
        in_namespace(netns, *argv, stdin=text.encode())
    return time.perf_counter() - start


def _rss_mb(pid: int, field: str = "VmHWM") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


# -- sync times ---------------------------------------------------------------------------

async def sync_worker(variant: str, services: int, endpoints: int, changes: int,
                      dump: Path) -> dict[str, Any]:
    """In its own namespace: the backend's full sync, a full resync, and one-endpoint
    changes with their floor; the first full sync's transactions go to `dump`."""
    state = synthetic_state(services, endpoints)
    result: dict[str, Any] = {"variant": variant, "services": services, "endpoints_per_service": endpoints}
    backend = IptablesBackend("node-0", iptables=Iptables(variant), cluster_cidr=CLUSTER_CIDR)
    start = time.perf_counter()
    stats = await backend.sync(state, StateChange(), full=True)
    result["full_sync_s"] = round(time.perf_counter() - start, 3)
    result["rules"] = stats.rules
    await asyncio.to_thread(dump.write_text, json.dumps(list(backend.last_transactions)))
    result["transactions_per_full_sync"] = len(backend.last_transactions)
    start = time.perf_counter()
    await backend.sync(state, StateChange(), full=True)
    result["full_resync_s"] = round(time.perf_counter() - start, 3)
    partial, floor = [], []
    for k in range(changes):
        state, change = one_endpoint_changed(state, k)
        start = time.perf_counter()
        await backend.sync(state, change, full=False)
        partial.append(time.perf_counter() - start)
        floor.append(_restore(variant, backend.last_transactions[0]))  # the same input once more
    result["one_change_ms"] = {"median": round(statistics.median(partial) * 1000, 1),
                               "max": round(max(partial) * 1000, 1)}
    result["one_change_floor_ms"] = round(statistics.median(floor) * 1000, 1)
    result["one_change_vs_floor"] = round(statistics.median(partial) / statistics.median(floor), 2)
    # What any rule change costs at this size, whoever writes it: one RETURN appended to an
    # empty chain of its own. With nft the kernel re-validates the whole table's jumps on every
    # commit that adds a rule, so this grows with the table (it is system time, not ours).
    # The same append without a verdict (a bare source match, which nf_tables need not
    # validate) shows that it is the validation: every rule of this mode has a verdict.
    _restore(variant, "*nat\n:KUBE-BENCH-PROBE - [0:0]\nCOMMIT\n")
    appends = [_restore(variant, "*nat\n-A KUBE-BENCH-PROBE -j RETURN\nCOMMIT\n") for _ in range(changes)]
    result["one_rule_append_ms"] = round(statistics.median(appends) * 1000, 1)
    bare = [_restore(variant, f"*nat\n-A KUBE-BENCH-PROBE -s 203.0.113.{k + 1}/32\nCOMMIT\n")
            for k in range(changes)]
    result["one_rule_append_without_verdict_ms"] = round(statistics.median(bare) * 1000, 1)
    result["worker_peak_memory_mb"] = _rss_mb(os.getpid())
    return result


def sync_times(variant: str, services: int, endpoints: int, changes: int, tmp: Path) -> dict[str, Any]:
    dump = tmp / f"transactions-{variant}-{services}.json"
    with namespace("ipt") as ns:
        result = worker(ns, "sync", variant, str(services), str(endpoints), str(changes), str(dump))
    transactions = json.loads(dump.read_text())
    dump.unlink()
    with namespace("ipt") as ns:
        result["full_sync_floor_s"] = round(sum(_restore(variant, t, ns) for t in transactions), 3)
    result["full_sync_vs_floor"] = round(result["full_sync_s"] / result["full_sync_floor_s"], 2)
    return result


def single_transaction(services: int, endpoints: int, timeout: float) -> dict[str, Any]:
    """kube-proxy's way on nf_tables: the whole rule set as one restore."""
    text = Renderer(RenderOptions(node_name="node-0", cluster_cidr=CLUSTER_CIDR)).render(
        synthetic_state(services, endpoints)).text
    with namespace("ipt") as ns:
        start = time.perf_counter()
        try:
            in_namespace(ns, "iptables-nft-restore", "--noflush", stdin=text.encode(), timeout=timeout)
        except subprocess.TimeoutExpired:
            return {"services": services, "single_transaction_s": None, "gave_up_after_s": timeout}
        return {"services": services, "single_transaction_s": round(time.perf_counter() - start, 2)}


# -- python-iptables as a sync path -------------------------------------------------------

_IPTC_BUILTIN = {"-s": "src", "-d": "dst", "-p": "protocol", "-i": "in_interface", "-o": "out_interface"}

def _iptc_rule(iptc: Any, words: list[str]) -> Any:
    """One rendered rule (after "-A CHAIN") as a python-iptables Rule, read by the trace's
    rule parser."""
    matches, target = parse_spec(words)
    rule = iptc.Rule()

    def value(option: Option) -> str | None:
        text = " ".join(option.values) or None
        return ("!" + text) if option.negated and text else text

    for match in matches:
        if not match.module:  # iptables' own options
            for option in match.options:
                if option.name not in _IPTC_BUILTIN:
                    raise ValueError(f"no python-iptables field for {option.name} in {words}")
                setattr(rule, _IPTC_BUILTIN[option.name], value(option))
            continue
        created = rule.create_match(match.module)
        for option in match.options:
            created.set_parameter(option.name.lstrip("-"), value(option))
    if target.name:
        rule.target = iptc.Target(rule, target.name)
        for option in target.options:
            rule.target.set_parameter(option.name.lstrip("-"), value(option))
    return rule


def libiptc_worker(services: int, endpoints: int) -> dict[str, Any]:
    """In its own namespace: the full rule set built with python-iptables, one commit per table."""
    import iptc

    text = Renderer(RenderOptions(node_name="node-0", cluster_cidr=CLUSTER_CIDR)).render(
        synthetic_state(services, endpoints)).text
    start = time.perf_counter()
    table = None
    for line in text.splitlines():
        if line.startswith("*"):
            table = iptc.Table(line[1:])
            table.autocommit = False
        elif line.startswith(":"):
            name = line[1:].split()[0]
            if not table.is_chain(name):
                table.create_chain(name)
        elif line.startswith("-A"):
            words = shlex.split(line)
            iptc.Chain(table, words[1]).append_rule(_iptc_rule(iptc, words[2:]))
        elif line == "COMMIT":
            table.commit()
    libiptc_s = time.perf_counter() - start
    saved = _kube_rules(subprocess.run(["iptables-legacy-save"], capture_output=True, text=True,
                                       check=True).stdout)
    return {"python_iptables_s": round(libiptc_s, 3),
            "rules_rendered": sum(1 for line in text.splitlines() if line.startswith("-A")),
            "rules_in_kernel": len(saved), "kernel_rules_sha256": _digest(saved)}


def _kube_rules(saved: str) -> list[str]:
    """The KUBE-* rules of iptables-save output."""
    return [line for line in saved.splitlines() if line.startswith("-A KUBE-")]


def _digest(lines: list[str]) -> str:
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def libiptc_vs_restore(services: int, endpoints: int) -> dict[str, Any]:
    text = Renderer(RenderOptions(node_name="node-0", cluster_cidr=CLUSTER_CIDR)).render(
        synthetic_state(services, endpoints)).text
    with namespace("ipt") as ns:
        restore_s = _restore("legacy", text, ns)
        restored = _digest(_kube_rules(in_namespace(ns, "iptables-legacy-save").stdout.decode()))
    with namespace("ipt") as ns:
        result = worker(ns, "libiptc", str(services), str(endpoints))
    libiptc_s = result["python_iptables_s"]
    # Both paths must have built the same table for their times to compare.
    result["same_rules_as_restore"] = result.pop("kernel_rules_sha256") == restored
    return {"services": services, **result, "iptables_legacy_restore_s": round(restore_s, 3),
            "python_iptables_vs_restore": round(libiptc_s / restore_s, 2),
            "kept": "iptables-restore" if restore_s <= libiptc_s else "python-iptables"}


# -- network programming latency ---------------------------------------------------------

@contextlib.contextmanager
def _children(tmp: Path) -> Iterator[Any]:
    procs: list[subprocess.Popen[bytes]] = []

    def start(name: str, *argv: str) -> subprocess.Popen[bytes]:
        log = (tmp / f"{name}.log").open("ab")
        proc = subprocess.Popen(list(argv), stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                env={**os.environ, "PYTHONUNBUFFERED": "1"})
        procs.append(proc)
        return proc

    try:
        yield start
    finally:
        for proc in reversed(procs):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, 15)
            proc.wait()


async def _in_kernel(chain: str) -> bool:
    proc = await asyncio.create_subprocess_exec("iptables-nft", "-t", "nat", "-S", chain,
                                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return await proc.wait() == 0


async def programming_worker(services: int, endpoints: int, changes: int, tmp: Path) -> dict[str, Any]:
    """In its own namespace: apiserver and proxy as child processes (so in it too); each
    change is a slice PUT, timed until the new endpoint's chain is in the kernel."""
    from netplane.client.rest import ApiClient, resource_path

    data = tmp / "apiserver"
    kubeconfig = data / "admin.kubeconfig"
    with _children(tmp) as start:
        start("apiserver", *NETPLANE, "apiserver", "--data-dir", str(data), "--secure-port", "6443")
        for _ in range(300):
            if await asyncio.to_thread(kubeconfig.exists):
                break
            await asyncio.sleep(0.1)
        async with ApiClient.from_kubeconfig(kubeconfig) as client:
            await _wait_ready(client)
            create_s = await _create(client, services, endpoints)
            # The proxy's defaults (--min-sync-period 1s): changes come more than a second
            # apart, as isolated changes do, so none waits for the minimum interval.
            proxy = start("proxy", *NETPLANE, "proxy", "--mode", "iptables", "--kubeconfig", str(kubeconfig),
                          "--node-name", "node-0", "--cluster-cidr", CLUSTER_CIDR)
            t0 = time.perf_counter()
            await _wait_synced(proxy)
            first_sync_s = time.perf_counter() - t0
            latencies, writes = [], []
            for k in range(changes):
                await asyncio.sleep(1.1)
                i = (k * 7919) % services
                path = resource_path("discovery.k8s.io/v1", "endpointslices", "bench", f"svc-{i}-1")
                body = await client.get(path)
                ip = f"10.201.{k // 250}.{k % 250 + 1}"
                body["endpoints"][0]["addresses"] = [ip]
                sep = chains.endpoint_chain(f"bench/svc-{i}:http", "tcp", f"{ip}:8080")
                start_t = time.perf_counter()
                await client.update(path, body)
                writes.append(time.perf_counter() - start_t)
                while not await _in_kernel(sep):  # noqa: ASYNC110 - the kernel sends no event
                    await asyncio.sleep(0.002)
                latencies.append(time.perf_counter() - start_t)
            peak, steady = _rss_mb(proxy.pid), _rss_mb(proxy.pid, "VmRSS")
    ordered = sorted(latencies)
    p99 = ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]
    return {"services": services, "endpoints_per_service": endpoints, "changes": changes,
            "api_objects_created_s": round(create_s, 1), "proxy_first_full_sync_s": round(first_sync_s, 1),
            "api_write_ms_p50": round(statistics.median(writes) * 1000, 1),
            "programming_ms": {"p50": round(statistics.median(ordered) * 1000, 1),
                               "p99": round(p99 * 1000, 1), "max": round(ordered[-1] * 1000, 1)},
            "proxy_memory_mb": {"peak": peak, "steady": steady}}


async def _wait_ready(client: Any) -> None:
    for _ in range(300):
        with contextlib.suppress(Exception):
            await client.get("/readyz")
            return
        await asyncio.sleep(0.1)
    raise RuntimeError("the apiserver did not become ready")


async def _create(client: Any, services: int, endpoints: int) -> float:
    from netplane.client.rest import resource_path

    await client.create(resource_path("v1", "namespaces"), {"apiVersion": "v1", "kind": "Namespace",
                                                             "metadata": {"name": "bench"}})
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(services):
        queue.put_nowait(i)

    async def worker() -> None:
        while not queue.empty():
            i = queue.get_nowait()
            await client.create(resource_path("v1", "services", "bench"), {
                "apiVersion": "v1", "kind": "Service", "metadata": {"name": f"svc-{i}"},
                "spec": {"ports": [{"name": "http", "port": 80, "targetPort": 8080}]}})
            await client.create(resource_path("discovery.k8s.io/v1", "endpointslices", "bench"), {
                "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                "metadata": {"name": f"svc-{i}-1", "labels": {"kubernetes.io/service-name": f"svc-{i}"}},
                "addressType": "IPv4", "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
                "endpoints": [{"addresses": [_endpoint(i * endpoints + j).ip], "conditions": {"ready": True},
                               "nodeName": f"node-{j % 3}"} for j in range(endpoints)]})

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(32)))
    return time.perf_counter() - start


async def _wait_synced(proxy: subprocess.Popen[bytes]) -> None:
    import aiohttp

    async with aiohttp.ClientSession() as session:
        while proxy.poll() is None:
            with contextlib.suppress(aiohttp.ClientError, OSError):
                async with session.get("http://127.0.0.1:10249/metrics") as resp:
                    text = await resp.text()
                if any(line.startswith("kubeproxy_sync_proxy_rules_last_timestamp_seconds ")
                       and float(line.split()[1]) > 0 for line in text.splitlines()):
                    return
            await asyncio.sleep(0.2)
    raise RuntimeError(f"the proxy exited with {proxy.returncode}")


# -- report -------------------------------------------------------------------------------

def plot(result: dict[str, Any], png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for variant, style in (("nft", "-"), ("legacy", "--")):
        rows = [r for r in result["sync"] if r["variant"] == variant]
        if not rows:
            continue
        xs = [r["services"] for r in rows]
        ax.plot(xs, [r["full_sync_s"] for r in rows], style, marker="o", label=f"{variant}: full sync")
        ax.plot(xs, [r["full_sync_floor_s"] for r in rows], style, marker="x",
                label=f"{variant}: restore floor")
        ax.plot(xs, [r["one_change_ms"]["median"] / 1000 for r in rows], style, marker="s",
                label=f"{variant}: one endpoint change")
    single = [r for r in result.get("nft_single_transaction", []) if r["single_transaction_s"]]
    if single:
        ax.plot([r["services"] for r in single], [r["single_transaction_s"] for r in single], ":", marker="^",
                label="nft: whole rule set as one restore (kube-proxy's way)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("services (x10 endpoints)")
    ax.set_ylabel("seconds")
    ax.set_title("iptables mode sync times")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(png, dpi=100)


def orchestrate(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    sizes = [int(x) for x in args.sizes.split(",")]
    result: dict[str, Any] = {"sync": [], "nft_single_transaction": []}
    for variant in args.variants.split(","):
        for n in sizes:
            row = sync_times(variant, n, args.endpoints, args.changes, tmp)
            print(json.dumps(row), flush=True)
            result["sync"].append(row)
    for n in [s for s in (1000, 2000) if s <= max(sizes)]:
        row = single_transaction(n, args.endpoints, timeout=300)
        print(json.dumps(row), flush=True)
        result["nft_single_transaction"].append(row)
    result["python_iptables"] = libiptc_vs_restore(args.libiptc_services, args.endpoints)
    print(json.dumps(result["python_iptables"]), flush=True)
    with namespace("ipt") as ns:
        result["programming"] = worker(ns, "programming", str(args.programming_services), str(args.endpoints),
                                       str(args.programming_changes), str(tmp))
    print(json.dumps(result["programming"]), flush=True)
    return result


async def run_worker(argv: list[str]) -> dict[str, Any]:
    kind, *rest = argv
    if kind == "sync":
        variant, services, endpoints, changes, dump = rest
        return await sync_worker(variant, int(services), int(endpoints), int(changes), Path(dump))
    if kind == "libiptc":
        return libiptc_worker(int(rest[0]), int(rest[1]))
    if kind == "programming":
        services, endpoints, changes, tmp = rest
        return await programming_worker(int(services), int(endpoints), int(changes), Path(tmp))
    raise SystemExit(f"unknown worker {kind}")


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        print(json.dumps(asyncio.run(run_worker(sys.argv[2:]))))
        return
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="1000,5000,10000")
    p.add_argument("--endpoints", type=int, default=10)
    p.add_argument("--variants", default="nft,legacy")
    p.add_argument("--changes", type=int, default=10, help="one-endpoint changes timed per size")
    p.add_argument("--programming-services", type=int, default=10000)
    p.add_argument("--programming-changes", type=int, default=30)
    p.add_argument("--libiptc-services", type=int, default=1000)
    p.add_argument("--out", type=Path, default=Path("bench/results/proxy_iptables.json"))
    args = p.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench/proxy_iptables: needs root (it creates network namespaces)")
    tmp = Path(tempfile.mkdtemp(prefix="np-bench-ipt-"))
    try:
        result = orchestrate(args, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    by = {(r["variant"], r["services"]): r for r in result["sync"]}
    largest = max(int(x) for x in args.sizes.split(","))
    nft_full = [r["full_sync_vs_floor"] for r in result["sync"] if r["variant"] == "nft"]
    report = {
        "benchmark": "proxy_iptables",
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "python": platform.python_version(),
                    "iptables": subprocess.run(["iptables", "--version"], capture_output=True,
                                               text=True).stdout.strip()},
        "params": vars(args) | {"out": str(args.out)},
        **result,
        "targets": TARGETS,
        "meets_targets": {
            "full_sync_vs_floor": bool(nft_full) and max(nft_full) <= TARGETS["full_sync_vs_floor"],
            "one_change_10k_end_to_end_ms":
                result["programming"]["programming_ms"]["p99"] < TARGETS["one_change_10k_end_to_end_ms"],
            "memory_10k_mb": result["programming"]["proxy_memory_mb"]["peak"] < TARGETS["memory_10k_mb"],
        },
        "nft_one_change_at_largest_ms": by.get(("nft", largest), {}).get("one_change_ms"),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    with contextlib.suppress(ImportError):
        plot(report, args.out.with_suffix(".png"))
    print(json.dumps({k: report[k] for k in ("meets_targets", "programming", "python_iptables")}, indent=2))


if __name__ == "__main__":
    main()
