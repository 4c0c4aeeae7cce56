"""A pod's /etc/resolv.conf, /etc/hosts and hostname, as the kubelet computes them
(pkg/kubelet/network/dns, kubelet_pods.go) and containerd renders them. Pure."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec

from netplane.model import Pod
from netplane.model.meta import KubeStruct

# Kubernetes' validation limits (the ExpandedDNSConfig ones, the default since 1.28).
MAX_NAMESERVERS = 3
MAX_SEARCH_PATHS = 32
MAX_SEARCH_CHARS = 2048
MAX_DOMAIN_LENGTH = 253  # DNS1123SubdomainMaxLength: longer search paths crash some resolvers
HOSTNAME_MAX = 63
DEFAULT_OPTIONS = ("ndots:5",)
MANAGED_HOSTS_HEADER = "# Kubernetes-managed hosts file.\n"
_HOSTS_BOILERPLATE = (
    "127.0.0.1\tlocalhost\n"
    "::1\tlocalhost ip6-localhost ip6-loopback\n"
    "fe00::0\tip6-localnet\n"
    "fe00::0\tip6-mcastprefix\n"
    "fe00::1\tip6-allnodes\n"
    "fe00::2\tip6-allrouters\n"
)


class HostAlias(KubeStruct, frozen=True):
    """spec.hostAliases[] (netplane.model's PodSpec does not carry it yet)."""

    ip: str = ""
    hostnames: list[str] = msgspec.field(default_factory=list)


def host_aliases(raw_pod: dict[str, Any]) -> list[HostAlias]:
    return msgspec.convert((raw_pod.get("spec") or {}).get("hostAliases") or [], list[HostAlias])


@dataclass(frozen=True)
class ResolvConf:
    """The three things a resolver reads from resolv.conf."""

    nameservers: tuple[str, ...] = ()
    searches: tuple[str, ...] = ()
    options: tuple[str, ...] = ()

    @classmethod
    def parse(cls, text: str) -> ResolvConf:
        """As the kubelet's parseResolvConf: nameservers accumulate, the last `search` and the
        last `options` line win, a search path's trailing dot is dropped, `domain` is ignored."""
        nameservers: list[str] = []
        searches: list[str] = []
        options: list[str] = []
        for line in text.splitlines():
            line = line.strip()
            if line.startswith("#"):
                continue
            fields = line.split()
            if not fields:
                continue
            if fields[0] == "nameserver" and len(fields) >= 2:
                nameservers.append(fields[1])
            elif fields[0] == "search":
                searches = [s.removesuffix(".") for s in fields[1:]]
            elif fields[0] == "options":
                options = fields[1:]
        return cls(tuple(nameservers), tuple(searches), tuple(options))

    def render(self) -> str:
        """containerd's layout: search, then nameservers, then options."""
        out = ""
        if self.searches:
            out += "search " + " ".join(self.searches) + "\n"
        out += "".join(f"nameserver {n}\n" for n in self.nameservers)
        if self.options:
            out += "options " + " ".join(self.options) + "\n"
        return out


def _unique(items: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))


def merge_options(existing: Sequence[str], extra: Iterable[tuple[str, str | None]]) -> tuple[str, ...]:
    """mergeDNSOptions: dnsConfig options override same-named ones. Kubernetes rebuilds the
    list from a Go map (random order); netplane keeps the existing order and appends."""
    merged: dict[str, str] = {}
    for op in existing:
        name, _, value = op.partition(":")
        merged[name] = value
    for name, value in extra:
        merged[name] = value or ""
    return tuple(f"{k}:{v}" if v else k for k, v in merged.items())


def fit_searches(searches: Sequence[str]) -> tuple[str, ...]:
    """formDNSSearchFitsLimits: at most 32 paths, none over 253 characters, the line at most
    2048 characters (cut from the end)."""
    kept = [s for s in list(searches)[:MAX_SEARCH_PATHS] if len(s) <= MAX_DOMAIN_LENGTH]
    while kept and len(" ".join(kept)) > MAX_SEARCH_CHARS:
        kept.pop()
    return tuple(kept)


