"""Why a rule stopped a packet, in words: kube-proxy's comments name the service port and
the reason (no endpoints, no local endpoints), its chains name the rest. Pure."""

from __future__ import annotations

from netplane.trace.locate import ServiceMatch
from netplane.trace.ruleset import Rule


def _endpoints(service: ServiceMatch | None, spn: str) -> str:
    if service is None or service.service_port != spn:
        return ""
    if not service.endpoints:
        return " (no EndpointSlice lists an endpoint for it: does its selector match a pod?)"
    return f" ({service.endpoints} endpoints in its EndpointSlices, {service.ready} ready)"


def stop_reason(rule: Rule, node: str, service: ServiceMatch | None = None) -> str:
    """One line: why `rule` (a DROP or REJECT the walk ended on) stopped the packet."""
    comment = rule.comment
    what = "rejected" if rule.target.name == "REJECT" else "dropped"
    if comment.endswith(" has no endpoints"):
        spn = comment.removesuffix(" has no endpoints")
        return f"service {spn} has no ready endpoints{_endpoints(service, spn)}"
    if comment.endswith(" has no local endpoints"):
        spn = comment.removesuffix(" has no local endpoints")
        return (f"service {spn} has no ready endpoints on {node} and its traffic policy is Local"
                f"{_endpoints(service, spn)}")
    if rule.chain == "KUBE-PROXY-FIREWALL":
        return f"{comment or 'the load balancer firewall'}: the client is outside loadBalancerSourceRanges"
    if rule.chain == "KUBE-FORWARD" and "INVALID" in rule.spec:
        return "conntrack finds the packet INVALID (kube-proxy drops those when forwarding)"
    where = f"rule {rule.index} of {rule.table} {rule.chain}"
    return f"{what} by {where}" + (f" ({comment})" if comment else "")


def policy_reason(table: str, chain: str, policy: str) -> str:
    return f"{table} {chain}'s policy is {policy} and no rule accepted the packet before"
