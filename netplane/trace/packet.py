"""The probe's 5-tuple as the netfilter walk sees it, and the `--to VIP:PORT` it comes from."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field, replace

PROTOCOLS = ("tcp", "udp")


class TargetError(ValueError):
    """`--to` is not IPv4:PORT; the message says what is wrong."""


def parse_target(text: str) -> tuple[str, int]:
    """"10.96.0.10:53" -> ("10.96.0.10", 53). IPv4 only: netplane's proxies are."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port:
        raise TargetError(f"{text!r} is not VIP:PORT (e.g. 10.96.0.10:53)")
    try:
        ip = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        raise TargetError(f"{host!r} in {text!r} is not an IP address") from None
    if ip.version != 4:
        raise TargetError(f"{text!r}: only IPv4 services are traced (netplane's proxies serve IPv4)")
    if not port.isdigit() or not 1 <= int(port) <= 65535:
        raise TargetError(f"{port!r} in {text!r} is not a port (1-65535)")
    return str(ip), int(port)


@dataclass(frozen=True)
class Packet:
    """The first packet of a connection (conntrack NEW): a TCP SYN or a UDP datagram."""

    proto: str
    src: str
    sport: int
    dst: str
    dport: int
    mark: int = 0
    tcp_flags: frozenset[str] = field(default=frozenset({"SYN"}))
    # conntrack's NAT status bits, set as the walk applies DNAT/SNAT (ctstate DNAT/SNAT).
    nat: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        if self.proto not in PROTOCOLS:
            raise ValueError(f"protocol must be one of {', '.join(PROTOCOLS)}, not {self.proto!r}")

    def with_dst(self, ip: str, port: int | None) -> Packet:
        return replace(self, dst=ip, dport=self.dport if port is None else port, nat=self.nat | {"DNAT"})

    def with_src(self, ip: str, port: int | None = None) -> Packet:
        return replace(self, src=ip, sport=self.sport if port is None else port, nat=self.nat | {"SNAT"})

    def with_mark(self, mark: int) -> Packet:
        return replace(self, mark=mark & 0xFFFFFFFF)

    def __str__(self) -> str:
        return f"{self.proto.upper()} {self.src}:{self.sport} -> {self.dst}:{self.dport}"
