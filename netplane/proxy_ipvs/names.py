"""kube-proxy's IPVS-mode names (pkg/proxy/ipvs/proxier.go, ipset.go), so that what a node
holds reads the same under netplane and kube-proxy: the VIP interface, the ipsets with
their types and comments, the iptables chains and the jumps into them."""

from __future__ import annotations

from dataclasses import dataclass

DUMMY_DEVICE = "kube-ipvs0"
DEFAULT_SCHEDULER = "rr"
# The schedulers of the kernel's IPVS (ip_vs_<name> modules); kube-proxy passes the name through.
SCHEDULERS = ("rr", "wrr", "lc", "wlc", "lblc", "lblcr", "dh", "sh", "mh", "sed", "nq", "fo", "ovf", "twos")

# ipset types (the kernel's names).
HASH_IP, HASH_IP_PORT, HASH_IP_PORT_IP, HASH_IP_PORT_NET, BITMAP_PORT = (
    "hash:ip", "hash:ip,port", "hash:ip,port,ip", "hash:ip,port,net", "bitmap:port")

LOOP_BACK = "KUBE-LOOP-BACK"
CLUSTER_IP = "KUBE-CLUSTER-IP"
EXTERNAL_IP = "KUBE-EXTERNAL-IP"
EXTERNAL_IP_LOCAL = "KUBE-EXTERNAL-IP-LOCAL"
LOAD_BALANCER = "KUBE-LOAD-BALANCER"
LOAD_BALANCER_FW = "KUBE-LOAD-BALANCER-FW"
LOAD_BALANCER_LOCAL = "KUBE-LOAD-BALANCER-LOCAL"
LOAD_BALANCER_SOURCE_IP = "KUBE-LOAD-BALANCER-SOURCE-IP"
LOAD_BALANCER_SOURCE_CIDR = "KUBE-LOAD-BALANCER-SOURCE-CIDR"
NODE_PORT_TCP = "KUBE-NODE-PORT-TCP"
NODE_PORT_LOCAL_TCP = "KUBE-NODE-PORT-LOCAL-TCP"
NODE_PORT_UDP = "KUBE-NODE-PORT-UDP"
NODE_PORT_LOCAL_UDP = "KUBE-NODE-PORT-LOCAL-UDP"
NODE_PORT_SCTP = "KUBE-NODE-PORT-SCTP-HASH"
NODE_PORT_LOCAL_SCTP = "KUBE-NODE-PORT-LOCAL-SCTP-HASH"
HEALTH_CHECK_NODE_PORT = "KUBE-HEALTH-CHECK-NODE-PORT"
IPVS_IPS = "KUBE-IPVS-IPS"


@dataclass(frozen=True)
class IpsetInfo:
    name: str
    kind: str
    comment: str


