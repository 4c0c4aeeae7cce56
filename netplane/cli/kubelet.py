"""`netplane kubelet`: runs the pods bound to this node as processes in network namespaces."""

from __future__ import annotations

import argparse
import socket
from pathlib import Path
from typing import Any

from netplane.cli.main import CliError


def register(sub: Any) -> None:
    p = sub.add_parser("kubelet", help="run this node's pods as processes in network namespaces",
                       description="Registers the Node, renews its Lease and runs the pods bound "
                       "to it. Runs inside the node's network namespace (netplane up does that).")
    p.add_argument("--kubeconfig", required=True)
    p.add_argument("--node-name", default=socket.gethostname())
    p.add_argument("--pod-cidr", required=True)
    p.add_argument("--root-dir", type=Path, default=Path("/var/lib/netplane/kubelet"))
    p.add_argument("--node-ip", required=True, help="the node's address other nodes reach it on")
    p.add_argument("--cluster-id", default="local", help="prefix of the pods' namespace names")
    p.add_argument("--cluster-dns", action="append", default=[], help="the cluster DNS service IP")
    p.add_argument("--cluster-domain", default="cluster.local")
    p.add_argument("--lease-renew-interval", type=float, default=10.0)
    p.add_argument("--node-status-update-frequency", type=float, default=10.0)
    p.add_argument("--crashloop-backoff-initial", type=float, default=10.0,
                   help="seconds before the first restart of a crashed container (doubles, max 300)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from control.kubelet.dnsconfig import HostResolv
    from control.kubelet.kubelet import Kubelet, KubeletConfig
    from netplane.cli.loop import run_async
    from netplane.client.kubeconfig import KubeconfigError
    from netplane.client.rest import ApiClient

    try:
        host = HostResolv.parse(Path("/etc/resolv.conf").read_text())
    except OSError:
        host = HostResolv([], [], [])
    cfg = KubeletConfig(
        kubeconfig=args.kubeconfig, node_name=args.node_name, pod_cidr=args.pod_cidr,
        root_dir=args.root_dir.resolve(), node_ip=args.node_ip, cluster_id=args.cluster_id,
        cluster_dns=args.cluster_dns, cluster_domain=args.cluster_domain,
        lease_renew_interval=args.lease_renew_interval,
        status_update_frequency=args.node_status_update_frequency,
        backoff_initial=args.crashloop_backoff_initial, host_resolv=host)

    async def main() -> None:
        async with ApiClient.from_kubeconfig(cfg.kubeconfig) as api:
            await Kubelet(cfg, api).run()

    try:
        run_async(main())
    except KubeconfigError as exc:
        raise CliError(str(exc), 2) from exc
    return 0
