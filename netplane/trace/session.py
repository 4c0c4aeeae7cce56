"""One trace, from the located pod to the report: the nodes the packet crosses (the pod's,
and the one that owns the destination when it is another node's address: a NodePort),
each node's mode, snapshots before the probe, the probe, and per node the netfilter
crossing and what the proxy did, until the packet is delivered, stopped, or leaves.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from netplane.trace.locate import Located
from netplane.trace.modes import ModeTracer, tracer_for
from netplane.trace.namespaces import NodeHandle, node_netns, pod_netns
from netplane.trace.netfilter import Crossing, NetfilterTrace
from netplane.trace.node import read_node_view
from netplane.trace.packet import Packet
from netplane.trace.prober import Prober, ProbeResult
from netplane.trace.proxyapi import proxy_mode
from netplane.trace.reasons import policy_reason, stop_reason
from netplane.trace.report import Hop, Outcome, ProxyView, Report, netfilter_view


@dataclass(frozen=True)
class TraceRequest:
    namespace: str
    pod: str
    ip: str
    port: int
    proto: str
    timeout: float = 2.0
    payload: str = "hostname"


def _plain(p: Packet) -> Packet:
    # What arrives at the next node: its addresses and ports, none of this node's
    # conntrack or mark (both stay on the node that set them).
    return Packet(p.proto, p.src, p.sport, p.dst, p.dport)


def _stopped(crossing: Crossing, node: str, located: Located) -> str:
    path = crossing.choice.path
    if path.stopped_by is not None:
        return stop_reason(path.stopped_by, node, located.service)
    last = path.steps[-1] if path.steps else None
    if last is not None and last.kind == "policy":
        return policy_reason(last.table, last.chain, last.action.removeprefix("policy "))
    return last.action if last is not None else "stopped"


@dataclass(frozen=True)
class _Crossed:
    hop: Hop
    outcome: Outcome | None  # None: the packet goes on to `onward`
    onward: Packet | None = None


def _cross(node: NodeHandle, mode: str, tracer: ModeTracer, netfilter: NetfilterTrace, located: Located,
           packet: Packet, following: NodeHandle | None) -> _Crossed:
    """The packet through one node: stopped there, delivered there, or sent on."""
    crossing = netfilter.cross(packet, read_node_view(node.name, node.netns, ipsets=tracer.needs_ipsets))
    path = crossing.choice.path
    nf = netfilter_view(netfilter.variant, crossing.choice, crossing.paths, crossing.deltas,
                        crossing.conntrack)

    def hop(outcome: str, proxy: ProxyView | None = None, out: Packet | None = None) -> Hop:
        return Hop(node.name, node.netns, mode, str(packet), crossing.in_iface, outcome,
                   str(out) if out else "", nf, proxy)

    if path.verdict in ("drop", "reject"):
        reason = _stopped(crossing, node.name, located)
        verdict = "rejected" if path.verdict == "reject" else "dropped"
        return _Crossed(hop(f"{verdict}: {reason}"), Outcome(verdict, reason))
    if path.local:
        delivery = tracer.delivered(node, path.packet,
                                    located.service.service_port if located.service else None)
        if delivery is None:
            where = f"{path.packet.dst}:{path.packet.dport}"
            return _Crossed(hop(f"delivered to {where} on {node.name} itself: no proxy listener serves it"),
                            Outcome("delivered", f"a socket of node {node.name} itself takes it", where))
        ip = (delivery.endpoint or "").rpartition(":")[0]
        outcome = Outcome(delivery.verdict, delivery.reason, delivery.endpoint, located.pods_by_ip.get(ip))
        return _Crossed(hop(delivery.reason, delivery.view), outcome)
    out = path.packet
    where = f"{out.dst}:{out.dport}"
    nat = " (after DNAT)" if "DNAT" in out.nat else ""
    forwarded = hop(f"forwarded to {where}{nat} via {path.out_iface}", out=out)
    if following is not None and located.node_of(out.dst) == following.name:
        return _Crossed(forwarded, None, _plain(out))
    owner = located.pods_by_ip.get(out.dst)
    if owner is not None or "DNAT" in out.nat:
        how = f"DNAT on {node.name} chose it" if "DNAT" in out.nat else f"{node.name} forwards it there"
        return _Crossed(forwarded, Outcome("delivered", how, where, owner))
    return _Crossed(forwarded, Outcome("routed", f"no rule of {node.name} redirected it: it is routed to "
                                                 f"{where} as ordinary traffic"))


def _follow(nodes: list[NodeHandle], modes: dict[str, str], tracers: dict[str, ModeTracer],
            netfilters: dict[str, NetfilterTrace], located: Located,
            start: Packet) -> tuple[list[Hop], Outcome]:
    hops: list[Hop] = []
    packet = start
    for i, node in enumerate(nodes):
        following = nodes[i + 1] if i + 1 < len(nodes) else None
        crossed = _cross(node, modes[node.name], tracers[node.name], netfilters[node.name], located, packet,
                         following)
        hops.append(crossed.hop)
        if crossed.outcome is not None:
            return hops, crossed.outcome
        assert crossed.onward is not None
        packet = crossed.onward
    raise AssertionError("the last node always decides the outcome")


def _notes(req: TraceRequest, located: Located, result: ProbeResult) -> list[str]:
    notes = []
    if located.service is None:
        notes.append(f"no Service serves {req.ip}:{req.port}/{req.proto.upper()} (as a ClusterIP, external "
                     "or load balancer IP, or a NodePort on a node's address)")
        if located.other_protocol:
            notes.append(f"a Service serves it over {located.other_protocol}: try --proto "
                         f"{located.other_protocol.lower()}")
    if not result.answers:
        notes.append(f"the probe got no answer within the time-out ({req.timeout:g} s)")
    return notes


def run_trace(req: TraceRequest, located: Located,
              tracers_by_mode: Callable[[str], ModeTracer] = tracer_for) -> Report:
    """Runs the probe and explains its path. Blocking; needs root."""
    pod = located.pod
    pod_ns = pod_netns(pod.uid, pod.ip)
    nodes = [node_netns(pod_ns, pod.node)]
    dst_node = located.node_of(req.ip)
    if dst_node is not None and dst_node != pod.node:
        nodes.append(node_netns(pod_ns, dst_node))
    modes = {n.name: proxy_mode(n) for n in nodes}
    # A mode that cannot be traced is refused here, before a probe leaves the pod.
    tracers = {n.name: tracers_by_mode(modes[n.name]) for n in nodes}
    netfilters = {n.name: NetfilterTrace(n) for n in nodes}
    # Userspace mode picks a backend only for a connection it accepted: complete the handshake.
    handshake = req.proto == "tcp" and "userspace" in modes.values()
    with Prober(pod_ns, req.proto, req.ip, req.port, handshake=handshake, timeout=req.timeout,
                payload=req.payload) as prober:
        for node in nodes:
            tracers[node.name].prepare(node)
            netfilters[node.name].prepare()
        result = prober.fire()
        start = Packet(req.proto, result.src, result.sport, req.ip, req.port)
        hops, outcome = _follow(nodes, modes, tracers, netfilters, located, start)
    svc = located.service
    target = {"ip": req.ip, "port": req.port, "proto": req.proto,
              "service": svc.service_port if svc else None, "kind": svc.kind if svc else None,
              "endpoints": svc.endpoints if svc else None, "ready": svc.ready if svc else None}
    probe = {"netns": pod_ns, "src": result.src, "sport": result.sport, "sent": list(result.sent),
             "answers": list(result.answers), "handshake": handshake}
    return Report({"namespace": pod.namespace, "name": pod.name, "ip": pod.ip, "node": pod.node,
                   "netns": pod_ns}, target, probe, tuple(hops), outcome, tuple(_notes(req, located, result)))
