"""The cluster zone: every service's and pod's records, indexed so that a lookup is a few
dict reads and a change touches only the object that changed. Pure (no I/O, no clock).

The name's shape says where to look: `...<svc>.<ns>.svc.<zone>` is in service (ns, svc)'s
records, `<dashed-ip>.<ns>.pod.<zone>` is a pod, a reverse name is the PTR index. Names
with children but no records of their own (`svc.<zone>`, `<ns>.svc.<zone>`, `_tcp...`)
exist and answer NODATA, never NXDOMAIN (RFC 8020).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Literal, TypeVar

from netplane.dns.names import dashed, undashed
from netplane.dns.records import (
    AAAA,
    NS,
    SCHEMA_VERSION,
    TXT,
    A,
    PodRecord,
    Records,
    ServiceRecords,
)

PodMode = Literal["verified", "insecure", "disabled"]
NAMESERVER_LABELS = "ns.dns"  # the zone's NS (CoreDNS's name): the DNS service's own IPs
EMPTY: Records = {}
K = TypeVar("K")


@dataclass(frozen=True)
class ZoneConfig:
    domain: str = "cluster.local"
    ttl: int = 5  # CoreDNS's kubernetes plugin default; kube-dns used 30
    # verified: a pod name answers only for a pod that exists with that IP in that namespace;
    # insecure: any well-formed dashed IP answers (kube-dns's behaviour); disabled: none.
    pods: PodMode = "verified"
    dns_service: tuple[str, str] = ("kube-system", "kube-dns")


class Zone:
    def __init__(self, config: ZoneConfig, serial: int = 1) -> None:
        self.config = config
        self.domain = config.domain.strip(".").lower()
        self.serial = serial  # the SOA serial; bumped by every change that alters an answer
        self._services: dict[tuple[str, str], ServiceRecords] = {}
        self._services_per_ns: Counter[str] = Counter()
        self._ptr: dict[str, Counter[str]] = {}  # ip -> target name -> how many contribute it
        self._pods: dict[str, PodRecord] = {}  # "ns/name" -> record
        self._pod_names: dict[tuple[str, str], Counter[str]] = {}  # (ns, dashed ip) -> ips
        self._pods_per_ns: Counter[str] = Counter()
        self._namespace_by_ip: dict[str, Counter[str]] = {}
        self._apex: Records = {NS: (f"{NAMESERVER_LABELS}.{self.domain}",)}
        self._version_name = f"dns-version.{self.domain}"

    # -- changes -------------------------------------------------------------------------

    def set_service(self, namespace: str, name: str, records: ServiceRecords) -> bool:
        """Replaces what service namespace/name contributes; False if nothing changed."""
        key = (namespace.lower(), name.lower())
        old = self._services.get(key)
        if old == records:
            return False
        if old is not None:
            self._drop_ptrs(old)
        else:
            self._services_per_ns[key[0]] += 1
        self._services[key] = records
        for ip, target in records.ptrs:
            self._ptr.setdefault(ip, Counter())[target] += 1
        self.serial += 1
        return True

    def remove_service(self, namespace: str, name: str) -> bool:
        key = (namespace.lower(), name.lower())
        old = self._services.pop(key, None)
        if old is None:
            return False
        self._drop_ptrs(old)
        self._services_per_ns[key[0]] -= 1
        if self._services_per_ns[key[0]] <= 0:
            del self._services_per_ns[key[0]]
        self.serial += 1
        return True

    def _drop_ptrs(self, records: ServiceRecords) -> None:
        for ip, target in records.ptrs:
            _decrement(self._ptr, ip, target)

    def set_pod(self, key: str, record: PodRecord | None) -> bool:
        """Replaces what pod `key` ("ns/name") contributes (None: nothing); False if
        nothing changed."""
        old = self._pods.get(key)
        if old == record:
            return False
        if old is not None:
            self._unindex_pod(old)
            del self._pods[key]
        if record is not None:
            self._pods[key] = record
            ns = record.namespace.lower()
            self._pods_per_ns[ns] += 1
            for ip in record.ips:
                self._pod_names.setdefault((ns, dashed(ip)), Counter())[ip] += 1
                self._namespace_by_ip.setdefault(ip, Counter())[ns] += 1
        if self.config.pods == "verified":
            self.serial += 1
        return True

    def remove_pod(self, key: str) -> bool:
        return self.set_pod(key, None)

    def _unindex_pod(self, record: PodRecord) -> None:
        ns = record.namespace.lower()
        self._pods_per_ns[ns] -= 1
        if self._pods_per_ns[ns] <= 0:
            del self._pods_per_ns[ns]
        for ip in record.ips:
            _decrement(self._pod_names, (ns, dashed(ip)), ip)
            _decrement(self._namespace_by_ip, ip, ns)

    # -- lookups -------------------------------------------------------------------------

    def contains(self, name: str) -> bool:
        """Whether lowercase `name` is in this zone (the apex included)."""
        return name == self.domain or name.endswith("." + self.domain)

    def lookup(self, name: str) -> Records | None:
        """The records at lowercase `name` (inside the zone): None if the name does not
        exist (NXDOMAIN), an empty mapping if it exists without records (NODATA)."""
        if name == self.domain:
            return self._apex
        labels = name[: -len(self.domain) - 1].split(".")
        kind = labels[-1]
        if kind == "svc":
            return self._lookup_service(name, labels)
        if kind == "pod":
            return self._lookup_pod(labels)
        if name == self._version_name:
            return {TXT: (SCHEMA_VERSION,)}
        if kind == "dns":
            if len(labels) == 1:
                return EMPTY
            if len(labels) == 2 and labels[0] == "ns":
                return self._nameserver_addresses()
        return None

    def _lookup_service(self, name: str, labels: list[str]) -> Records | None:
        if len(labels) == 1:
            return EMPTY  # svc.<zone>
        if len(labels) == 2:
            return EMPTY if labels[0] in self._services_per_ns else None
        records = self._services.get((labels[-2], labels[-3]))
        if records is None:
            return None
        found = records.names.get(name)
        if found is not None:
            return found
        return EMPTY if name in records.empty else None

    def _lookup_pod(self, labels: list[str]) -> Records | None:
        mode = self.config.pods
        if mode == "disabled":
            return None
        if len(labels) == 1:
            return EMPTY  # pod.<zone>
        ns = labels[-2]
        if len(labels) == 2:
            return EMPTY if mode == "insecure" or ns in self._pods_per_ns else None
        if len(labels) != 3:
            return None
        if mode == "insecure":
            ip = undashed(labels[0])
            if ip is None:
                return None
            return {AAAA if ":" in ip else A: (ip,)}
        ips = self._pod_names.get((ns, labels[0]))
        if not ips:
            return None
        out: dict[int, list[str]] = {}
        for ip in sorted(ips):
            out.setdefault(AAAA if ":" in ip else A, []).append(ip)
        return {t: tuple(v) for t, v in out.items()}

    def _nameserver_addresses(self) -> Records:
        ns, name = self.config.dns_service
        records = self._services.get((ns, name))
        if records is None:
            return EMPTY
        return records.names.get(f"{name}.{ns}.svc.{self.domain}", EMPTY)

    def ptr(self, ip: str) -> tuple[str, ...]:
        """The names an IP's PTR points at (service and endpoint names), sorted."""
        return tuple(sorted(self._ptr.get(ip, ())))

    def namespace_of(self, ip: str) -> str | None:
        """The namespace of the pod with this IP (for the autopath search); None if no pod
        or pods of several namespaces have it."""
        namespaces = self._namespace_by_ip.get(ip)
        if not namespaces or len(namespaces) != 1:
            return None
        return next(iter(namespaces))

    @property
    def service_count(self) -> int:
        return len(self._services)

    @property
    def pod_count(self) -> int:
        return len(self._pods)


def _decrement(index: dict[K, Counter[str]], key: K, value: str) -> None:
    """Takes one `value` off `index[key]`, dropping what becomes empty."""
    counts = index.get(key)
    if counts is None:
        return
    counts[value] -= 1
    if counts[value] <= 0:
        del counts[value]
    if not counts:
        del index[key]
