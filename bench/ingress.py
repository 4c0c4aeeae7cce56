"""The ingress gateway beside nginx as an equivalent reverse proxy, in one run.

Run as root: `make bench-ingress` (or `python -m bench.ingress --out FILE`). Everything
happens inside one network namespace that the benchmark creates and removes. nginx (one
worker) is the backend; wrk (one thread, 32 kept-alive connections) the client. The same
requests go through
- nginx as a reverse proxy (the anchor): one worker, upstream keep-alive, HTTP/1.1 to the
  backend, X-Forwarded-For and X-Request-ID set, no buffering, no access log;
- `netplane ingress`, fed by a real `netplane apiserver` with an Ingress, a Service and an
  EndpointSlice, access log off;
- a naive aiohttp proxy (aiohttp.web handler + one ClientSession), to show where the
  hand-written hot path stands against the obvious one.
Each proxy is pinned with taskset to CPU 0, the backend and wrk to CPU 1. Per proxy:
requests/s, latency p50/p99, and its CPU time per request; every figure also as a ratio
to nginx's in the same round. Rounds interleave the proxies, so a noisy neighbour hurts
all of them alike; the summary is the median of the rounds.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from bench.common import cpu_times, median_row, run, wait_for
from bench.proxy_userspace import BACKEND_IP, NGINX_CONF, Namespace, parse_wrk

NGINX_PORT, NGINX_PROXY_PORT, NAIVE_PORT, GATEWAY_PORT, METRICS_PORT = 8080, 8081, 8082, 8083, 10254
HOST = "bench.example.com"
TARGET = 0.5  # the issue's: >= 0.5x nginx's requests/s
PROXY_CPU, CLIENT_CPU = "0", "1"
NETPLANE = [sys.executable, "-m", "netplane.cli.main"]

NGINX_PROXY_CONF = """
worker_processes 1;
daemon off;
pid {tmp}/nginx-proxy.pid;
error_log {tmp}/nginx-proxy-error.log;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    keepalive_requests 100000000;
    client_body_temp_path {tmp}/px-body;
    proxy_temp_path {tmp}/px-proxy;
    fastcgi_temp_path {tmp}/px-fcgi;
    uwsgi_temp_path {tmp}/px-uwsgi;
    scgi_temp_path {tmp}/px-scgi;
    upstream backend {{ server {ip}:{backend}; keepalive 128; }}
    server {{
        listen {ip}:{port} backlog=4096;
        location / {{
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_set_header X-Forwarded-Host $host;
            proxy_set_header X-Request-ID $request_id;
            proxy_buffering off;
            proxy_request_buffering off;
        }}
    }}
}}
"""

# The obvious aiohttp reverse proxy: what "a naive aiohttp proxy" means in the issue.
NAIVE_PROXY = """
import sys, aiohttp, uvloop
from aiohttp import web
UPSTREAM = sys.argv[1]
HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "host", "content-length"}
async def handler(request):
    session = request.app["session"]
    headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP}
    headers["Host"] = request.host
    headers["X-Forwarded-For"] = request.remote
    async with session.request(request.method, UPSTREAM + request.path_qs, headers=headers,
                               data=request.content if request.can_read_body else None) as up:
        resp = web.StreamResponse(status=up.status, headers={k: v for k, v in up.headers.items()
                                                              if k.lower() not in HOP})
        await resp.prepare(request)
        async for chunk in up.content.iter_any():
            await resp.write(chunk)
        await resp.write_eof()
        return resp
async def session(app):
    app["session"] = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
    yield
    await app["session"].close()
