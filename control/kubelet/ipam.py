"""Host-local IPAM: pod IPs from the node's pod CIDR, one file per address held.

Each held address is a file `<dir>/<ip>` containing the pod's uid, created with O_EXCL
so that no address is handed out twice, even across a kubelet restart.
"""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path


class IPAMExhausted(Exception):
    """Every address of the pod CIDR is held."""


class HostLocalIPAM:
    def __init__(self, pod_cidr: str, state_dir: Path) -> None:
        self.network = ipaddress.ip_network(pod_cidr)
        self.dir = state_dir
        self.dir.mkdir(parents=True, exist_ok=True)
        # The first host address is the node's bridge (the pods' gateway).
        self.gateway = str(self.network.network_address + 1)

    def _held(self) -> dict[str, str]:
        out = {}
        for entry in self.dir.iterdir():
            try:
                out[entry.name] = entry.read_text().strip()
            except OSError:
                continue
        return out

    def held_ips(self) -> list[str]:
        return sorted(self._held())

    def owner(self, ip: str) -> str | None:
        return self._held().get(ip)

    def lookup(self, uid: str) -> str | None:
        return next((ip for ip, owner in self._held().items() if owner == uid), None)

    def allocate(self, uid: str) -> str:
        """The address of pod `uid` (the same one again if it already holds one)."""
        held = self._held()
        for ip, owner in held.items():
            if owner == uid:
                return ip
        for host in self.network.hosts():
            ip = str(host)
            if ip == self.gateway or ip in held:
                continue
            try:
                fd = os.open(self.dir / ip, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                continue
            with os.fdopen(fd, "w") as f:
                f.write(uid)
            return ip
        raise IPAMExhausted(f"no free address left in {self.network}")

    def release(self, uid: str) -> None:
        for ip, owner in self._held().items():
            if owner == uid:
                (self.dir / ip).unlink(missing_ok=True)

    def reclaim(self, live_uids: set[str]) -> list[str]:
        """Releases addresses of pods that no longer exist; returns them."""
        freed = []
        for ip, owner in self._held().items():
            if owner not in live_uids:
                (self.dir / ip).unlink(missing_ok=True)
                freed.append(ip)
        return freed
