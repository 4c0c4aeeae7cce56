"""`netplane controller-manager`: the EndpointSlice, Endpoints, node lifecycle,
ReplicaSet, Deployment and garbage-collector controllers in one process."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from netplane.cli.durations import parse_duration
from netplane.cli.main import CliError


def register(sub: Any) -> None:
    p = sub.add_parser(
        "controller-manager", help="run the controllers (endpointslices, nodes, replicasets, ...)",
        description="Runs the control loops that turn Services, Pods, Nodes and Deployments "
        "into EndpointSlices, Endpoints, node conditions, ReplicaSets and Pods.")
    p.add_argument("--kubeconfig", type=Path, required=True, help="kubeconfig of the apiserver")
    p.add_argument("--controllers", default="*",
                   help="comma-separated controllers to run; '*' for all, '-name' to disable one "
                   "(endpointslice, endpoints, nodelifecycle, replicaset, deployment, garbagecollector)")
    p.add_argument("--bind-address", default="127.0.0.1", help="address of /healthz and /metrics")
    p.add_argument("--port", type=int, default=10257, help="port of /healthz and /metrics; 0 disables")
    p.add_argument("--concurrent-syncs", type=int, default=5, help="workers per controller")
    p.add_argument("--node-monitor-grace-period", type=parse_duration, default=40.0,
                   help="how long a node's Lease may go unrenewed before the node is Unknown")
    p.add_argument("--node-monitor-period", type=parse_duration, default=5.0,
                   help="how often node leases are checked")
    p.add_argument("--max-endpoints-per-slice", type=int, default=100,
                   help="endpoints per EndpointSlice (Kubernetes' default 100, at most 1000)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import yaml

    from control.controllers.manager import (
        ManagerError,
        ManagerOptions,
        parse_controllers,
        run_controller_manager,
    )
    from netplane.cli.loop import run_async
    from netplane.client.kubeconfig import KubeconfigError, load_kubeconfig

    if not args.kubeconfig.is_file():
        raise CliError(f"kubeconfig {args.kubeconfig} does not exist; pass the apiserver's "
                       "admin.kubeconfig (netplane apiserver writes it to its --data-dir)", 2)
    try:
        load_kubeconfig(args.kubeconfig)
    except (KubeconfigError, yaml.YAMLError) as exc:
        raise CliError(f"cannot use kubeconfig {args.kubeconfig}: {exc}", 2) from exc
    try:
        controllers = parse_controllers(args.controllers)
    except ValueError as exc:
        raise CliError(str(exc), 2) from exc
    if not 1 <= args.max_endpoints_per_slice <= 1000:
        raise CliError("--max-endpoints-per-slice must be between 1 and 1000", 2)
    if args.node_monitor_grace_period <= 0 or args.node_monitor_period <= 0:
        raise CliError("--node-monitor-grace-period and --node-monitor-period must be positive", 2)
    opts = ManagerOptions(
        kubeconfig=args.kubeconfig, controllers=controllers, bind_address=args.bind_address,
        port=args.port, workers=args.concurrent_syncs,
        controller_options={
            "node_monitor_grace_period": args.node_monitor_grace_period,
            "node_monitor_period": args.node_monitor_period,
            "max_endpoints_per_slice": args.max_endpoints_per_slice,
        })
    try:
        run_async(run_controller_manager(opts))
    except ManagerError as exc:
        raise CliError(str(exc)) from exc
    return 0
