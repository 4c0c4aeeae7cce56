"""Where names outside the cluster zone go: `--upstream IP[:PORT]` flags, the nameservers
of a resolv.conf (the default: the node's own, as a pod with dnsPolicy Default sees it),
and kube-dns's ConfigMap (`kube-system/kube-dns`: `upstreamNameservers` replaces the
default upstreams, `stubDomains` sends a domain to servers of its own), which Kubernetes
documents for customizing the cluster DNS and which netplane follows while it runs. Pure.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

DNS_PORT = 53
# kube-dns's limit for upstreamNameservers (the glibc resolver's MAXNS).
MAX_UPSTREAMS = 3


class UpstreamError(ValueError):
    """An upstream address or configuration that cannot be used; the message says why."""


@dataclass(frozen=True, order=True)
class Upstream:
    host: str
    port: int = DNS_PORT

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def parse_upstream(text: str) -> Upstream:
    """`IP`, `IP:PORT`, `IPv6` or `[IPv6]:PORT`."""
    raw = text.strip()
    host, port = raw, DNS_PORT
    if raw.startswith("["):
        inside, sep, rest = raw[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise UpstreamError(f"{text!r} is not IP[:PORT]")
        host = inside
        if rest:
            port = _port(rest[1:], text)
    elif raw.count(":") == 1:
        host, _, p = raw.partition(":")
        port = _port(p, text)
    try:
        host = str(ipaddress.ip_address(host))
    except ValueError:
        raise UpstreamError(f"{text!r} is not IP[:PORT] (an address, not a host name)") from None
    return Upstream(host, port)


def _port(text: str, whole: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise UpstreamError(f"{whole!r}: the port must be 1..65535")
    return int(text)


@dataclass(frozen=True)
class HostResolver:
    """What the server takes from a resolv.conf: nameservers and search domains."""

    nameservers: tuple[Upstream, ...] = ()
    searches: tuple[str, ...] = ()


def parse_resolv_conf(text: str) -> HostResolver:
    """Nameservers accumulate (unparseable ones are skipped, as the glibc resolver does);
    the last `search` line wins."""
    servers: list[Upstream] = []
    searches: list[str] = []
    for line in text.splitlines():
        fields = line.split("#", 1)[0].split(";", 1)[0].split()
        if len(fields) >= 2 and fields[0] == "nameserver":
            try:
                servers.append(parse_upstream(fields[1].split("%", 1)[0]))
            except UpstreamError:
                continue
        elif fields and fields[0] == "search":
            searches = [s.rstrip(".").lower() for s in fields[1:] if s.rstrip(".")]
    return HostResolver(tuple(servers), tuple(searches))


@dataclass(frozen=True)
class UpstreamConfig:
    default: tuple[Upstream, ...] = ()
    stubs: Mapping[str, tuple[Upstream, ...]] = field(default_factory=dict)

    def for_name(self, name: str) -> tuple[Upstream, ...]:
        """The servers for lowercase `name`: the longest stub domain it is in, else the
        default upstreams."""
        best, servers = -1, self.default
        for domain, upstreams in self.stubs.items():
            if (name == domain or name.endswith("." + domain)) and len(domain) > best:
                best, servers = len(domain), upstreams
        return servers


Stubs = dict[str, tuple[Upstream, ...]]


def parse_kube_dns_configmap(data: Mapping[str, str]) -> tuple[tuple[Upstream, ...], Stubs]:
    """kube-dns's ConfigMap keys: `upstreamNameservers` (a JSON list of at most 3 `IP[:PORT]`)
    and `stubDomains` (a JSON object: domain -> list of `IP[:PORT]`)."""
    upstreams: tuple[Upstream, ...] = ()
    stubs: Stubs = {}
    raw = data.get("upstreamNameservers")
    if raw:
        servers = _json_list(raw, "upstreamNameservers")
        if len(servers) > MAX_UPSTREAMS:
            raise UpstreamError(f"upstreamNameservers: at most {MAX_UPSTREAMS} servers, got {len(servers)}")
        upstreams = tuple(parse_upstream(s) for s in servers)
    raw = data.get("stubDomains")
    if raw:
        try:
            parsed = json.loads(raw)
        except ValueError as exc:
            raise UpstreamError(f"stubDomains: not JSON ({exc})") from None
        if not isinstance(parsed, dict):
            raise UpstreamError("stubDomains: must be a JSON object of domain -> [IP[:PORT], ...]")
        for domain, servers in parsed.items():
            name = str(domain).strip().rstrip(".").lower()
            if not name:
                raise UpstreamError("stubDomains: an empty domain")
            stubs[name] = tuple(parse_upstream(s) for s in _json_list(servers, f"stubDomains[{domain}]"))
    return upstreams, stubs


def _json_list(raw: str | Sequence[object], what: str) -> list[str]:
    value: object = raw
    if isinstance(raw, str):
        try:
            value = json.loads(raw)
        except ValueError as exc:
            raise UpstreamError(f"{what}: not JSON ({exc})") from None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise UpstreamError(f"{what}: must be a JSON list of \"IP[:PORT]\" strings")
    return list(value)  # type: ignore[arg-type]
