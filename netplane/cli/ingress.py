"""`netplane ingress`: the ingress gateway (netplane/ingress) for Ingresses of a class and
Gateway API HTTPRoutes."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import IO, Any

from netplane.cli.durations import parse_duration
from netplane.cli.main import CliError


def _size(text: str) -> int:
    from netplane.ingress.annotations import parse_size

    try:
        return parse_size(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def register(sub: Any) -> None:
    p = sub.add_parser(
        "ingress", help="run the ingress gateway (Ingress and Gateway API HTTPRoute)",
        description="A reverse proxy for Ingresses of one IngressClass and for HTTPRoutes attached to "
        "one Gateway name: host and path routing straight to the services' ready endpoints, TLS by SNI, "
        "WebSockets, ingress-nginx's common annotations; configuration changes apply without a reload. "
        "Serves /healthz and Prometheus /metrics on a port of their own.")
    p.add_argument("--kubeconfig", type=Path, required=True, help="kubeconfig of the apiserver")
    p.add_argument("--listen", default="0.0.0.0:8080", help="ADDR:PORT for HTTP; 0 disables")
    p.add_argument("--tls-listen", default="0.0.0.0:8443", help="ADDR:PORT for HTTPS; 0 disables")
    p.add_argument("--metrics-listen", default="0.0.0.0:10254", help="ADDR:PORT for /healthz and /metrics")
    p.add_argument("--ingress-class", default="netplane", help="the IngressClass whose Ingresses are served")
    p.add_argument("--watch-ingress-without-class", action="store_true",
                   help="also serve Ingresses that name no class (else only if the class is the default)")
    p.add_argument("--gateway-name", default="netplane",
                   help="HTTPRoutes whose parentRefs name this Gateway are served")
    p.add_argument("--access-log", default="-", help="where the JSON access log goes: -, a file, or off")
    p.add_argument("--https-port", type=int, default=443, help="the port ssl-redirect sends clients to")
    p.add_argument("--proxy-body-size", type=_size, default=1 << 20,
                   help="default request body limit (ingress-nginx's 1m; 0 = none)")
    p.add_argument("--proxy-connect-timeout", type=parse_duration, default=5.0)
    p.add_argument("--proxy-read-timeout", type=parse_duration, default=60.0)
    p.add_argument("--proxy-send-timeout", type=parse_duration, default=60.0)
    p.add_argument("--client-header-timeout", type=parse_duration, default=60.0)
    p.add_argument("--client-body-timeout", type=parse_duration, default=60.0)
    p.add_argument("--keepalive-timeout", type=parse_duration, default=75.0)
    p.set_defaults(func=run)


def _access_log(where: str) -> IO[bytes] | None:
    if where == "off":
        return None
    if where == "-":
        return sys.stdout.buffer
    try:
        return open(where, "ab")
    except OSError as exc:
        raise CliError(f"--access-log: cannot open {where}: {exc.strerror}", 2) from exc


def run(args: argparse.Namespace) -> int:
    from netplane.cli.loop import run_daemon
    from netplane.ingress.config import Options
    from netplane.ingress.gateway import Gateway, GatewayError, ServeOptions, parse_address
    from netplane.ingress.httproutes import GatewayOptions
    from netplane.ingress.ingresses import IngressOptions
    from netplane.ingress.proxy import ProxySettings
    from netplane.ingress.routes import Policy

    if not args.kubeconfig.is_file():
        raise CliError(f"--kubeconfig {args.kubeconfig}: no such file", 2)
    try:
        listen = parse_address(args.listen, "--listen")
        tls_listen = parse_address(args.tls_listen, "--tls-listen")
        metrics = parse_address(args.metrics_listen, "--metrics-listen")
    except GatewayError as exc:
        raise CliError(str(exc), 2) from exc
    if listen is None and tls_listen is None:
        raise CliError("--listen and --tls-listen are both off: nothing to serve", 2)
    defaults = Policy(connect_timeout=args.proxy_connect_timeout, read_timeout=args.proxy_read_timeout,
                      send_timeout=args.proxy_send_timeout, max_body_size=args.proxy_body_size)
    options = Options(IngressOptions(args.ingress_class, args.watch_ingress_without_class, defaults),
                      GatewayOptions(args.gateway_name, defaults))
    settings = ProxySettings(header_timeout=args.client_header_timeout, body_timeout=args.client_body_timeout,
                             keepalive_timeout=args.keepalive_timeout, https_port=args.https_port)
    opts = ServeOptions(listen, tls_listen, metrics, options, settings, _access_log(args.access_log))
    return run_daemon(args.kubeconfig, "ingress", lambda client: Gateway(client, opts).run(), (GatewayError,))
