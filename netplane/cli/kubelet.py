"""`netplane kubelet`: runs the pods bound to this node as processes in network namespaces."""

from __future__ import annotations

import argparse
import ipaddress
import socket
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from netplane.cli.main import CliError

if TYPE_CHECKING:
    from control.kubelet.nodeip import HostAddress, HostRoute


def _cidr(text: str) -> str:
    try:
        return str(ipaddress.ip_network(text, strict=True))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a CIDR: {text!r} ({exc})") from exc


def _ip(text: str) -> str:
    try:
        return str(ipaddress.ip_address(text))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not an IP address: {text!r}") from exc


def _seconds(text: str) -> float:
    try:
        value = float(text.removesuffix("s"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive: {text!r}")
    return value


def default_node_ip(server: str, pod_cidr: str,
                    read: Callable[[], tuple[list[HostAddress], list[HostRoute]]] | None = None) -> str:
    """--node-ip's default for a kubelet whose apiserver is `server` (a URL), from what
    `read` (default: read_host_network) finds; CliError when there is no address to offer."""
    from control.kubelet.nodeip import choose_node_ip, read_host_network

    try:
        addresses, found = (read or read_host_network)()
    except OSError as exc:
        raise CliError(f"--node-ip not given and this namespace's addresses cannot be read "
                       f"({exc.strerror or exc}); pass --node-ip") from exc
    chosen = choose_node_ip(addresses, found, apiserver_host=urlsplit(server).hostname or "",
                            pod_cidr=pod_cidr)
    if chosen is None:
        raise CliError("--node-ip not given and this network namespace has no global IPv4 address "
                       "to default to; add one to an interface or pass --node-ip")
    return chosen


def register(sub: Any) -> None:
    p = sub.add_parser("kubelet", help="run this node's pods as processes in network namespaces",
                       description="Registers the Node, renews its Lease and runs the pods bound "
                       "to it. Runs inside the node's network namespace (netplane up does that); "
                       "serves logs and exec on ROOT_DIR/kubelet.sock.")
    p.add_argument("--kubeconfig", required=True, help="how to reach the apiserver")
    p.add_argument("--node-name", default=socket.gethostname())
    p.add_argument("--pod-cidr", type=_cidr, required=True, help="this node's pod addresses")
    p.add_argument("--root-dir", type=Path, default=Path("/var/lib/netplane/kubelet"),
                   help="pod directories, logs, IPAM state and the kubelet socket")
    p.add_argument("--node-ip", type=_ip, default=None,
                   help="the address other nodes reach this one on (default: this namespace's first "
                   "global IPv4 address, preferring the interface of the route to the apiserver)")
    p.add_argument("--cluster-id", default="local", help="prefix of the pods' network namespace names")
    p.add_argument("--cluster-dns", action="append", default=[],
                   help="the cluster DNS service IP (repeat, or comma-separate, for more)")
    p.add_argument("--cluster-domain", default="cluster.local")
    p.add_argument("--resolv-conf", default="/etc/resolv.conf",
                   help='the node resolver file pods with dnsPolicy Default get ("" for none)')
    p.add_argument("--lease-renew-interval", type=_seconds, default=10.0)
    p.add_argument("--node-status-update-frequency", type=_seconds, default=10.0)
    p.add_argument("--healthz-bind-address", type=_ip, default="127.0.0.1")
    p.add_argument("--healthz-port", type=int, default=10248, help="/healthz and /metrics; 0 disables")
    p.add_argument("--max-pods", type=int, default=110)
    p.add_argument("--crashloop-backoff-initial", type=_seconds, default=10.0,
                   help="the restart back-off's first step (doubles up to --crashloop-backoff-max)")
    p.add_argument("--crashloop-backoff-max", type=_seconds, default=300.0)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from control.kubelet.config import KubeletConfig
    from control.kubelet.dnsconfig import ResolvConf
    from control.kubelet.kubelet import KubeletError
    from netplane.cli.loop import run_async
    from netplane.client.kubeconfig import KubeconfigError
    from netplane.client.rest import ApiClient, ApiError

    dns = [_ip(part.strip()) for value in args.cluster_dns for part in value.split(",") if part.strip()]
    host: ResolvConf | None = None
    if args.resolv_conf:
        try:
            host = ResolvConf.parse(Path(args.resolv_conf).read_text())
        except OSError as exc:
            raise CliError(f"cannot read --resolv-conf {args.resolv_conf}: {exc.strerror or exc}") from exc
    if not 0 <= args.healthz_port < 65536:
        raise CliError(f"--healthz-port must be 0-65535, not {args.healthz_port}", 2)
    try:
        client = ApiClient.from_kubeconfig(args.kubeconfig)
    except KubeconfigError as exc:
        raise CliError(str(exc), 2) from exc
    node_ip = args.node_ip or default_node_ip(client.config.server, args.pod_cidr)
    cfg = KubeletConfig(
        node_name=args.node_name, pod_cidr=args.pod_cidr, root_dir=args.root_dir.resolve(),
        node_ip=node_ip, cluster_id=args.cluster_id, cluster_dns=tuple(dns),
        cluster_domain=args.cluster_domain.strip("."), host_resolv=host,
        lease_renew_interval=args.lease_renew_interval,
        status_update_frequency=args.node_status_update_frequency,
        healthz_bind_address=args.healthz_bind_address, healthz_port=args.healthz_port,
        max_pods=args.max_pods, backoff_initial=args.crashloop_backoff_initial,
        backoff_cap=max(args.crashloop_backoff_max, args.crashloop_backoff_initial))
    try:
        run_async(serve(cfg, client))
    except KubeletError as exc:
        raise CliError(str(exc)) from exc
    except ApiError as exc:
        raise CliError(f"the apiserver refused the kubelet of {cfg.node_name}: {exc}; check the "
                       f"kubeconfig's credentials") from exc
    except PermissionError as exc:
        raise CliError(f"{exc}; the kubelet creates network namespaces: run it as root") from exc
    except OSError as exc:
        raise CliError(f"cannot serve: {exc.strerror or exc} ({getattr(exc, 'filename', '') or ''}); "
                       f"is another kubelet using {cfg.root_dir} or port {cfg.healthz_port}?") from exc
    return 0


async def serve(cfg: Any, client: Any) -> None:
    """Runs the kubelet until SIGINT/SIGTERM, which leave the pods running."""
    from control.kubelet.kubelet import Kubelet
    from netplane.cli.loop import until_signalled

    async with client:
        await until_signalled(Kubelet(cfg, client).run(), "kubelet")
