"""Userspace mode's data plane beside a direct connection and HAProxy, in one run.

Run as root: `make bench-proxy-userspace` (or `python -m bench.proxy_userspace --out FILE`).
Everything happens inside one network namespace that the benchmark creates and removes:
nginx (one worker) is the backend, wrk (one thread) the client, and the same requests go
- directly to nginx (the floor),
- through HAProxy 2.6 in TCP mode (one thread, splice on: its fastest relay),
- through `netplane proxy --mode userspace`, fed by a real `netplane apiserver` with a
  Service and an EndpointSlice, reached the way pods reach it: its ClusterIP, which the
  proxy makes a local address of the node and listens on (no NAT on the path).

Figures per path: requests/s and latency p50/p99 for small requests on kept-alive
connections and for a new connection per request, and MB/s for a 1 GiB response; the
proxies' CPU seconds; every figure also as a ratio to HAProxy's and to the direct one.
Rounds interleave the paths so that a noisy neighbour hurts all of them alike.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.common import cpu_seconds, median_row, new_namespace, run, wait_for
from netplane.kernel import netns as ns

BACKEND_IP = "10.0.0.1"
NGINX_PORT, HAPROXY_PORT = 8080, 8081
CLUSTER_IP, SERVICE_PORT = "10.96.0.100", 80
TARGETS = {"keepalive_vs_haproxy": 1.0, "bulk_vs_haproxy": 1.0, "new_connections_vs_haproxy": 0.7}
NETPLANE = [sys.executable, "-m", "netplane.cli.main"]

NGINX_CONF = """
worker_processes 1;
daemon off;
user root root;  # the worker reads the 1 GiB file from the benchmark's private temp dir
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 100000000;
    client_body_temp_path {tmp}/nginx-body;
    proxy_temp_path {tmp}/nginx-proxy;
    fastcgi_temp_path {tmp}/nginx-fcgi;
    uwsgi_temp_path {tmp}/nginx-uwsgi;
    scgi_temp_path {tmp}/nginx-scgi;
    server {{
        listen {ip}:{port} backlog=4096;
        location = / {{ return 200 "ok\\n"; }}
        location = /big {{ alias {tmp}/big; }}
    }}
}}
"""

HAPROXY_CONF = """
global
    nbthread 1
    # Far above the benchmark's connections, and within the 20k fd limit seen on CI machines.
    maxconn 4000
defaults
    mode tcp
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    option splice-auto
listen relay
    bind {ip}:{port}
    server backend {ip}:{backend}
"""

MANIFEST = f"""
apiVersion: v1
kind: Service
metadata: {{name: bench, namespace: default}}
spec:
  clusterIP: {CLUSTER_IP}
  ports: [{{name: http, port: {SERVICE_PORT}, targetPort: {NGINX_PORT}, protocol: TCP}}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: bench-1
  namespace: default
  labels: {{kubernetes.io/service-name: bench}}
addressType: IPv4
endpoints: [{{addresses: [{BACKEND_IP}], conditions: {{ready: true}}, nodeName: bench}}]
ports: [{{name: http, port: {NGINX_PORT}, protocol: TCP}}]
"""


class Namespace:
    """The benchmark's network namespace and the processes in it; removed on exit."""

    def __init__(self, tmp: Path) -> None:
        self.name = ""
        self.tmp = tmp
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def __enter__(self) -> Namespace:
        self.name = new_namespace()
        try:
            run("ip", "-n", self.name, "addr", "add", f"{BACKEND_IP}/32", "dev", "lo")
            for key, value in (("net.ipv4.tcp_tw_reuse", "1"), ("net.ipv4.ip_local_port_range", "1024 65000"),
                               ("net.core.somaxconn", "4096")):
                run("ip", "netns", "exec", self.name, "sysctl", "-qw", f"{key}={value}")
        except BaseException:
            self.__exit__()
            raise
        return self

    def cmd(self, *argv: str) -> list[str]:
        return ["ip", "netns", "exec", self.name, *argv]

    def start(self, name: str, *argv: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        log = (self.tmp / f"{name}.log").open("ab")
        proc = subprocess.Popen(self.cmd(*argv), stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})})
        self.procs[name] = proc
        return proc

    def run_in(self, fn: Callable[..., Any], *args: Any) -> Any:
        return ns.run_in(self.name, fn, *args)

    def __exit__(self, *_: object) -> None:
        for proc in reversed(self.procs.values()):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        ns.delete(self.name)


def _http_ok(url: str) -> bool:
    with urllib.request.urlopen(url, timeout=2) as resp:
        return resp.status == 200


def _connects(ip: str, port: int) -> bool:
    with socket.create_connection((ip, port), timeout=2):
        return True


