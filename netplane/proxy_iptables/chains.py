"""kube-proxy's iptables chain names, hashed exactly as kube-proxy hashes them, so that a
rule found on a node names the same chain in netplane and in kube-proxy (portProtoHash:
sha256 of "<namespace>/<name>[:<port>]<protocol>", base32, first 16 characters)."""

from __future__ import annotations

import base64
import hashlib

# Top-level chains.
SERVICES = "KUBE-SERVICES"
EXTERNAL_SERVICES = "KUBE-EXTERNAL-SERVICES"
NODEPORTS = "KUBE-NODEPORTS"
POSTROUTING = "KUBE-POSTROUTING"
MARK_MASQ = "KUBE-MARK-MASQ"
FORWARD = "KUBE-FORWARD"
PROXY_FIREWALL = "KUBE-PROXY-FIREWALL"
KUBELET_FIREWALL = "KUBE-FIREWALL"

# Per service port, and per endpoint.
SVC, SVL, EXT, FW, SEP = "KUBE-SVC-", "KUBE-SVL-", "KUBE-EXT-", "KUBE-FW-", "KUBE-SEP-"
SERVICE_CHAIN_PREFIXES = (SVC, SVL, EXT, FW, SEP)

FILTER_CHAINS = (SERVICES, EXTERNAL_SERVICES, FORWARD, NODEPORTS, PROXY_FIREWALL)
NAT_CHAINS = (SERVICES, NODEPORTS, POSTROUTING, MARK_MASQ)


def _hash(text: str) -> str:
    return base64.b32encode(hashlib.sha256(text.encode()).digest()).decode()[:16]


def port_hash(service_port: str, protocol: str) -> str:
    """The hash the SVC/SVL/EXT/FW chains of a service port share; computed once per
    service port by the renderer (no cache: the renderer keeps the names it made)."""
    return _hash(service_port + protocol)


def port_chain(prefix: str, service_port: str, protocol: str) -> str:
    """KUBE-SVC/SVL/EXT/FW-<hash> of a service port ("ns/name:port", "tcp")."""
    return prefix + port_hash(service_port, protocol)


def endpoint_chain(service_port: str, protocol: str, endpoint: str) -> str:
    """KUBE-SEP-<hash> of one endpoint ("ip:port") of a service port."""
    return SEP + _hash(service_port + protocol + endpoint)


def is_service_chain(name: str) -> bool:
    return name.startswith(SERVICE_CHAIN_PREFIXES)


# (table, our chain, built-in chain, comment, extra match) as kube-proxy's
# iptablesJumpChains: each jump is inserted first in its built-in chain.
JUMPS: tuple[tuple[str, str, str, str, tuple[str, ...]], ...] = (
    ("filter", EXTERNAL_SERVICES, "INPUT", "kubernetes externally-visible service portals",
     ("-m", "conntrack", "--ctstate", "NEW")),
    ("filter", EXTERNAL_SERVICES, "FORWARD", "kubernetes externally-visible service portals",
     ("-m", "conntrack", "--ctstate", "NEW")),
    ("filter", NODEPORTS, "INPUT", "kubernetes health check service ports", ()),
    ("filter", SERVICES, "FORWARD", "kubernetes service portals", ("-m", "conntrack", "--ctstate", "NEW")),
    ("filter", SERVICES, "OUTPUT", "kubernetes service portals", ("-m", "conntrack", "--ctstate", "NEW")),
    ("filter", FORWARD, "FORWARD", "kubernetes forwarding rules", ()),
    ("filter", PROXY_FIREWALL, "INPUT", "kubernetes load balancer firewall",
     ("-m", "conntrack", "--ctstate", "NEW")),
    ("filter", PROXY_FIREWALL, "OUTPUT", "kubernetes load balancer firewall",
     ("-m", "conntrack", "--ctstate", "NEW")),
    ("filter", PROXY_FIREWALL, "FORWARD", "kubernetes load balancer firewall",
     ("-m", "conntrack", "--ctstate", "NEW")),
    ("nat", SERVICES, "OUTPUT", "kubernetes service portals", ()),
    ("nat", SERVICES, "PREROUTING", "kubernetes service portals", ()),
    ("nat", POSTROUTING, "POSTROUTING", "kubernetes postrouting rules", ()),
)
