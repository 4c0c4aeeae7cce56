"""`netplane up` and `netplane down`: a whole cluster on this machine (control/cluster)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from netplane.cli.main import CliError

_DEFAULT_STATE = Path("state/cluster")


def register(sub: Any) -> None:
    up = sub.add_parser("up", help="start a cluster of network-namespace nodes on this machine",
                        description="Builds an underlay and one network namespace per node, starts "
                        "the apiserver, scheduler, controller-manager and a kubelet per node, and "
                        "waits until every node is Ready. Ctrl-C (or `netplane down`) removes it all.")
    up.add_argument("--nodes", type=int, default=2)
    up.add_argument("--proxy-mode", choices=("userspace", "iptables", "ipvs"), default="iptables",
                    help="the data plane of every node's proxy")
    up.add_argument("--iptables-variant", choices=("auto", "nft", "legacy"), default="auto",
                    help="the iptables every node's proxy writes (auto: what the node already uses)")
    up.add_argument("--state-dir", type=Path, default=_DEFAULT_STATE)
    up.add_argument("--api-port", type=int, default=6443, help="the apiserver's port on 127.0.0.1")
    up.add_argument("--detach", action="store_true", help="return once the cluster is ready")
    up.add_argument("--node-monitor-grace-period", default="40s",
                    help="how long a silent kubelet's node stays Ready")
    up.add_argument("--ready-timeout", type=float, default=120.0)
    up.add_argument("--store", default="", help="the apiserver's store: sqlite:///PATH (default: in the "
                    "state dir) or etcd://HOST:PORT[,HOST:PORT...][/PREFIX]")
    up.add_argument("--ingress-port", help="the host's loopback port into the ingress gateway (kind's "
                    "extraPortMappings); default 127.0.0.1:8080, skipped if taken; 0 disables")
    up.add_argument("--ingress-tls-port", help="the same for HTTPS; default 127.0.0.1:8443")
    up.add_argument("--supervise", action="store_true", help=argparse.SUPPRESS)
    up.set_defaults(func=run_up)

    down = sub.add_parser("down", help="stop a cluster started by `netplane up` and remove all of it")
    down.add_argument("--state-dir", type=Path, default=_DEFAULT_STATE)
    down.set_defaults(func=run_down)


def run_up(args: argparse.Namespace) -> int:
    from control.cluster.layout import Layout
    from control.cluster.up import ClusterError, UpOptions, detach, next_steps, run_foreground
    from control.store.urls import parse_store_url

    if args.store:
        try:
            parse_store_url(args.store)
        except ValueError as exc:
            raise CliError(str(exc), 2) from exc
    opts = UpOptions(state_dir=args.state_dir.resolve(), nodes=args.nodes, proxy_mode=args.proxy_mode,
                     iptables_variant=args.iptables_variant,
                     api_port=args.api_port, ready_timeout=args.ready_timeout,
                     node_monitor_grace_period=args.node_monitor_grace_period, store=args.store,
                     ingress_port=args.ingress_port or UpOptions.ingress_port,
                     ingress_tls_port=args.ingress_tls_port or UpOptions.ingress_tls_port,
                     # Ports asked for must be had; the defaults are given up if taken.
                     ingress_ports_required=bool(args.ingress_port or args.ingress_tls_port))
    try:
        if args.detach:
            from control.cluster import hostports

            for _name, sock, _port in hostports.reserve(opts.ingress_port, opts.ingress_tls_port,
                                                        required=opts.ingress_ports_required):
                sock.close()  # only a check: the supervisor binds them
            argv = ["up", "--state-dir", str(opts.state_dir), "--nodes", str(opts.nodes),
                    "--proxy-mode", opts.proxy_mode, "--iptables-variant", opts.iptables_variant,
                    "--api-port", str(opts.api_port),
                    "--node-monitor-grace-period", opts.node_monitor_grace_period,
                    "--ready-timeout", str(opts.ready_timeout)]
            if opts.store:
                argv += ["--store", opts.store]
            if opts.ingress_ports_required:
                argv += ["--ingress-port", opts.ingress_port, "--ingress-tls-port", opts.ingress_tls_port]
            record = detach(opts, argv)
            print(next_steps(Layout(opts.state_dir), record))
            return 0
        return run_foreground(opts, supervisor=args.supervise)
    except (ClusterError, ValueError) as exc:
        raise CliError(str(exc)) from exc


def run_down(args: argparse.Namespace) -> int:
    from control.cluster.layout import Layout
    from control.cluster.up import bring_down

    done = bring_down(Layout(args.state_dir.resolve()))
    print("\n".join(done) if done else f"no cluster recorded in {args.state_dir}")
    return 0
