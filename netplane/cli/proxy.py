"""`netplane proxy`: the node proxy (kube-proxy), in one of three modes, and `--cleanup`."""

from __future__ import annotations

import argparse
import os
import resource
import sys
from pathlib import Path
from typing import Any

from netplane.cli.durations import parse_duration
from netplane.cli.main import CliError
from netplane.proxy import modes


def register(sub: Any) -> None:
    p = sub.add_parser(
        "proxy", help="run the node proxy (userspace, iptables or ipvs mode)",
        description="Watches Services and EndpointSlices and programs this node's data plane "
        "so that ClusterIPs, NodePorts and external IPs reach the services' endpoints, with "
        "kube-proxy's semantics and names. Serves /healthz and /livez (kube-proxy's meaning) "
        "and Prometheus /metrics.")
    p.add_argument("--mode", choices=modes.ALL, default="iptables",
                   help="the data plane (iptables, kube-proxy's default)")
    p.add_argument("--kubeconfig", type=Path, help="kubeconfig of the apiserver")
    p.add_argument("--node-name", default=os.uname().nodename,
                   help="this node's name (decides which endpoints are local)")
    p.add_argument("--min-sync-period", type=parse_duration, default=1.0,
                   help="at most one sync per this long; changes in between are coalesced")
    p.add_argument("--sync-period", type=parse_duration, default=30.0,
                   help="a sync at least this often (backends check their state); /healthz fails "
                   "after twice this without applying a queued change")
    p.add_argument("--full-sync-period", type=parse_duration, default=3600.0,
                   help="a full resync (rewrite everything, trust nothing) this often")
    p.add_argument("--healthz-bind-address", default="0.0.0.0:10256",
                   help="IP:PORT of /healthz and /livez; port 0 disables")
    p.add_argument("--metrics-bind-address", default="127.0.0.1:10249",
                   help="IP:PORT of /metrics; port 0 disables")
    p.add_argument("--udp-timeout", type=parse_duration, default=0.25,
                   help="userspace mode: an idle UDP association is closed after this long")
    p.add_argument("--iptables-variant", choices=("auto", "nft", "legacy"), default="auto",
                   help="which iptables to program; auto picks the one holding rules, as kube-proxy")
    p.add_argument("--cluster-cidr", default=None,
                   help="the pods' range: traffic to a ClusterIP from outside it is masqueraded")
    p.add_argument("--masquerade-all", action="store_true",
                   help="iptables mode: masquerade all traffic sent to ClusterIPs")
    p.add_argument("--cleanup", action="store_true",
                   help="remove everything any proxy mode installed on this node, then exit")
    p.set_defaults(func=run)
    verbs = p.add_subparsers(dest="proxy_verb", metavar="[VERB]")
    r = verbs.add_parser("render", help="print the rules a mode would program for Services and "
                         "EndpointSlices read from files (no root, nothing touches the kernel)")
    r.add_argument("--mode", choices=tuple(RENDERABLE), default="iptables")
    r.add_argument("-f", "--filename", action="append", required=True, type=Path,
                   help="YAML or JSON file or folder of Services and EndpointSlices (repeatable)")
    r.add_argument("--node-name", default="node-1", help="the node the rules are for (local endpoints)")
    r.add_argument("--cluster-cidr", default=None, help="as for the proxy")
    r.add_argument("--masquerade-all", action="store_true")
    r.set_defaults(func=render)
    st = verbs.add_parser("status", help="what the iptables mode programmed on this node, with counters")
    st.add_argument("--iptables-variant", choices=("auto", "nft", "legacy"), default="auto")
    st.set_defaults(func=status)


def _iptables(args: argparse.Namespace) -> Any:
    from netplane.kernel.iptables import Iptables

    return None if args.iptables_variant == "auto" else Iptables(args.iptables_variant)


def build_backend(mode: str, args: argparse.Namespace) -> Any:
    if mode not in modes.BACKENDS:
        raise CliError(f"--mode {mode} is not built yet; use one of {', '.join(modes.BACKENDS)}", 2)
    cls = modes.backend_class(mode)
    if mode == "userspace":
        return cls(args.node_name, udp_idle_timeout=args.udp_timeout, iptables=_iptables(args))
    return cls(args.node_name, iptables=_iptables(args), cluster_cidr=args.cluster_cidr,
               masquerade_all=args.masquerade_all)


def cleanup(args: argparse.Namespace) -> int:
    done: list[str] = []
    failed: list[str] = []
    for mode in modes.ALL:
        try:
            backend = build_backend(mode, args)
        except CliError:
            continue
        try:
            done += backend.cleanup()
        except Exception as exc:  # one mode's failure must not stop the others' cleanup
            failed.append(f"{mode}: {exc}")
    for line in done or ["nothing to remove"]:
        print(line)
    if failed:
        raise CliError("cleanup incomplete: " + "; ".join(failed))
    return 0