# kube-proxy's ipsetInfo, in its order.
IPSETS: tuple[IpsetInfo, ...] = (
    IpsetInfo(LOOP_BACK, HASH_IP_PORT_IP, "Kubernetes endpoints dst ip:port, source ip for solving hairpin "
              "purpose"),
    IpsetInfo(CLUSTER_IP, HASH_IP_PORT, "Kubernetes service cluster ip + port for masquerade purpose"),
    IpsetInfo(EXTERNAL_IP, HASH_IP_PORT, "Kubernetes service external ip + port for masquerade and filter "
              "purpose"),
    IpsetInfo(EXTERNAL_IP_LOCAL, HASH_IP_PORT, "Kubernetes service external ip + port with "
              "externalTrafficPolicy=local"),
    IpsetInfo(LOAD_BALANCER, HASH_IP_PORT, "Kubernetes service lb portal"),
    IpsetInfo(LOAD_BALANCER_FW, HASH_IP_PORT, "Kubernetes service load balancer ip + port for load balancer "
              "with sourceRange"),
    IpsetInfo(LOAD_BALANCER_LOCAL, HASH_IP_PORT, "Kubernetes service load balancer ip + port with "
              "externalTrafficPolicy=local"),
    IpsetInfo(LOAD_BALANCER_SOURCE_IP, HASH_IP_PORT_IP, "Kubernetes service load balancer ip + port + source "
              "IP for packet filter purpose"),
    IpsetInfo(LOAD_BALANCER_SOURCE_CIDR, HASH_IP_PORT_NET, "Kubernetes service load balancer ip + port + "
              "source cidr for packet filter purpose"),
    IpsetInfo(NODE_PORT_TCP, BITMAP_PORT, "Kubernetes nodeport TCP port for masquerade purpose"),
    IpsetInfo(NODE_PORT_LOCAL_TCP, BITMAP_PORT,
              "Kubernetes nodeport TCP port with externalTrafficPolicy=local"),
    IpsetInfo(NODE_PORT_UDP, BITMAP_PORT, "Kubernetes nodeport UDP port for masquerade purpose"),
    IpsetInfo(NODE_PORT_LOCAL_UDP, BITMAP_PORT,
              "Kubernetes nodeport UDP port with externalTrafficPolicy=local"),
    IpsetInfo(NODE_PORT_SCTP, HASH_IP_PORT, "Kubernetes nodeport SCTP port for masquerade purpose with type "
              "'hash ip:port'"),
    IpsetInfo(NODE_PORT_LOCAL_SCTP, HASH_IP_PORT,
              "Kubernetes nodeport SCTP port with externalTrafficPolicy=local with type 'hash ip:port'"),
    IpsetInfo(HEALTH_CHECK_NODE_PORT, BITMAP_PORT, "Kubernetes health check node port"),
    IpsetInfo(IPVS_IPS, HASH_IP, "Kubernetes service IPs"),
)
IPSET_BY_NAME = {info.name: info for info in IPSETS}

# iptables chains.
SERVICES = "KUBE-SERVICES"
PROXY_FIREWALL = "KUBE-PROXY-FIREWALL"
SOURCE_RANGES_FIREWALL = "KUBE-SOURCE-RANGES-FIREWALL"
POSTROUTING = "KUBE-POSTROUTING"
MARK_MASQ = "KUBE-MARK-MASQ"
NODE_PORT = "KUBE-NODE-PORT"
FORWARD = "KUBE-FORWARD"
LOAD_BALANCER_CHAIN = "KUBE-LOAD-BALANCER"
IPVS_FILTER = "KUBE-IPVS-FILTER"

NAT_CHAINS = (SERVICES, POSTROUTING, NODE_PORT, LOAD_BALANCER_CHAIN, MARK_MASQ)
FILTER_CHAINS = (FORWARD, NODE_PORT, PROXY_FIREWALL, SOURCE_RANGES_FIREWALL, IPVS_FILTER)
# What cleanup removes: kube-proxy's iptablesCleanupChains, which leaves KUBE-MARK-MASQ
# alone (the iptables mode's chains jump to it as well).
CLEANUP_CHAINS = {"nat": (SERVICES, POSTROUTING, NODE_PORT, LOAD_BALANCER_CHAIN),
                  "filter": FILTER_CHAINS}
# Chains only this mode makes: finding one means the IPVS mode was here.
OWN_CHAINS = {"nat": (NODE_PORT, LOAD_BALANCER_CHAIN),
              "filter": (NODE_PORT, SOURCE_RANGES_FIREWALL, IPVS_FILTER)}

# (table, built-in chain, our chain, comment): kube-proxy's iptablesJumpChain, each jump
# inserted first in its built-in chain.
JUMPS: tuple[tuple[str, str, str, str], ...] = (
    ("nat", "OUTPUT", SERVICES, "kubernetes service portals"),
    ("nat", "PREROUTING", SERVICES, "kubernetes service portals"),
    ("nat", "POSTROUTING", POSTROUTING, "kubernetes postrouting rules"),
    ("filter", "FORWARD", FORWARD, "kubernetes forwarding rules"),
    ("filter", "INPUT", NODE_PORT, "kubernetes health check rules"),
    ("filter", "INPUT", PROXY_FIREWALL, "kube-proxy firewall rules"),
    ("filter", "FORWARD", PROXY_FIREWALL, "kube-proxy firewall rules"),
    ("filter", "INPUT", IPVS_FILTER, "kubernetes ipvs access filter"),
)


def jump_spec(chain: str, comment: str) -> str:
    """A jump as iptables-save prints it (and iptables-restore takes it)."""
    return f'-m comment --comment "{comment}" -j {chain}'
