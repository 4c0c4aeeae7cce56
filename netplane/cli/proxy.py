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
from netplane.proxy_ipvs.names import SCHEDULERS as IPVS_SCHEDULERS


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
    p.add_argument("--ipvs-scheduler", default="rr", metavar="NAME",
                   help="ipvs mode: the IPVS scheduler of every virtual server "
                   f"({', '.join(IPVS_SCHEDULERS)})")
    p.add_argument("--ipvs-exclude-cidrs", default="", metavar="CIDR,...",
                   help="ipvs mode: virtual servers in these ranges are not ours; syncs and --cleanup "
                   "leave them alone")
    p.add_argument("--ipvs-tcp-timeout", type=parse_duration, default=0.0,
                   help="ipvs mode: idle timeout of established TCP connections (0: the kernel's)")
    p.add_argument("--ipvs-tcpfin-timeout", type=parse_duration, default=0.0,
                   help="ipvs mode: timeout of TCP connections after a FIN (0: the kernel's)")
    p.add_argument("--ipvs-udp-timeout", type=parse_duration, default=0.0,
                   help="ipvs mode: timeout of UDP flows (0: the kernel's)")
    p.add_argument("--ipvs-termination-grace-period", type=parse_duration, default=900.0,
                   help="ipvs mode: a removed endpoint's real server keeps its TCP connections (weight "
                   "0, no new ones) until they close or this long has passed")
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
    r.add_argument("--ipvs-scheduler", default="rr", metavar="NAME", help="ipvs mode: as for the proxy")
    r.add_argument("--node-ip", action="append", default=[], metavar="IP",
                   help="ipvs mode: an address of the node (node ports get a virtual server on each; "
                   "repeatable)")
    r.set_defaults(func=render)
    st = verbs.add_parser("status", help="what the node's proxy programmed: iptables rules with packet "
                          "counters, IPVS virtual servers with connection counts, userspace listeners")
    st.add_argument("--iptables-variant", choices=("auto", "nft", "legacy"), default="auto")
    st.add_argument("--metrics-address", default="127.0.0.1:10249", metavar="HOST:PORT",
                    help="the running proxy's metrics address, asked for its mode (userspace mode's "
                    "listeners live in the proxy, not in the kernel)")
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
    if mode == "ipvs":
        return _ipvs_backend(cls, args)
    return cls(args.node_name, iptables=_iptables(args), cluster_cidr=args.cluster_cidr,
               masquerade_all=args.masquerade_all)


def _ipvs_backend(cls: Any, args: argparse.Namespace) -> Any:
    if args.ipvs_scheduler not in IPVS_SCHEDULERS:
        raise CliError(f"--ipvs-scheduler {args.ipvs_scheduler}: not an IPVS scheduler; use one of "
                       f"{', '.join(IPVS_SCHEDULERS)}", 2)
    try:
        return cls(args.node_name, iptables=_iptables(args), cluster_cidr=args.cluster_cidr,
                   masquerade_all=args.masquerade_all, scheduler=args.ipvs_scheduler,
                   exclude_cidrs=tuple(c for c in args.ipvs_exclude_cidrs.split(",") if c.strip()),
                   termination_grace=args.ipvs_termination_grace_period,
                   tcp_timeout=int(args.ipvs_tcp_timeout), tcp_fin_timeout=int(args.ipvs_tcpfin_timeout),
                   udp_timeout=int(args.ipvs_udp_timeout))
    except ValueError as exc:
        raise CliError(f"--ipvs-exclude-cidrs: {exc}", 2) from exc


def cleanup(args: argparse.Namespace) -> int:
    done: list[str] = []
    failed: list[str] = []
    # IPVS mode first: its jumps into KUBE-PROXY-FIREWALL would keep the iptables mode from
    # deleting that chain, while it leaves whatever the iptables mode still references.
    for mode in sorted(modes.ALL, key=lambda m: m != "ipvs"):
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


