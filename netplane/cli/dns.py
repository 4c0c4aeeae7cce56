"""`netplane dns`: the cluster DNS (the Kubernetes DNS spec over informers; names outside
the zone forwarded to upstream resolvers)."""

from __future__ import annotations

import argparse
import ipaddress
import re
from pathlib import Path
from typing import Any

from netplane.cli.durations import parse_duration
from netplane.cli.main import CliError

_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")


def register(sub: Any) -> None:
    p = sub.add_parser(
        "dns", help="run the cluster DNS (Services, endpoints and pods by name; forwards the rest)",
        description="An authoritative server for the cluster zone following the Kubernetes DNS-Based "
        "Service Discovery specification (A/AAAA, SRV, PTR, CNAME for ExternalName, pod names, "
        "dns-version TXT), fed by informers on Services, EndpointSlices and Pods; other names go to "
        "upstream resolvers, with a cache. UDP and TCP, EDNS0. Serves /health, /ready and /metrics.")
    p.add_argument("--kubeconfig", type=Path, required=True, help="kubeconfig of the apiserver")
    p.add_argument("--listen", default="0.0.0.0:53", help="ADDR:PORT for DNS over UDP and TCP")
    p.add_argument("--zone", default="cluster.local", help="the cluster domain")
    p.add_argument("--upstream", action="append", default=[], metavar="IP[:PORT]",
                   help="a resolver for names outside the zone (repeatable; default: the "
                   "nameservers of --resolv-conf)")
    p.add_argument("--resolv-conf", type=Path, default=Path("/etc/resolv.conf"),
                   help="where the default upstreams and the node's search domains come from")
    p.add_argument("--ttl", type=int, default=5, help="TTL of the zone's records and negative answers")
    p.add_argument("--pods", choices=("verified", "insecure", "disabled"), default="verified",
                   help="pod names a-b-c-d.<ns>.pod.<zone>: only for existing pods (verified), for any "
                   "address (insecure, kube-dns's way) or not at all")
    p.add_argument("--autopath", action="store_true",
                   help="walk a pod's search path on the server: an ndots:5 lookup of an outside name "
                   "costs one round trip instead of up to five")
    p.add_argument("--cache-size", type=int, default=10000, help="upstream answers kept (0: no cache)")
    p.add_argument("--answer-cache-size", type=int, default=10000,
                   help="zone answers kept in wire form for the fast path (0: none)")
    p.add_argument("--upstream-timeout", type=parse_duration, default=2.0,
                   help="how long to wait for one upstream before trying the next")
    p.add_argument("--configmap", default="kube-system/kube-dns",
                   help="NAMESPACE/NAME of kube-dns's ConfigMap (upstreamNameservers, stubDomains), "
                   "followed while running; empty to ignore")
    p.add_argument("--health-listen", default="0.0.0.0:8080",
                   help="ADDR:PORT of /health, /ready and /metrics; port 0 disables")
    p.add_argument("--metrics-listen", default="0.0.0.0:9153",
                   help="ADDR:PORT of /metrics alone (CoreDNS's port); port 0 disables")
    p.set_defaults(func=run)


def parse_listen(text: str, flag: str) -> tuple[str, int]:
    """`IP:PORT`, `[IPv6]:PORT` or `:PORT` (all addresses)."""
    host, sep, port = text.strip().rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise CliError(f"{flag} {text!r}: expected ADDR:PORT, e.g. 127.0.0.1:5353", 2)
    host = host.strip("[]") or "0.0.0.0"
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise CliError(f"{flag} {text!r}: {host!r} is not an IP address", 2) from None
    return host, int(port)


def parse_zone(text: str) -> str:
    zone = text.strip().rstrip(".").lower()
    labels = zone.split(".")
    if not zone or len(zone) > 253 or not all(_LABEL.fullmatch(label) for label in labels):
        raise CliError(f"--zone {text!r}: not a domain name (try cluster.local)", 2)
    return zone


def build_options(args: argparse.Namespace) -> Any:
    from netplane.dns.daemon import DnsOptions
    from netplane.dns.upstreams import (
        HostResolver,
        UpstreamConfig,
        UpstreamError,
        parse_resolv_conf,
        parse_upstream,
    )
    from netplane.dns.zone import ZoneConfig

    listen = parse_listen(args.listen, "--listen")
    health = parse_listen(args.health_listen, "--health-listen")
    metrics = parse_listen(args.metrics_listen, "--metrics-listen")
    zone = parse_zone(args.zone)
    if args.ttl < 0 or args.ttl > 3600:
        raise CliError(f"--ttl {args.ttl}: must be 0..3600 seconds", 2)
    if args.cache_size < 0 or args.answer_cache_size < 0:
        raise CliError("--cache-size and --answer-cache-size must be 0 or more", 2)
    if args.upstream_timeout <= 0:
        raise CliError("--upstream-timeout must be more than 0", 2)
    try:
        upstreams = tuple(parse_upstream(u) for u in args.upstream)
    except UpstreamError as exc:
        raise CliError(f"--upstream {exc}", 2) from None
    host = HostResolver()
    try:
        host = parse_resolv_conf(args.resolv_conf.read_text())
    except OSError as exc:
        if not upstreams:
            raise CliError(f"cannot read --resolv-conf {args.resolv_conf} ({exc.strerror or exc}); "
                           "name the upstreams with --upstream", 2) from None
    configmap = None
    if args.configmap:
        ns, sep, name = args.configmap.partition("/")
        if not sep or not ns or not name:
            raise CliError(f"--configmap {args.configmap!r}: expected NAMESPACE/NAME", 2)
        configmap = (ns, name)
    searches = tuple(s for s in host.searches if s != zone and not s.endswith("." + zone))
    return DnsOptions(listen=listen, zone=ZoneConfig(domain=zone, ttl=args.ttl, pods=args.pods),
                      upstreams=UpstreamConfig(upstreams or host.nameservers), host_searches=searches,
                      autopath=args.autopath, cache_size=args.cache_size,
                      answer_cache_size=args.answer_cache_size, upstream_timeout=args.upstream_timeout,
                      configmap=configmap, health=health, metrics=metrics)


def run(args: argparse.Namespace) -> int:
    if not args.kubeconfig.is_file():
        raise CliError(f"kubeconfig {args.kubeconfig} does not exist; pass the apiserver's kubeconfig", 2)
    opts = build_options(args)
    from netplane.cli.loop import run_daemon
    from netplane.dns.daemon import DnsError
    from netplane.dns.daemon import run as run_dns

    return run_daemon(args.kubeconfig, "dns", lambda client: run_dns(client, opts), (DnsError,))
