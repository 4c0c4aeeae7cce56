"""ipset's nfnetlink messages (include/uapi/linux/netfilter/ipset/ip_set.h) for members:
add, delete, and the members of a set read back from a LIST dump. Pure. (Sets are
created and destroyed rarely; pyroute2's IPSet does that.)"""

from __future__ import annotations

import socket
import struct

from netplane.proxy_ipvs import wire as w
from netplane.proxy_ipvs.planner import SetEntry

NFNL_SUBSYS_IPSET = 6
IPSET_PROTOCOL = 7
CMD_LIST, CMD_ADD, CMD_DEL = 7, 9, 10
ATTR_PROTOCOL, ATTR_SETNAME, ATTR_DATA, ATTR_ADT = 1, 2, 7, 8
ATTR_IP, ATTR_CIDR, ATTR_PORT, ATTR_PROTO, ATTR_IP2, ATTR_CIDR2 = 1, 3, 4, 7, 20, 21
ATTR_IPADDR_IPV4 = 1
# IPSET_ERR_EXIST: deleting a member that is not there (or adding one twice with EXCL).
ERR_EXIST = 4103

_PROTO_NUMBERS = {"tcp": 6, "udp": 17, "sctp": 132}
_PROTO_NAMES = {v: k for k, v in _PROTO_NUMBERS.items()}
_NFGEN = struct.pack("=BBH", socket.AF_INET, 0, 0)
_PROTOCOL_ATTR = w.u8(ATTR_PROTOCOL, IPSET_PROTOCOL)


def _ip(kind: int, address: str) -> bytes:
    inner = w.attr(ATTR_IPADDR_IPV4 | w.NLA_F_NET_BYTEORDER, socket.inet_aton(address))
    return w.nested(kind, inner, flag=w.NLA_F_NESTED)


def entry_data(entry: SetEntry) -> bytes:
    """The IPSET_ATTR_DATA of one member (the kernel wants the nested flag, and addresses
    and ports in network byte order, flagged so)."""
    parts = []
    if entry.ip:
        parts.append(_ip(ATTR_IP, entry.ip))
    if entry.port or not entry.ip:
        parts.append(w.attr(ATTR_PORT | w.NLA_F_NET_BYTEORDER, struct.pack(">H", entry.port)))
    if entry.protocol:
        parts.append(w.u8(ATTR_PROTO, _PROTO_NUMBERS[entry.protocol]))
    if entry.ip2:
        parts.append(_ip(ATTR_IP2, entry.ip2))
        if entry.cidr2:
            parts.append(w.u8(ATTR_CIDR2, entry.cidr2))
    return w.nested(ATTR_DATA, *parts, flag=w.NLA_F_NESTED)


def _message(cmd: int, set_name: str, body: bytes, seq: int, flags: int) -> bytes:
    return w.message((NFNL_SUBSYS_IPSET << 8) | cmd, flags, seq,
                     _NFGEN + _PROTOCOL_ATTR + w.asciiz(ATTR_SETNAME, set_name) + body)


def add(set_name: str, entry: SetEntry, seq: int) -> bytes:
    """Adds a member; one that is there already is no error (no NLM_F_EXCL)."""
    return _message(CMD_ADD, set_name, entry_data(entry), seq, w.NLM_F_REQUEST)


def delete(set_name: str, entry: SetEntry, seq: int) -> bytes:
    return _message(CMD_DEL, set_name, entry_data(entry), seq, w.NLM_F_REQUEST)


def list_members(set_name: str, seq: int) -> bytes:
    return _message(CMD_LIST, set_name, b"", seq, w.NLM_F_REQUEST | w.NLM_F_DUMP)


def _address(value: memoryview) -> str:
    inner = w.attr_map(value)
    return socket.inet_ntoa(bytes(inner[ATTR_IPADDR_IPV4][:4])) if ATTR_IPADDR_IPV4 in inner else ""


def parse_entry(data: memoryview) -> SetEntry:
    a = w.attr_map(data)
    ip = _address(a[ATTR_IP]) if ATTR_IP in a else ""
    port = struct.unpack_from(">H", a[ATTR_PORT])[0] if ATTR_PORT in a else 0
    proto = _PROTO_NAMES.get(a[ATTR_PROTO][0], str(a[ATTR_PROTO][0])) if ATTR_PROTO in a and ip else ""
    ip2 = _address(a[ATTR_IP2]) if ATTR_IP2 in a else ""
    cidr2 = a[ATTR_CIDR2][0] if ATTR_CIDR2 in a else 0  # only hash:ip,port,net members have one
    return SetEntry(ip, proto, port, ip2, cidr2)


def parse_members(payload: memoryview) -> list[SetEntry]:
    """The members in one LIST answer (a big set comes in several)."""
    out: list[SetEntry] = []
    for kind, value in w.attrs(payload, 4):
        if kind == ATTR_ADT:
            out += [parse_entry(data) for k, data in w.attrs(value) if k == ATTR_DATA]
    return out
