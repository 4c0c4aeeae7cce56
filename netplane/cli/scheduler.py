"""`netplane scheduler`: binds pending pods to nodes."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from netplane.cli.main import CliError


def register(sub: Any) -> None:
    p = sub.add_parser(
        "scheduler", help="run the scheduler (binds pending pods to nodes)",
        description="Watches pods without a node and the nodes, picks a node for each pod "
        "(ready and schedulable, resources, nodeSelector and node affinity, taints; "
        "least allocated, spread by controller) and binds it through pods/binding.")
    p.add_argument("--kubeconfig", type=Path, required=True, help="kubeconfig of the apiserver")
    p.add_argument("--scheduler-name", default="default-scheduler",
                   help="schedule the pods whose spec.schedulerName is this")
    p.add_argument("--bind-address", default="127.0.0.1", help="address of /healthz and /metrics")
    p.add_argument("--port", type=int, default=10259, help="port of /healthz and /metrics; 0 disables")
    p.add_argument("--parallel-binds", type=int, default=32,
                   help="binding requests in flight at once")
    p.add_argument("--no-events", action="store_true",
                   help="do not create FailedScheduling Events (the pod condition is still set)")
    p.add_argument("--pod-initial-backoff-seconds", type=float, default=1.0)
    p.add_argument("--pod-max-backoff-seconds", type=float, default=10.0)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from control.scheduler.metrics import HttpError
    from control.scheduler.scheduler import SchedulerError, SchedulerOptions, run_scheduler
    from netplane.cli.loop import run_async

    if not args.kubeconfig.is_file():
        raise CliError(f"kubeconfig {args.kubeconfig} does not exist; pass the apiserver's "
                       "admin.kubeconfig (netplane apiserver writes it to its --data-dir)", 2)
    if args.parallel_binds < 1:
        raise CliError("--parallel-binds must be at least 1", 2)
    if not 0 < args.pod_initial_backoff_seconds <= args.pod_max_backoff_seconds:
        raise CliError("backoffs must satisfy 0 < --pod-initial-backoff-seconds <= "
                       "--pod-max-backoff-seconds", 2)
    opts = SchedulerOptions(
        kubeconfig=args.kubeconfig, scheduler_name=args.scheduler_name,
        bind_address=args.bind_address, port=args.port, parallel_binds=args.parallel_binds,
        failure_events=not args.no_events, initial_backoff=args.pod_initial_backoff_seconds,
        max_backoff=args.pod_max_backoff_seconds)
    try:
        run_async(run_scheduler(opts))
    except (SchedulerError, HttpError) as exc:
        raise CliError(str(exc)) from exc
    return 0