RENDERABLE = {"iptables": "netplane.proxy_iptables.renderer", "ipvs": "netplane.proxy_ipvs.render"}


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
    if args.mode == "ipvs":
        sys.stdout.write(_render_ipvs(state, args))
    else:
        from netplane.proxy_iptables.renderer import Renderer, RenderOptions

        opts = RenderOptions(node_name=args.node_name, cluster_cidr=args.cluster_cidr,
                             masquerade_all=args.masquerade_all)
        sys.stdout.write(Renderer(opts).render(state).text)
    skipped = sum(1 for s in services if not _has_cluster_ip(s))
    if skipped or ignored:
        print(f"# {skipped} services without a ClusterIP (headless, ExternalName or not allocated) get no "
              f"rules; {ignored} objects of other kinds ignored", file=sys.stderr)
    return 0


def _render_ipvs(state: Any, args: argparse.Namespace) -> str:
    import ipaddress

    from netplane.proxy_ipvs.iptables_rules import RuleOptions
    from netplane.proxy_ipvs.planner import PlanOptions
    from netplane.proxy_ipvs.render import render_text

    if args.ipvs_scheduler not in IPVS_SCHEDULERS:
        raise CliError(f"--ipvs-scheduler {args.ipvs_scheduler}: not an IPVS scheduler; use one of "
                       f"{', '.join(IPVS_SCHEDULERS)}", 2)
    try:
        node_ips = tuple(str(ipaddress.IPv4Address(ip)) for ip in args.node_ip)
    except ValueError as exc:
        raise CliError(f"--node-ip: {exc}", 2) from exc
    try:
        return render_text(state, PlanOptions(args.node_name, node_ips, args.ipvs_scheduler),
                           RuleOptions(cluster_cidr=args.cluster_cidr, masquerade_all=args.masquerade_all))
    except ValueError as exc:  # e.g. a loadBalancerSourceRanges entry that is no CIDR
        raise CliError(f"cannot render the objects: {exc}", 2) from exc


def _has_cluster_ip(svc: dict[str, Any]) -> bool:
    spec = svc.get("spec") or {}
    ip = spec.get("clusterIP") or ""
    return bool(ip) and ip != "None" and spec.get("type") != "ExternalName"


def status(args: argparse.Namespace) -> int:
    from netplane.kernel.iptables import Iptables, IptablesError, detect_variant
    from netplane.proxy_iptables import status as st
    from netplane.proxy_ipvs import status as ipvs_status

    mode = _ask_proxy(args.metrics_address, "/proxyMode")
    if mode is not None and mode.strip() == "userspace":
        import json

        from netplane.proxy_userspace import status as us_status

        listeners = json.loads(_ask_proxy(args.metrics_address, "/debug/userspace/listeners") or "[]")
        print(f"userspace mode: {len(listeners)} listeners (the proxy on {args.metrics_address})")
        sys.stdout.write(_table(us_status.HEADER, us_status.rows(listeners)))
        return 0
    virtuals = ipvs_status.read()
    if virtuals:  # the IPVS table is IPVS mode's alone
        print(f"ipvs mode: {len(virtuals)} virtual servers (per connection: ipvsadm -Lnc)")
        sys.stdout.write(_table(ipvs_status.HEADER, ipvs_status.rows(virtuals)))
        return 0

    try:
        ipt = Iptables(detect_variant() if args.iptables_variant == "auto" else args.iptables_variant)
        rows = st.summarize(st.read(ipt))
    except (IptablesError, OSError) as exc:
        raise CliError(f"cannot read the iptables rules: {exc}") from exc
    print(f"iptables mode ({ipt.variant}): {len(rows)} service ports")
    sys.stdout.write(st.format_rows(rows))
    return 0


def _table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    from netplane.ctl.tabwriter import tabwrite

    # kubectl's column layout, three spaces apart as the iptables mode's status table.
    return tabwrite("".join("\t".join(row) + "\n" for row in (header, *rows)), padding=3)


def _ask_proxy(address: str, path: str) -> str | None:
    """GET `path` from the proxy's metrics address; None when no proxy answers there."""
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://{address}{path}", timeout=2) as resp:
            return str(resp.read().decode())
    except (urllib.error.URLError, OSError):
        return None


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
    if args.mode == "ipvs":
        from netplane.proxy_ipvs.kernel import ipvs_available

        reason = ipvs_available()
        if reason:
            raise CliError(f"--mode ipvs: {reason}; use --mode iptables", 1)
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
    from netplane.cli.loop import run_daemon
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
    return run_daemon(args.kubeconfig, "proxy", lambda client: Proxier(client, backend, options).run(),
                      (ProxyError, IptablesError))