def pod_dns(pod: Pod, *, cluster_dns: Sequence[str], cluster_domain: str,
            host: ResolvConf | None) -> ResolvConf:
    """GetPodDNS. `host` is the node's resolv.conf (the kubelet's --resolv-conf); None means
    that flag is empty, and the node's own DNS is then 127.0.0.1 with search "."."""
    spec = pod.spec
    policy = spec.dns_policy or "ClusterFirst"
    if policy == "ClusterFirst" and spec.host_network:
        policy = "Default"  # ClusterFirst falls back to Default on the host network
    elif policy == "ClusterFirstWithHostNet":
        policy = "ClusterFirst"
    base = host if host is not None else ResolvConf()
    if policy == "None":
        conf = ResolvConf()
    elif policy == "ClusterFirst" and cluster_dns:
        # The cluster DNS is the only nameserver: it forwards what it cannot answer itself.
        searches: tuple[str, ...] = base.searches
        if cluster_domain:
            ns = pod.metadata.namespace or "default"
            searches = _unique((f"{ns}.svc.{cluster_domain}", f"svc.{cluster_domain}", cluster_domain,
                                *base.searches))
        conf = ResolvConf(tuple(cluster_dns), searches, DEFAULT_OPTIONS)
    elif host is None:
        # Default (or ClusterFirst without a cluster DNS, which falls back to it).
        conf = ResolvConf(("127.0.0.1",), (".",), ())
    else:
        conf = base
    if spec.dns_config is not None:
        extra = spec.dns_config
        conf = ResolvConf(_unique((*conf.nameservers, *extra.nameservers)),
                          _unique((*conf.searches, *extra.searches)),
                          merge_options(conf.options, ((o.name, o.value) for o in extra.options)))
    return ResolvConf(conf.nameservers[:MAX_NAMESERVERS], fit_searches(conf.searches), conf.options)


def resolv_conf(pod: Pod, *, cluster_dns: Sequence[str], cluster_domain: str,
                host: ResolvConf | None) -> str:
    """The text of the pod's /etc/resolv.conf."""
    return pod_dns(pod, cluster_dns=cluster_dns, cluster_domain=cluster_domain, host=host).render()


def pod_hostname(pod: Pod) -> str:
    """spec.hostname or the pod's name, cut to 63 characters without a trailing '-' or '.'
    (truncatePodHostnameIfNeeded)."""
    name = pod.spec.hostname or pod.metadata.name
    if len(name) <= HOSTNAME_MAX:
        return name
    return name[:HOSTNAME_MAX].rstrip("-.")


def pod_domain(pod: Pod, cluster_domain: str) -> str:
    """`<subdomain>.<ns>.svc.<zone>` when spec.subdomain is set, else ""."""
    if not pod.spec.subdomain:
        return ""
    return f"{pod.spec.subdomain}.{pod.metadata.namespace or 'default'}.svc.{cluster_domain}"


def hosts_file(pod: Pod, pod_ips: Sequence[str], *, cluster_domain: str,
               aliases: Sequence[HostAlias] = ()) -> str:
    """managedHostsFileContent: the boilerplate, one line per pod IP naming the pod (with its
    FQDN first when it has a subdomain), then the hostAliases."""
    hostname = pod_hostname(pod)
    domain = pod_domain(pod, cluster_domain)
    out = MANAGED_HOSTS_HEADER + _HOSTS_BOILERPLATE
    for ip in pod_ips:
        out += f"{ip}\t{hostname}.{domain}\t{hostname}\n" if domain else f"{ip}\t{hostname}\n"
    if aliases:
        out += "\n# Entries added by HostAliases.\n"
        out += "".join(f"{a.ip}\t{chr(9).join(a.hostnames)}\n" for a in aliases)
    return out