def _process_pid(parent: int, name: str) -> int:
    """The pid of `name` under `ip netns exec` (which execs, so usually the same pid)."""
    for _ in range(50):
        comm = Path(f"/proc/{parent}/comm").read_text().strip()
        if name in comm:
            return parent
        children = Path(f"/proc/{parent}/task/{parent}/children").read_text().split()
        if not children:
            break
        parent = int(children[0])
    return parent


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}


def _ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s)", text)
    if m is None:
        raise ValueError(f"wrk printed an unknown duration {text!r}")
    return float(m.group(1)) * _UNITS[m.group(2)]


def parse_wrk(out: str) -> dict[str, float]:
    """requests/s, latency p50/p99 (ms) and errors from `wrk --latency` output."""
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    p50 = re.search(r"^\s+50%\s+(\S+)", out, re.M)
    p99 = re.search(r"^\s+99%\s+(\S+)", out, re.M)
    if not (rps and p50 and p99):
        raise ValueError("cannot read wrk's output:\n" + out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"requests_per_s": float(rps.group(1)), "p50_ms": round(_ms(p50.group(1)), 4),
            "p99_ms": round(_ms(p99.group(1)), 4),
            "errors": (sum(int(g) for g in errors.groups()) if errors else 0)
            + (int(non2xx.group(1)) if non2xx else 0)}


class Bench:
    def __init__(self, space: Namespace, seconds: float, connections: int) -> None:
        self.space = space
        self.seconds = seconds
        self.connections = connections
        self.cpu_pids: dict[str, int] = {}

    def setup(self) -> None:
        tmp, space = self.space.tmp, self.space
        with (tmp / "big").open("wb") as f:
            f.truncate(1 << 30)  # sparse: the page cache serves zeros, no disk in the way
        (tmp / "nginx.conf").write_text(NGINX_CONF.format(tmp=tmp, ip=BACKEND_IP, port=NGINX_PORT))
        (tmp / "haproxy.cfg").write_text(HAPROXY_CONF.format(ip=BACKEND_IP, port=HAPROXY_PORT,
                                                             backend=NGINX_PORT))
        space.start("nginx", "nginx", "-c", str(tmp / "nginx.conf"))
        haproxy = space.start("haproxy", "haproxy", "-db", "-f", str(tmp / "haproxy.cfg"))
        space.run_in(wait_for, "nginx", lambda: _http_ok(f"http://{BACKEND_IP}:{NGINX_PORT}/"))
        space.run_in(wait_for, "haproxy", lambda: _http_ok(f"http://{BACKEND_IP}:{HAPROXY_PORT}/"))
        self.cpu_pids["haproxy"] = _process_pid(haproxy.pid, "haproxy")

        data = tmp / "apiserver"
        space.start("apiserver", *NETPLANE, "apiserver", "--data-dir", str(data), "--secure-port", "6443")
        kubeconfig = data / "admin.kubeconfig"
        wait_for("the apiserver", lambda: kubeconfig.exists())
        (tmp / "bench.yaml").write_text(MANIFEST)
        apply = space.cmd(*NETPLANE, "ctl", "--kubeconfig", str(kubeconfig), "apply", "-f",
                          str(tmp / "bench.yaml"))
        wait_for("the manifest to apply", lambda: subprocess.run(apply, capture_output=True).returncode == 0)
        proxy = space.start("proxy", *NETPLANE, "proxy", "--mode", "userspace", "--kubeconfig",
                            str(kubeconfig), "--node-name", "bench", "--healthz-bind-address", "127.0.0.1:0",
                            "--metrics-bind-address", "127.0.0.1:0")
        space.run_in(wait_for, "the proxy", lambda: _http_ok(f"http://{CLUSTER_IP}:{SERVICE_PORT}/"))
        self.cpu_pids["netplane"] = _process_pid(proxy.pid, "python")

    def paths(self) -> dict[str, str]:
        return {"direct": f"{BACKEND_IP}:{NGINX_PORT}", "haproxy": f"{BACKEND_IP}:{HAPROXY_PORT}",
                "netplane": f"{CLUSTER_IP}:{SERVICE_PORT}"}

    def _cpu(self) -> dict[str, float]:
        return {name: cpu_seconds(pid) for name, pid in self.cpu_pids.items()}

    def wrk(self, address: str, new_connections: bool) -> dict[str, float]:
        argv = ["wrk", "-t1", f"-c{self.connections}", f"-d{int(self.seconds)}s", "--latency",
                "--timeout", "5s"]
        if new_connections:
            argv += ["-H", "Connection: close"]
        before = self._cpu()
        out = run(*self.space.cmd(*argv, f"http://{address}/"))
        after = self._cpu()
        result = parse_wrk(out)
        result.update({f"{k}_cpu_s": round(after[k] - before[k], 2) for k in before})
        return result

    def bulk(self, address: str) -> dict[str, float]:
        before = self._cpu()
        out = run(*self.space.cmd("curl", "-s", "-o", "/dev/null", "-w",
                                   "%{speed_download} %{size_download}", f"http://{address}/big"))
        after = self._cpu()
        speed, size = out.split()
        if int(size) != 1 << 30:
            raise RuntimeError(f"bulk transfer through {address} got {size} bytes, not 1 GiB")
        result = {"mb_per_s": round(float(speed) / 1e6, 1)}
        result.update({f"{k}_cpu_s": round(after[k] - before[k], 2) for k in before})
        return result


