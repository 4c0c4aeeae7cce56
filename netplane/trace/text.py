"""A trace report for people: the probe and its answers, then node by node the rules the
packet matched in order (with how far each counter moved while it passed, and the rule
as iptables-save prints it), the choices the kernel made and how they were told apart,
the conntrack entry, what the proxy did, and the outcome. Pure."""

from __future__ import annotations

from typing import Any

from netplane.trace.report import Hop, NetfilterView, Report, StepView


def _answer(a: dict[str, Any]) -> str:
    port = f":{a['sport']}" if a.get("sport") else ""
    detail = f" ({a['detail']})" if a.get("detail") else ""
    return f"{a['kind']} from {a['src']}{port}{detail} after {a.get('after_ms', 0):.1f} ms"


def _delta(packets: int | None) -> str:
    return "    " if packets is None else f"{packets:+4d}"


def _step(s: StepView) -> list[str]:
    if s.kind in ("route", "kernel"):
        return [f"         {s.kind}: {s.action}"]
    if s.kind == "policy":
        return [f"         {s.table} {s.chain}: {s.action}"]
    where = f"{s.table} {s.chain} #{s.index}"
    if s.kind == "passed":
        chance = f", p={s.probability:.2f}" if s.probability is not None else ""
        head = f"  {_delta(s.packets)}  {where}: not taken ({s.why}{chance})"
    else:
        decided = f"   [{s.why}: taken]" if s.assumed else ""
        head = f"  {_delta(s.packets)}  {where}: {s.action}{decided}"
    return [head, f"           {s.rule}"]


def _netfilter(nf: NetfilterView) -> list[str]:
    lines = [f"  netfilter ({nf.variant}): the rules the packet matched, with the packets each counted while "
             "the probe passed"]
    for s in nf.steps:
        lines += _step(s)
    if not any(s.kind == "rule" for s in nf.steps):
        lines.append("         no rule matched it")
    choice = f"{nf.paths} paths possible; {nf.decided_by}" if nf.paths > 1 else nf.decided_by
    lines.append(f"  path: {choice}")
    if not nf.fits:
        lines.append("  warning: some rules on this path did not count the probe (marked +0): it may not "
                     "have passed there, or the rules changed meanwhile")
    lines.append(f"  conntrack: {nf.conntrack or 'no entry for the probe'}")
    return lines


def _hop(hop: Hop) -> list[str]:
    lines = [f"{hop.node} ({hop.netns}), proxy mode {hop.mode}",
             f"  arrives{f' on {hop.in_iface}' if hop.in_iface else ''}: {hop.packet_in}"]
    if hop.netfilter is not None:
        lines += _netfilter(hop.netfilter)
    if hop.proxy is not None:
        lines += [f"  {hop.proxy.mode} proxy: {line}" for line in hop.proxy.lines]
    lines.append(f"  => {hop.outcome}")
    return lines


def render(report: Report) -> str:
    pod, target, probe, outcome = report.pod, report.target, report.probe, report.outcome
    service = ""
    if target.get("service"):
        service = (f", service {target['service']} ({target['kind']}, {target['endpoints']} endpoints, "
                   f"{target['ready']} ready)")
    sent = " + ".join(probe["sent"])
    lines = [f"trace: pod {pod['namespace']}/{pod['name']} ({pod['ip']} on {pod['node']}) -> "
             f"{target['ip']}:{target['port']}/{target['proto'].upper()}{service}",
             f"probe: {target['proto'].upper()} {sent} from {probe['src']}:{probe['sport']}, crafted with "
             f"scapy in {probe['netns']}"]
    lines += [f"answer: {_answer(a)}" for a in probe["answers"]] or ["answer: none"]
    for hop in report.hops:
        lines += ["", *_hop(hop)]
    lines.append("")
    endpoint = ""
    if outcome.endpoint:
        endpoint = f" endpoint {outcome.endpoint}" + (f" (pod {outcome.endpoint_pod})" if outcome.endpoint_pod
                                                      else "")
    lines.append(f"result: {outcome.verdict.upper()}{endpoint}: {outcome.reason}")
    lines += [f"note: {n}" for n in report.notes]
    return "\n".join(lines) + "\n"