RENDERABLE = {"iptables": "netplane.proxy_iptables.renderer"}


def render(args: argparse.Namespace) -> int:
    from netplane.ctl.manifests import ManifestError, load
    from netplane.model import ProxyState

    try:
        objects = [m.obj for m in load(args.filename)]
    except ManifestError as exc:
        raise CliError(str(exc), 2) from exc
    services = [o for o in objects if o.get("kind") == "Service"]
    slices = [o for o in objects if o.get("kind") == "EndpointSlice"]
    ignored = len(objects) - len(services) - len(slices)
    try:
        state = ProxyState.build(services, slices)
    except Exception as exc:  # a decode error names the field; one line for the user
        raise CliError(f"cannot read the objects: {exc}", 2) from exc
    from netplane.proxy_iptables.renderer import Renderer, RenderOptions

    opts = RenderOptions(node_name=args.node_name, cluster_cidr=args.cluster_cidr,
                         masquerade_all=args.masquerade_all)
    sys.stdout.write(Renderer(opts).render(state).text)
    skipped = sum(1 for s in services if not _has_cluster_ip(s))
    if skipped or ignored:
        print(f"# {skipped} services without a ClusterIP (headless, ExternalName or not allocated) get no "
              f"rules; {ignored} objects of other kinds ignored", file=sys.stderr)
    return 0


def _has_cluster_ip(svc: dict[str, Any]) -> bool:
    spec = svc.get("spec") or {}
    ip = spec.get("clusterIP") or ""
    return bool(ip) and ip != "None" and spec.get("type") != "ExternalName"


def status(args: argparse.Namespace) -> int:
    from netplane.kernel.iptables import Iptables, IptablesError, detect_variant
    from netplane.proxy_iptables import status as st

    try:
        ipt = Iptables(detect_variant() if args.iptables_variant == "auto" else args.iptables_variant)
        rows = st.summarize(st.read(ipt))
    except (IptablesError, OSError) as exc:
        raise CliError(f"cannot read the iptables rules: {exc}") from exc
    print(f"iptables mode ({ipt.variant}): {len(rows)} service ports")
    sys.stdout.write(st.format_rows(rows))
    return 0


def _raise_fd_limit() -> None:
    """Every relayed connection holds two sockets and two pipe ends: take the hard limit,
    as Go programs such as kube-proxy do implicitly."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def run(args: argparse.Namespace) -> int:
    if os.geteuid() != 0:
        raise CliError("the proxy programs the kernel (iptables, sockets on node ports): run it as root", 2)
    if args.cleanup:
        return cleanup(args)
    if args.cluster_cidr is not None:
        import ipaddress

        try:
            args.cluster_cidr = str(ipaddress.ip_network(args.cluster_cidr))
        except ValueError as exc:
            raise CliError(f"--cluster-cidr: {exc}", 2) from exc
    if args.kubeconfig is None or not args.kubeconfig.is_file():
        raise CliError("--kubeconfig must name an existing kubeconfig file", 2)
    if not 0 <= args.min_sync_period <= args.sync_period or args.sync_period <= 0:
        raise CliError("need 0 <= --min-sync-period <= --sync-period, and --sync-period > 0", 2)
    from netplane.cli.loop import run_async, until_signalled
    from netplane.client.kubeconfig import KubeconfigError
    from netplane.client.rest import ApiClient
    from netplane.kernel.iptables import IptablesError
    from netplane.proxy.proxier import Proxier, ProxyError, ProxyOptions, parse_bind_address

    try:
        hz_host, hz_port = parse_bind_address(args.healthz_bind_address, 10256)
        m_host, m_port = parse_bind_address(args.metrics_bind_address, 10249)
    except ProxyError as exc:
        raise CliError(str(exc), 2) from exc
    options = ProxyOptions(node_name=args.node_name, min_sync_period=args.min_sync_period,
                           sync_period=args.sync_period, full_sync_period=args.full_sync_period,
                           healthz_bind_address=hz_host,
                           healthz_port=hz_port, metrics_bind_address=m_host, metrics_port=m_port)
    _raise_fd_limit()
    backend = build_backend(args.mode, args)
    try:
        client = ApiClient.from_kubeconfig(args.kubeconfig)
    except KubeconfigError as exc:
        raise CliError(str(exc), 2) from exc

    async def main() -> None:
        async with client:
            await until_signalled(Proxier(client, backend, options).run(), "proxy")

    try:
        run_async(main())
    except (ProxyError, IptablesError) as exc:
        raise CliError(str(exc)) from exc
    return 0