def _ratios(summary: dict[str, dict[str, dict[str, float]]], anchor: str) -> dict[str, dict[str, float]]:
    keys = {"keepalive": "requests_per_s", "new_connections": "requests_per_s", "bulk": "mb_per_s"}
    out: dict[str, dict[str, float]] = {}
    for path, kinds in summary.items():
        out[path] = {kind: round(kinds[kind][key] / summary[anchor][kind][key], 3)
                     for kind, key in keys.items()}
    return out


def plot(result: dict[str, Any], png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ratios = result["vs_direct"]
    kinds = ["keepalive", "new_connections", "bulk"]
    paths = list(ratios)
    fig, ax = plt.subplots(figsize=(8, 4))
    width = 0.8 / len(paths)
    for i, path in enumerate(paths):
        ax.bar([k + i * width for k in range(len(kinds))], [ratios[path][k] for k in kinds], width,
               label=path)
    ax.set_xticks([k + width * (len(paths) - 1) / 2 for k in range(len(kinds))])
    ax.set_xticklabels(["requests/s, kept-alive", "requests/s, new connection each", "MB/s, 1 GiB"])
    ax.set_ylabel("relative to a direct connection")
    ax.set_title("userspace proxy vs HAProxy (TCP mode), same machine, same run")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(png, dpi=100)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=int, default=8, help="length of each wrk run")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--connections", type=int, default=32)
    p.add_argument("--out", type=Path, default=Path("bench/results/proxy_userspace.json"))
    args = p.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench/proxy_userspace: needs root (it creates a network namespace)")
    missing = [t for t in ("nginx", "haproxy", "wrk", "curl") if shutil.which(t) is None]
    if missing:
        sys.exit(f"bench/proxy_userspace: install {' '.join(missing)} (make bench-proxy-userspace does)")
    # HAProxy sizes itself to maxconn and refuses to start below it; children inherit this.
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    tmp = Path(tempfile.mkdtemp(prefix="np-bench-proxy-"))
    rounds: list[dict[str, Any]] = []
    try:
        with Namespace(tmp) as space:
            bench = Bench(space, args.seconds, args.connections)
            bench.setup()
            paths = bench.paths()
            for r in range(args.rounds):
                row: dict[str, Any] = {}
                order = list(paths) if r % 2 == 0 else list(reversed(paths))
                for path in order:
                    row[path] = {"keepalive": bench.wrk(paths[path], False),
                                 "new_connections": bench.wrk(paths[path], True),
                                 "bulk": bench.bulk(paths[path])}
                    print(f"round {r + 1} {path}: " + ", ".join(
                        f"{k} {v.get('requests_per_s', v.get('mb_per_s'))}" for k, v in row[path].items()),
                        flush=True)
                rounds.append(row)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    summary = {path: {kind: median_row([rnd[path][kind] for rnd in rounds]) for kind in rounds[0][path]}
               for path in rounds[0]}
    vs_haproxy = _ratios(summary, "haproxy")
    result = {
        "benchmark": "proxy_userspace",
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "python": platform.python_version(),
                    "haproxy": run("haproxy", "-v").splitlines()[0],
                    "nginx": subprocess.run(["nginx", "-v"], capture_output=True, text=True).stderr.strip(),
                    "wrk": f"wrk -t1 -c{args.connections} -d{args.seconds}s"},
        "params": {"rounds": args.rounds, "seconds": args.seconds, "connections": args.connections,
                   "bulk_bytes": 1 << 30},
        "summary": summary,
        "vs_haproxy": vs_haproxy,
        "vs_direct": _ratios(summary, "direct"),
        "targets_vs_haproxy": TARGETS,
        "meets_targets": {
            "keepalive": vs_haproxy["netplane"]["keepalive"] >= TARGETS["keepalive_vs_haproxy"],
            "bulk": vs_haproxy["netplane"]["bulk"] >= TARGETS["bulk_vs_haproxy"],
            "new_connections": vs_haproxy["netplane"]["new_connections"]
            >= TARGETS["new_connections_vs_haproxy"]},
        "rounds": rounds,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    with contextlib.suppress(ImportError):
        plot(result, args.out.with_suffix(".png"))
    print(json.dumps({k: result[k] for k in ("summary", "vs_haproxy", "meets_targets")}, indent=2))


if __name__ == "__main__":
    main()
