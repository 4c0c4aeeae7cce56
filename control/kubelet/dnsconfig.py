"""A pod's /etc/resolv.conf and /etc/hosts, written as the kubelet writes them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

MAX_SEARCH = 32  # Kubernetes' MaxDNSSearchPaths
_HOSTS_HEADER = (
    "# Kubernetes-managed hosts file.\n"
    "127.0.0.1\tlocalhost\n"
    "::1\tlocalhost ip6-localhost ip6-loopback\n"
    "fe00::0\tip6-localnet\n"
    "fe00::0\tip6-mcastprefix\n"
    "fe00::1\tip6-allnodes\n"
    "fe00::2\tip6-allrouters\n"
)


@dataclass(frozen=True)
class HostResolv:
    nameservers: list[str]
    searches: list[str]
    options: list[str]

    @classmethod
    def parse(cls, text: str) -> HostResolv:
        ns, search, opts = [], [], []
        for line in text.splitlines():
            parts = line.split("#", 1)[0].split()
            if not parts:
                continue
            if parts[0] == "nameserver" and len(parts) > 1:
                ns.append(parts[1])
            elif parts[0] in ("search", "domain"):
                search = parts[1:]
            elif parts[0] == "options":
                opts.extend(parts[1:])
        return cls(ns, search, opts)


def _merge_options(base: list[str], extra: list[dict[str, Any]]) -> list[str]:
    out = {o.split(":", 1)[0]: o for o in base}
    for opt in extra:
        name = opt.get("name", "")
        out[name] = f"{name}:{opt['value']}" if opt.get("value") is not None else name
    return list(out.values())


def resolv_conf(pod: dict[str, Any], *, cluster_dns: list[str], cluster_domain: str,
                host: HostResolv) -> str:
    """resolv.conf per the pod's dnsPolicy (ClusterFirst by default) and dnsConfig."""
    spec = pod.get("spec") or {}
    ns = pod["metadata"].get("namespace", "default")
    policy = spec.get("dnsPolicy") or "ClusterFirst"
    if policy == "ClusterFirstWithHostNet" or (policy == "ClusterFirst" and not spec.get("hostNetwork")):
        policy = "ClusterFirst" if cluster_dns else "Default"
    if policy == "ClusterFirst":
        nameservers = list(cluster_dns)
        searches = [f"{ns}.svc.{cluster_domain}", f"svc.{cluster_domain}", cluster_domain, *host.searches]
        options = ["ndots:5"]
    elif policy == "None":
        nameservers, searches, options = [], [], []
    else:  # Default: what the node itself uses
        nameservers, searches, options = list(host.nameservers), list(host.searches), list(host.options)
    cfg = spec.get("dnsConfig") or {}
    nameservers += [n for n in cfg.get("nameservers") or [] if n not in nameservers]
    searches += [s for s in cfg.get("searches") or [] if s not in searches]
    options = _merge_options(options, cfg.get("options") or [])
    lines = []
    if searches:
        lines.append("search " + " ".join(dict.fromkeys(searches[:MAX_SEARCH])))
    lines += [f"nameserver {n}" for n in nameservers[:3]]
    if options:
        lines.append("options " + " ".join(options))
    return "\n".join(lines) + "\n"


def hosts_file(pod: dict[str, Any], pod_ip: str, *, cluster_domain: str) -> str:
    spec = pod.get("spec") or {}
    meta = pod["metadata"]
    hostname = spec.get("hostname") or meta["name"]
    out = _HOSTS_HEADER
    if spec.get("subdomain"):
        fqdn = f"{hostname}.{spec['subdomain']}.{meta.get('namespace', 'default')}.svc.{cluster_domain}"
        out += f"{pod_ip}\t{fqdn}\t{hostname}\n"
    else:
        out += f"{pod_ip}\t{hostname}\n"
    aliases = spec.get("hostAliases") or []
    if aliases:
        out += "\n# Entries added by HostAliases.\n"
        out += "".join(f"{a['ip']}\t{chr(9).join(a.get('hostnames') or [])}\n" for a in aliases)
    return out
