"""`netplane trace`: the path a probe packet from a pod to VIP:PORT takes through the
node's proxy, in whatever mode the node runs. Argument checks and dispatch only; the
tracer lives in netplane/trace."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from netplane.cli.main import CliError


def register(sub: Any) -> None:
    p = sub.add_parser(
        "trace", help="show the path a packet from a pod to a service takes through the node's proxy",
        description="Sends one probe (a TCP SYN or a UDP datagram crafted with scapy) from inside the pod's "
        "network namespace to VIP:PORT, and shows what the pod's node (and the node a NodePort address "
        "belongs to) did with it: the iptables chains and rules it matched with their counters, the "
        "endpoint chosen and the conntrack entry; or the userspace proxy's listener and the backend it "
        "picked; and where the packet is dropped or rejected, which rule did it and why. Run as root on "
        "the machine of a `netplane up` cluster.")
    p.add_argument("--from", dest="pod", required=True, metavar="POD", help="the pod the probe leaves from")
    p.add_argument("--to", dest="target", required=True, metavar="VIP:PORT",
                   help="a ClusterIP, external or load balancer IP with its port, or a node's address with a "
                        "NodePort")
    p.add_argument("--proto", choices=("tcp", "udp"), default="tcp",
                   help="the probe's protocol (default tcp)")
    p.add_argument("-n", "--namespace", default=None, help="the pod's namespace (default: the context's)")
    p.add_argument("--kubeconfig", default=None, metavar="PATH",
                   help="kubeconfig file (default: $KUBECONFIG, else ~/.netplane/admin.kubeconfig)")
    p.add_argument("--context", default=None, help="kubeconfig context (default: current)")
    p.add_argument("-o", "--output", choices=("text", "json"), default="text")
    p.add_argument("--timeout", type=float, default=2.0, metavar="SECONDS",
                   help="how long the probe waits for an answer (default 2)")
    p.add_argument("--payload", default="hostname",
                   help="the UDP probe's payload (default: 'hostname', which netplane's test server answers)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import aiohttp

    from netplane.cli.loop import run_async
    from netplane.client.kubeconfig import KubeconfigError, load_kubeconfig
    from netplane.client.rest import ApiClient, ApiError
    from netplane.ctl.errors import api_error_text
    from netplane.kernel.iptables import IptablesError
    from netplane.trace.locate import LocateError, locate
    from netplane.trace.modes import TraceUnavailable
    from netplane.trace.namespaces import NamespaceError
    from netplane.trace.packet import TargetError, parse_target
    from netplane.trace.prober import ProbeError
    from netplane.trace.proxyapi import ProxyUnreachable
    from netplane.trace.session import TraceRequest, run_trace
    from netplane.trace.text import render

    try:
        ip, port = parse_target(args.target)
    except TargetError as exc:
        raise CliError(f"--to: {exc}", 2) from None
    if not 0 < args.timeout <= 60:
        raise CliError("--timeout must be between 0 and 60 seconds", 2)
    if os.geteuid() != 0:
        raise CliError("tracing enters the pod's and the node's network namespaces and reads their iptables "
                       "counters: run it as root", 2)
    try:
        config = load_kubeconfig(args.kubeconfig, args.context)
    except KubeconfigError as exc:
        raise CliError(str(exc)) from exc
    namespace = args.namespace or config.namespace

    async def find() -> Any:
        async with ApiClient(config) as api:
            return await locate(api, namespace, args.pod, ip, port, args.proto)

    try:
        located = run_async(find())
    except LocateError as exc:
        raise CliError(str(exc)) from None
    except ApiError as exc:
        raise CliError(api_error_text(exc)) from None
    except (OSError, aiohttp.ClientError, TimeoutError) as exc:
        raise CliError(f"cannot reach the apiserver at {config.server}: {exc or type(exc).__name__}; "
                       "is it running?") from None
    request = TraceRequest(namespace, args.pod, ip, port, args.proto, args.timeout, args.payload)
    try:
        report = run_trace(request, located)
    except (NamespaceError, ProxyUnreachable, TraceUnavailable, ProbeError) as exc:
        raise CliError(str(exc)) from None
    except IptablesError as exc:
        raise CliError(f"cannot read the node's iptables rules: {exc}") from None
    sys.stdout.write(report.to_json() + "\n" if args.output == "json" else render(report))
    return 0
