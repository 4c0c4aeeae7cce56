"""Host-local IPAM: pod IPs from the node's pod CIDR, one file per address held.

The layout is CNI host-local's: `<dir>/<ip>` holds the uid of the pod that has the address,
and `<dir>/last_reserved_ip` the address handed out last. A file appears atomically with
its content (written aside, then hard-linked into place: link(2), like O_EXCL, fails if the
name exists), so no address is ever handed out twice and a crash never leaves an address
with no owner, even across kubelet restarts. Searching from the last address given rather
than from the lowest free one delays reuse, as host-local does: a freed address is taken
last, when stale endpoints and conntrack entries for its former pod have long gone.
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import os
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

LAST_RESERVED = "last_reserved_ip"
_LOCK = ".lock"


class IPAMExhausted(Exception):
    """Every address of the pod CIDR is held."""


def usable(network: ipaddress.IPv4Network) -> list[ipaddress.IPv4Address]:
    """The addresses pods may get: all but the network, the gateway (the first host, the
    node's bridge) and the broadcast address."""
    return list(network.hosts())[1:]


def candidates(network: ipaddress.IPv4Network, last: str | None) -> Iterator[str]:
    """Every usable address once, starting after `last` (wrapping round)."""
    pool = [str(ip) for ip in usable(network)]
    start = pool.index(last) + 1 if last in pool else 0
    yield from pool[start:]
    yield from pool[:start]


def _is_ipv4(name: str) -> bool:
    try:
        ipaddress.IPv4Address(name)
    except ValueError:
        return False
    return True


class HostLocalIPAM:
    """Pod addresses of one node. Safe across threads and processes sharing `state_dir`."""

    def __init__(self, pod_cidr: str, state_dir: Path) -> None:
        network = ipaddress.ip_network(pod_cidr)
        if not isinstance(network, ipaddress.IPv4Network) or network.prefixlen > 30:
            raise ValueError(f"pod CIDR {pod_cidr} must be IPv4 with at least 4 addresses (/30 or wider)")
        self.network: ipaddress.IPv4Network = network
        self.gateway = str(network.network_address + 1)
        self.dir = state_dir
        self.dir.mkdir(parents=True, exist_ok=True)
        self._thread_lock = threading.Lock()

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        with self._thread_lock, open(self.dir / _LOCK, "a") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            yield

    def held(self) -> dict[str, str]:
        """Every held address and the uid holding it."""
        out = {}
        for entry in self.dir.iterdir():
            if _is_ipv4(entry.name):
                with contextlib.suppress(FileNotFoundError):
                    out[entry.name] = entry.read_text().strip()
        return out

    def held_ips(self) -> list[str]:
        return sorted(self.held(), key=ipaddress.IPv4Address)

    def owner(self, ip: str) -> str | None:
        return self.held().get(ip)

    def lookup(self, pod_uid: str) -> str | None:
        """The address `pod_uid` holds, if any."""
        return next((ip for ip, owner in self.held().items() if owner == pod_uid), None)

    def allocate(self, pod_uid: str) -> str:
        """The address of pod `pod_uid`: the one it holds already, else a free one."""
        if not pod_uid or pod_uid != pod_uid.strip() or "\n" in pod_uid:
            raise ValueError(f"invalid pod uid {pod_uid!r}")
        with self._locked():
            held = self.held()
            mine = [ip for ip, owner in held.items() if owner == pod_uid]
            for ip in mine:
                if ipaddress.IPv4Address(ip) in self.network and ip != self.gateway:
                    return ip
                (self.dir / ip).unlink(missing_ok=True)  # from a former pod CIDR
            ip = self._reserve(pod_uid, held)
            self._write_last(ip)
            return ip

    def _reserve(self, pod_uid: str, held: dict[str, str]) -> str:
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=self.dir)
        try:
            with os.fdopen(fd, "w") as f:
                f.write(pod_uid)
            for ip in candidates(self.network, self._read_last()):
                if ip in held:
                    continue
                try:
                    os.link(tmp, self.dir / ip)
                except FileExistsError:
                    continue
                return ip
        finally:
            os.unlink(tmp)
        raise IPAMExhausted(f"no free address left in pod CIDR {self.network} "
                            f"({len(held)} held); delete pods or give the node a wider CIDR")

    def _read_last(self) -> str | None:
        try:
            return (self.dir / LAST_RESERVED).read_text().strip()
        except FileNotFoundError:
            return None

    def _write_last(self, ip: str) -> None:
        tmp = self.dir / f".{LAST_RESERVED}.tmp"
        tmp.write_text(ip)
        os.replace(tmp, self.dir / LAST_RESERVED)

    def release(self, pod_uid: str) -> list[str]:
        """Frees the address(es) `pod_uid` holds (idempotent); returns them."""
        with self._locked():
            return self._release_where(lambda owner: owner == pod_uid)

    def reclaim(self, live_uids: Iterable[str]) -> list[str]:
        """Frees the addresses of pods that are not in `live_uids` (leaks after a restart,
        or a crash between holding an address and recording the pod); returns them."""
        live = set(live_uids)
        with self._locked():
            return self._release_where(lambda owner: owner not in live)

    def _release_where(self, doomed: Callable[[str], bool]) -> list[str]:
        freed = []
        for ip, owner in self.held().items():
            if doomed(owner):
                (self.dir / ip).unlink(missing_ok=True)
                freed.append(ip)
        return sorted(freed, key=ipaddress.IPv4Address)