app = web.Application()
app.cleanup_ctx.append(session)
app.router.add_route("*", "/{tail:.*}", handler)
uvloop.install()
web.run_app(app, host=sys.argv[2], port=int(sys.argv[3]), access_log=None, print=None)
"""

MANIFEST = f"""
apiVersion: v1
kind: Service
metadata: {{name: bench, namespace: default}}
spec:
  clusterIP: 10.96.0.100
  ports: [{{name: http, port: 80, targetPort: {NGINX_PORT}, protocol: TCP}}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: bench-1
  namespace: default
  labels: {{kubernetes.io/service-name: bench}}
addressType: IPv4
endpoints: [{{addresses: [{BACKEND_IP}], conditions: {{ready: true}}}}]
ports: [{{name: http, port: {NGINX_PORT}, protocol: TCP}}]
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {{name: bench, namespace: default}}
spec:
  ingressClassName: netplane
  rules:
  - host: {HOST}
    http:
      paths:
      - {{path: /, pathType: Prefix, backend: {{service: {{name: bench, port: {{number: 80}}}}}}}}
"""


def _answers(url: str) -> bool:
    req = urllib.request.Request(url, headers={"Host": HOST})
    with urllib.request.urlopen(req, timeout=2) as resp:
        return resp.status == 200 and resp.read() == b"ok\n"


def _pinned(cpu: str, *argv: str) -> list[str]:
    return ["taskset", "-c", cpu, *argv]


class Bench:
    def __init__(self, space: Namespace, seconds: int, connections: int) -> None:
        self.space = space
        self.seconds = seconds
        self.connections = connections
        self.pids: dict[str, int] = {}

    def setup(self) -> None:
        tmp, space = self.space.tmp, self.space
        (tmp / "big").write_bytes(b"")
        (tmp / "nginx.conf").write_text(NGINX_CONF.format(tmp=tmp, ip=BACKEND_IP, port=NGINX_PORT))
        (tmp / "nginx-proxy.conf").write_text(NGINX_PROXY_CONF.format(tmp=tmp, ip=BACKEND_IP,
                                                                      port=NGINX_PROXY_PORT,
                                                                      backend=NGINX_PORT))
        (tmp / "naive.py").write_text(NAIVE_PROXY)
        space.start("backend", *_pinned(CLIENT_CPU, "nginx", "-c", str(tmp / "nginx.conf")))
        nginx = space.start("nginx", *_pinned(PROXY_CPU, "nginx", "-c", str(tmp / "nginx-proxy.conf")))
        naive = space.start("naive", *_pinned(PROXY_CPU, sys.executable, str(tmp / "naive.py"),
                                               f"http://{BACKEND_IP}:{NGINX_PORT}", BACKEND_IP,
                                              str(NAIVE_PORT)))
        data = tmp / "apiserver"
        space.start("apiserver", *_pinned(CLIENT_CPU, *NETPLANE, "apiserver", "--data-dir", str(data),
                                          "--secure-port", "6443"))
        kubeconfig = data / "admin.kubeconfig"
        wait_for("the apiserver", kubeconfig.exists)
        (tmp / "bench.yaml").write_text(MANIFEST)
        apply = space.cmd(*NETPLANE, "ctl", "--kubeconfig", str(kubeconfig), "apply", "-f",
                          str(tmp / "bench.yaml"))
        wait_for("the manifest to apply", lambda: subprocess.run(apply, capture_output=True).returncode == 0)
        gateway = space.start("netplane", *_pinned(PROXY_CPU, *NETPLANE, "ingress", "--kubeconfig",
                                                   str(kubeconfig),
                                                   "--listen", f"{BACKEND_IP}:{GATEWAY_PORT}",
                                                   "--tls-listen", "0",
                                                   "--metrics-listen", f"127.0.0.1:{METRICS_PORT}",
                                                   "--access-log", "off"))
        for name, port in (("nginx", NGINX_PROXY_PORT), ("naive", NAIVE_PORT), ("netplane", GATEWAY_PORT)):
            try:
                space.run_in(wait_for, name, lambda p=port: _answers(f"http://{BACKEND_IP}:{p}/"))
            except RuntimeError as exc:
                log = tmp / f"{name}.log"
                tail = log.read_text()[-3000:] if log.exists() else ""
                raise RuntimeError(f"{exc}; its log:\n{tail}") from None
        # taskset and `ip netns exec` exec the program, so the pid is the proxy's own.
        self.pids = {"nginx": self._worker(nginx.pid), "naive": naive.pid, "netplane": gateway.pid}

    @staticmethod
    def _worker(master: int) -> int:
        """nginx's one worker process (where the proxying happens)."""
        def children() -> list[str]:
            return Path(f"/proc/{master}/task/{master}/children").read_text().split()
        wait_for("nginx's worker", lambda: bool(children()))
        return int(children()[0])

    def paths(self) -> dict[str, str]:
        return {"nginx": f"{BACKEND_IP}:{NGINX_PROXY_PORT}", "netplane": f"{BACKEND_IP}:{GATEWAY_PORT}",
                "naive_aiohttp": f"{BACKEND_IP}:{NAIVE_PORT}"}

    def wrk(self, name: str, address: str) -> dict[str, float]:
        pid = self.pids["naive" if name == "naive_aiohttp" else name]
        user0, sys0 = cpu_times(pid)
        out = run(*self.space.cmd(*_pinned(CLIENT_CPU, "wrk", "-t1", f"-c{self.connections}",
                                            f"-d{self.seconds}s", "--latency", "--timeout", "5s",
                                            "-H", f"Host: {HOST}", f"http://{address}/")))
        user1, sys1 = cpu_times(pid)
        result = parse_wrk(out)
        requests = result["requests_per_s"] * self.seconds
        user, system = user1 - user0, sys1 - sys0
        result["cpu_s"] = round(user + system, 2)
        # CPU per request says what a proxy costs even when the CPU it runs on is not the
        # bottleneck (on this 2-CPU machine, wrk and the backend share the other one).
        result["cpu_us_per_request"] = round((user + system) / requests * 1e6, 2) if requests else 0.0
        result["user_us_per_request"] = round(user / requests * 1e6, 2) if requests else 0.0
        result["system_us_per_request"] = round(system / requests * 1e6, 2) if requests else 0.0
        return result


def plot(result: dict[str, Any], png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ratios = result["vs_nginx"]
    names = list(ratios)
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.bar(names, [ratios[n]["requests_per_s"] for n in names], color=["#888", "#2a7", "#c63"][:len(names)])
    ax.axhline(TARGET, color="k", linestyle="--", linewidth=1, label=f"target {TARGET}x nginx")
    for i, n in enumerate(names):
        s = result["summary"][n]
        ax.text(i, ratios[n]["requests_per_s"] + 0.02,
                f"{s['requests_per_s']:.0f}/s\np99 {s['p99_ms']:.2f} ms",
                ha="center", fontsize=8)
    ax.set_ylabel("requests/s relative to nginx (same run)")
    ax.set_title("HTTP reverse proxies, one worker on one CPU, wrk -c32 kept alive")
    ax.set_ylim(0, max(1.2, max(r["requests_per_s"] for r in ratios.values()) + 0.25))
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(png, dpi=100)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=int, default=8, help="length of each wrk run")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--connections", type=int, default=32)
    p.add_argument("--out", type=Path, default=Path("bench/results/ingress.json"))
    args = p.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench/ingress: needs root (it creates a network namespace)")
    missing = [t for t in ("nginx", "wrk", "taskset") if shutil.which(t) is None]
    if missing:
        sys.exit(f"bench/ingress: install {' '.join(missing)} (make bench-ingress does)")
    if (os.cpu_count() or 1) < 2:
        sys.exit("bench/ingress: needs 2 CPUs (the proxies on one, the backend and wrk on the other)")
    tmp = Path(tempfile.mkdtemp(prefix="np-bench-ingress-"))
    rounds: list[dict[str, Any]] = []
    try:
        with Namespace(tmp) as space:
            bench = Bench(space, args.seconds, args.connections)
            bench.setup()
            paths = bench.paths()
            for r in range(args.rounds):
                order = list(paths) if r % 2 == 0 else list(reversed(paths))
                row = {name: bench.wrk(name, paths[name]) for name in order}
                print(f"round {r + 1}: " + ", ".join(f"{n} {row[n]['requests_per_s']:.0f}/s" for n in paths),
                      flush=True)
                rounds.append(row)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    summary = {name: median_row([rnd[name] for rnd in rounds]) for name in rounds[0]}
    # Ratios per round (the anchor measured beside it), then the median of those.
    vs_nginx = {name: {key: round(statistics.median(rnd[name][key] / rnd["nginx"][key] for rnd in rounds), 3)
                       for key in ("requests_per_s", "p50_ms", "p99_ms", "cpu_us_per_request")}
                for name in summary}
    # Requests per CPU-second: what requests/s would be with both proxies CPU-bound, the
    # figure a shared machine disturbs least (its noise steals CPU time, not efficiency).
    for name in summary:
        vs_nginx[name]["requests_per_cpu_s"] = round(statistics.median(
            rnd["nginx"]["cpu_us_per_request"] / rnd[name]["cpu_us_per_request"] for rnd in rounds), 3)
    result = {
        "benchmark": "ingress",
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "python": platform.python_version(),
                    "nginx": subprocess.run(["nginx", "-v"], capture_output=True, text=True).stderr.strip(),
                    "wrk": f"wrk -t1 -c{args.connections} -d{args.seconds}s"},
        "params": {"rounds": args.rounds, "seconds": args.seconds, "connections": args.connections,
                   "proxy_cpu": PROXY_CPU, "backend_and_client_cpu": CLIENT_CPU},
        "summary": summary,
        "vs_nginx": vs_nginx,
        "target_requests_per_s_vs_nginx": TARGET,
        "meets_target": vs_nginx["netplane"]["requests_per_s"] >= TARGET,
        "meets_target_cpu_bound": vs_nginx["netplane"]["requests_per_cpu_s"] >= TARGET,
        "rounds": rounds,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    with contextlib.suppress(ImportError):
        plot(result, args.out.with_suffix(".png"))
    shown = ("summary", "vs_nginx", "meets_target", "meets_target_cpu_bound")
    print(json.dumps({k: result[k] for k in shown}, indent=2))


if __name__ == "__main__":
    main()
