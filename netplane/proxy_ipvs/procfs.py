"""The kernel's IPVS tables as /proc prints them: /proc/net/ip_vs (virtual servers, their
scheduler and flags, real servers with weights and connection counts) and
/proc/net/ip_vs_conn (one entry per connection IPVS scheduled, and persistence templates).
Pure parsers, for `netplane proxy status` and `netplane trace`. The sync path
(kernel.py) reads /proc/net/ip_vs with the same line patterns straight into its own table
types: at 10k services that is 100k real servers, read without records in between.
"""

from __future__ import annotations

import re
import socket
from dataclasses import dataclass

# thread-self: the namespace of the reading thread (netns.run_in), not of the process.
PROC_IP_VS = "/proc/thread-self/net/ip_vs"
PROC_IP_VS_CONN = "/proc/thread-self/net/ip_vs_conn"
SERVICE_LINE = re.compile(r"^(TCP|UDP|SCTP)\s+([0-9A-F]{8}):([0-9A-F]{4})\s+(\S+)\s*(.*)$")
REAL_LINE = re.compile(r"^\s+->\s+([0-9A-F]{8}):([0-9A-F]{4})\s+(\S+)\s+(\d+)\s+(\d+)\s+(\d+)")
_CONN = re.compile(r"^(TCP|UDP|SCTP)\s+([0-9A-F]{8})\s+([0-9A-F]{4})\s+([0-9A-F]{8})\s+([0-9A-F]{4})\s+"
                   r"([0-9A-F]{8})\s+([0-9A-F]{4})\s+(\S+)\s+(\d+)")


def hex_ip(hex_text: str) -> str:
    # IPVS prints addresses in host order after ntohl: the hex reads as the dotted quad.
    return socket.inet_ntoa(int(hex_text, 16).to_bytes(4, "big"))


@dataclass(frozen=True)
class Real:
    address: str  # "ip:port"
    forward: str  # "Masq", "Local", "Route", "Tunnel"
    weight: int
    active: int
    inactive: int


@dataclass(frozen=True)
class Virtual:
    proto: str  # "tcp", "udp", "sctp"
    address: str  # "vip:port"
    scheduler: str
    flags: str  # what follows the scheduler, e.g. "persistent 10800"
    reals: tuple[Real, ...]

    @property
    def persistent(self) -> int | None:
        """ClientIP affinity's timeout in seconds, when the service has one."""
        words = self.flags.split()
        if "persistent" in words and words.index("persistent") + 1 < len(words):
            return int(words[words.index("persistent") + 1])
        return None


@dataclass(frozen=True)
class Conn:
    proto: str
    client: str  # "ip:port"; port 0 in a persistence template
    virtual: str
    real: str
    state: str  # "SYN_RECV", "ESTABLISHED", "CLOSE", "UDP", "NONE" (a template), ...
    expires: int  # seconds

    @property
    def template(self) -> bool:
        return self.client.endswith(":0")


def parse_ip_vs(text: str) -> list[Virtual]:
    """/proc/net/ip_vs: the IPv4 virtual servers with their real servers (firewall-mark
    and IPv6 services are left out: kube-proxy makes neither here)."""
    out: list[Virtual] = []
    head: tuple[str, str, str, str] | None = None
    reals: list[Real] = []

    def close() -> None:
        if head is not None:
            out.append(Virtual(*head, tuple(reals)))

    for line in text.splitlines():
        r = REAL_LINE.match(line)
        if r is not None:
            if head is not None:
                reals.append(Real(f"{hex_ip(r[1])}:{int(r[2], 16)}", r[3], int(r[4]), int(r[5]), int(r[6])))
            continue
        s = SERVICE_LINE.match(line)
        if s is None:
            continue
        close()
        head = (s[1].lower(), f"{hex_ip(s[2])}:{int(s[3], 16)}", s[4], s[5].strip())
        reals = []
    close()
    return out


def parse_ip_vs_conn(text: str) -> list[Conn]:
    out = []
    for line in text.splitlines():
        c = _CONN.match(line)
        if c is None:
            continue
        out.append(Conn(c[1].lower(), f"{hex_ip(c[2])}:{int(c[3], 16)}", f"{hex_ip(c[4])}:{int(c[5], 16)}",
                        f"{hex_ip(c[6])}:{int(c[7], 16)}", c[8], int(c[9])))
    return out
