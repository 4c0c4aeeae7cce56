"""Domain-name helpers of the cluster zone: dashed IPs (`10-244-1-5`, as pod and endpoint
names), reverse names (in-addr.arpa, ip6.arpa) and the lowercase, dot-less form that the
zone keys its names by. Pure."""

from __future__ import annotations

import ipaddress

REVERSE_V4 = "in-addr.arpa"
REVERSE_V6 = "ip6.arpa"


def canonical(labels: list[bytes] | tuple[bytes, ...]) -> str | None:
    """The zone's key for a name given as wire labels: lowercase (ASCII only, as DNS
    compares names), without the root dot. None for a label with a dot or non-UTF-8 bytes:
    no name of the zone has one, and joining it would make it look like two labels."""
    out = []
    for label in labels:
        if b"." in label:
            return None
        try:
            out.append(label.lower().decode())
        except UnicodeDecodeError:
            return None
    return ".".join(out)


def dashed(ip: str) -> str:
    """`10.244.1.5` -> `10-244-1-5`, `fd00::5` -> `fd00--5` (CoreDNS's endpoint and pod names)."""
    return ip.replace(".", "-").replace(":", "-")


def undashed(label: str) -> str | None:
    """The IP a dashed label stands for, or None (`10-244-1-5` -> `10.244.1.5`)."""
    v4 = label.replace("-", ".")
    try:
        return str(ipaddress.IPv4Address(v4))
    except ValueError:
        pass
    try:
        return str(ipaddress.IPv6Address(label.replace("-", ":")))
    except ValueError:
        return None


def reverse_name(ip: str) -> str:
    """`10.96.0.10` -> `10.0.96.10.in-addr.arpa` (ip6.arpa nibbles for IPv6), lowercase."""
    return ipaddress.ip_address(ip).reverse_pointer


def ip_of_reverse(name: str) -> str | None:
    """The address a full reverse name points at (the inverse of `reverse_name`), or None
    for a partial one such as `96.10.in-addr.arpa`."""
    if name.endswith("." + REVERSE_V4):
        parts = name[: -len(REVERSE_V4) - 1].split(".")
        if len(parts) != 4 or not all(p.isdigit() and len(p) <= 3 for p in parts):
            return None
        try:
            return str(ipaddress.IPv4Address(".".join(reversed(parts))))
        except ValueError:
            return None
    if name.endswith("." + REVERSE_V6):
        nibbles = name[: -len(REVERSE_V6) - 1].split(".")
        if len(nibbles) != 32 or not all(len(n) == 1 and n in "0123456789abcdef" for n in nibbles):
            return None
        digits = "".join(reversed(nibbles))
        return str(ipaddress.IPv6Address(int(digits, 16)))
    return None


def is_reverse(name: str) -> bool:
    return name.endswith("." + REVERSE_V4) or name.endswith("." + REVERSE_V6) \
        or name in (REVERSE_V4, REVERSE_V6)


def within(name: str, zone: str) -> bool:
    return name == zone or name.endswith("." + zone)
