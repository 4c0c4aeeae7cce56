"""The IPVS table as data: virtual servers (one per service IP and port) and their real
servers, as the planner wants them and as the kernel reports them."""

from __future__ import annotations

from dataclasses import dataclass

# IP_VS_SVC_F_*: the service flags (include/uapi/linux/ip_vs.h).
FLAG_PERSISTENT = 0x1
FLAG_HASHED = 0x2  # set by the kernel on every service it holds; never ours to set
FLAG_ONEPACKET = 0x4
FLAG_SCHED1 = 0x8  # sh-fallback / mh-fallback
FLAG_SCHED2 = 0x10  # sh-port / mh-port: kube-proxy's FlagSourceHash, set for "mh"
FLAG_SCHED3 = 0x20

# IP_VS_CONN_F_FWD_MASK values: how packets reach a real server.
FWD_MASQ, FWD_LOCAL, FWD_TUNNEL, FWD_DROUTE = 0, 1, 2, 3

PROTOCOLS = {"TCP": 6, "UDP": 17, "SCTP": 132}
PROTOCOL_NAMES = {v: k for k, v in PROTOCOLS.items()}


@dataclass(frozen=True, order=True, slots=True)
class VirtualKey:
    """What identifies a virtual server: protocol, address, port."""

    protocol: str
    address: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"{self.protocol}/{host}:{self.port}"


@dataclass(frozen=True, slots=True)
class VirtualServer:
    key: VirtualKey
    scheduler: str = "rr"
    flags: int = 0
    timeout: int = 0  # persistence timeout in seconds (ClientIP affinity); 0: none


@dataclass(frozen=True, order=True, slots=True)
class RealKey:
    address: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"{host}:{self.port}"


@dataclass(frozen=True, slots=True)
class RealServer:
    """A real server as the kernel reports it: weight and its connection counters."""

    key: RealKey
    weight: int = 1
    forward: int = FWD_MASQ
    active: int = 0
    inactive: int = 0
    persistent: int = 0
