"""What IPVS mode would program, as text a person can review (`netplane proxy render --mode
ipvs`): the virtual and real servers in `ipvsadm -Sn` form, the addresses on kube-ipvs0,
the ipsets in `ipset save` form and the iptables rules with their jumps. Pure."""

from __future__ import annotations

from netplane.model import ProxyState
from netplane.proxy_ipvs import names as n
from netplane.proxy_ipvs.iptables_rules import RuleOptions, render_rules, with_jumps
from netplane.proxy_ipvs.planner import Plan, PlanOptions, SetEntry
from netplane.proxy_ipvs.table import (
    FLAG_ONEPACKET,
    FLAG_PERSISTENT,
    FLAG_SCHED1,
    FLAG_SCHED2,
    FLAG_SCHED3,
    FWD_DROUTE,
    FWD_TUNNEL,
    RealKey,
    VirtualKey,
    VirtualServer,
)

_PROTO_OPTION = {"TCP": "-t", "UDP": "-u", "SCTP": "--sctp-service"}
_FORWARD_OPTION = {FWD_TUNNEL: "-i", FWD_DROUTE: "-g"}
_IPSET_CREATE = {
    n.BITMAP_PORT: "range 0-65535",
}


def _hostport(address: str, port: int) -> str:
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def _sched_flags(vs: VirtualServer) -> str:
    # ipvsadm's print_sched_flags: sh and mh name their flags, others number them.
    prefix = vs.scheduler if vs.scheduler in ("sh", "mh") else ""
    names = (("fallback", FLAG_SCHED1), ("port", FLAG_SCHED2), ("", FLAG_SCHED3))
    out = []
    for i, (name, bit) in enumerate(names, 1):
        if vs.flags & bit:
            out.append(f"{prefix}-{name}" if prefix and name else f"flag-{i}")
    return f" -b {','.join(out)}" if out else ""


def service_line(vs: VirtualServer) -> str:
    """`ipvsadm -Sn`'s line of a virtual server (ipvsadm-restore reads it back)."""
    k = vs.key
    line = f"-A {_PROTO_OPTION[k.protocol]} {_hostport(k.address, k.port)} -s {vs.scheduler}"
    if vs.flags & FLAG_PERSISTENT:
        line += f" -p {vs.timeout}"
    if vs.flags & FLAG_ONEPACKET:
        line += " -o"
    return line + _sched_flags(vs)


def real_line(key: VirtualKey, real: RealKey, weight: int = 1, forward: int = 0) -> str:
    return (f"-a {_PROTO_OPTION[key.protocol]} {_hostport(key.address, key.port)} -r "
            f"{_hostport(real.address, real.port)} {_FORWARD_OPTION.get(forward, '-m')} -w {weight}")


def ipvsadm_text(plan: Plan) -> str:
    """The planned table as ipvsadm-restore input (services sorted by key)."""
    lines = []
    for key in sorted(plan.virtual):
        vs, reals = plan.virtual[key]
        lines.append(service_line(vs))
        lines += [real_line(key, rk) for rk in reals]
    return "".join(line + "\n" for line in lines)


def ipset_create_line(name: str) -> str:
    info = n.IPSET_BY_NAME[name]
    extra = _IPSET_CREATE.get(info.kind, "family inet hashsize 1024 maxelem 65536")
    return f"create {name} {info.kind} {extra}"


def render_text(state: ProxyState, plan_options: PlanOptions, rule_options: RuleOptions) -> str:
    plan = Plan.build(state, plan_options)
    out = [f"# IPVS virtual and real servers (ipvsadm -Sn): {len(plan.virtual)} virtual servers, "
           f"scheduler {plan_options.scheduler}\n", ipvsadm_text(plan)]
    out.append(f"# addresses on {n.DUMMY_DEVICE} (ip -4 addr show dev {n.DUMMY_DEVICE})\n")
    out += [f"{ip}/32\n" for ip in sorted(plan.vips, key=_ip_key)]
    out.append("# ipsets (ipset save)\n")
    sets = plan.ipsets()
    for info in n.IPSETS:
        out.append(ipset_create_line(info.name) + "\n")
        out += [f"add {info.name} {entry}\n" for entry in sorted(sets[info.name], key=_entry_key)]
    out.append("# iptables rules (iptables-restore --noflush; -I: kube-proxy's jumps from the built-in "
               "chains)\n")
    out.append(with_jumps(render_rules(plan.nonempty_sets(), rule_options), {}))
    return "".join(out)


def _ip_key(ip: str) -> tuple[int, ...]:
    return tuple(int(p) for p in ip.split(".")) if "." in ip else (999,)


def _entry_key(e: SetEntry) -> tuple[object, ...]:
    return (_ip_key(e.ip) if e.ip else (), e.protocol, e.port, _ip_key(e.ip2) if e.ip2 else (), e.cidr2)
