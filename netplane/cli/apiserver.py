"""`netplane apiserver`: the Kubernetes-compatible API server."""

from __future__ import annotations

import argparse
import ipaddress
from pathlib import Path
from typing import Any

from netplane.cli.main import CliError


def _cidr(text: str) -> str:
    try:
        return str(ipaddress.ip_network(text, strict=True))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a CIDR: {text!r} ({exc})") from exc


def _advertise(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":") if text.count(":") == 1 else (text, "", "")
    try:
        return str(ipaddress.IPv4Address(host)), int(port) if port else 0
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an IPv4 address with an optional port: {text!r}") from None


def register(sub: Any) -> None:
    p = sub.add_parser("apiserver", help="run the Kubernetes-compatible API server",
                       description="Serves the Kubernetes REST API over a store (SQLite in "
                       "DATA_DIR by default), with TLS and bearer tokens; writes "
                       "DATA_DIR/admin.kubeconfig.")
    p.add_argument("--data-dir", type=Path, default=Path("state/apiserver"),
                   help="where the database, certificates, tokens and kubeconfig live")
    p.add_argument("--bind-address", default="127.0.0.1")
    p.add_argument("--secure-port", type=int, default=6443)
    p.add_argument("--insecure-port", type=int, default=0,
                   help="an unauthenticated HTTP port, loopback only, for development")
    p.add_argument("--service-cidr", type=_cidr, default="10.96.0.0/12")
    p.add_argument("--service-node-port-range", default="30000-32767")
    p.add_argument("--store", default="",
                   help="sqlite:///PATH (default: DATA_DIR/state.db) or etcd://HOST:PORT[,HOST:PORT...]"
                   "[/PREFIX]: several apiservers may share one etcd")
    p.add_argument("--max-request-bytes", type=int, default=3 * 1024 * 1024)
    p.add_argument("--max-watches", type=int, default=10_000)
    p.add_argument("--tls-san", action="append", default=[],
                   help="an extra IP or DNS name for the serving certificate")
    p.add_argument("--advertise-address", type=_advertise, default=("", 0), metavar="IP[:PORT]",
                   help="where pods reach this apiserver: published as the endpoint of the "
                   "`kubernetes` Service (PORT defaults to --secure-port)")
    # kube-apiserver's lease reconciler timings (fixed there: 15 s and 10 s); tests shorten them.
    p.add_argument("--endpoint-lease-ttl", type=float, default=15.0, help=argparse.SUPPRESS)
    p.add_argument("--endpoint-reconcile-interval", type=float, default=10.0, help=argparse.SUPPRESS)
    p.add_argument("--listen-fd", type=int, action="append", default=[],
                   help="also serve HTTPS on this inherited, listening socket (used by netplane up)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from control.apiserver.allocators import parse_port_range
    from control.apiserver.server import ServerOptions, serve_forever
    from control.store import StoreError
    from netplane.cli.loop import run_async

    try:
        parse_port_range(args.service_node_port_range)
    except ValueError as exc:
        raise CliError(str(exc), 2) from exc
    opts = ServerOptions(
        data_dir=args.data_dir.resolve(), bind_address=args.bind_address,
        secure_port=args.secure_port, insecure_port=args.insecure_port,
        service_cidr=args.service_cidr, node_port_range=args.service_node_port_range,
        store_url=args.store, max_request_bytes=args.max_request_bytes,
        max_watches=args.max_watches, extra_sans=args.tls_san,
        listen_fds=args.listen_fd, advertise_address=args.advertise_address[0],
        advertise_port=args.advertise_address[1], endpoint_lease_ttl=args.endpoint_lease_ttl,
        endpoint_reconcile_interval=args.endpoint_reconcile_interval)
    try:
        run_async(serve_forever(opts))
    except OSError as exc:
        raise CliError(f"cannot serve on {args.bind_address}:{args.secure_port}: "
                       f"{exc.strerror or exc}; is another apiserver running?") from exc
    except ValueError as exc:
        raise CliError(str(exc), 2) from exc
    except StoreError as exc:
        raise CliError(f"cannot open the store: {exc}") from exc
    return 0
