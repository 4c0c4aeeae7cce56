"""rtnetlink messages for kube-ipvs0: the dummy link made and removed, its VIPs added and
removed, and every IPv4 address of the namespace read back in one dump. Pure."""

from __future__ import annotations

import socket
import struct

from netplane.proxy_ipvs import wire as w

RTM_NEWLINK, RTM_DELLINK = 16, 17
RTM_NEWADDR, RTM_DELADDR, RTM_GETADDR = 20, 21, 22
IFLA_IFNAME, IFLA_LINKINFO, IFLA_INFO_KIND = 3, 18, 1
IFA_ADDRESS, IFA_LOCAL = 1, 2
NLM_F_REPLACE = 0x100
_IFADDR = struct.Struct("=BBBBI")
_IFINFO = struct.Struct("=BxHiII")


def new_dummy(name: str, seq: int) -> bytes:
    """Creates a dummy link `name` (left down); asks for an ACK."""
    body = (_IFINFO.pack(socket.AF_UNSPEC, 0, 0, 0, 0) + w.asciiz(IFLA_IFNAME, name)
            + w.nested(IFLA_LINKINFO, w.asciiz(IFLA_INFO_KIND, "dummy"), flag=w.NLA_F_NESTED))
    return w.message(RTM_NEWLINK, w.NLM_F_REQUEST | w.NLM_F_ACK | w.NLM_F_CREATE | w.NLM_F_EXCL, seq, body)


def delete_link(index: int, seq: int) -> bytes:
    body = _IFINFO.pack(socket.AF_UNSPEC, 0, index, 0, 0)
    return w.message(RTM_DELLINK, w.NLM_F_REQUEST | w.NLM_F_ACK, seq, body)


def _body(address: str, index: int) -> bytes:
    packed = socket.inet_aton(address)
    # Universe scope, /32, as kube-proxy binds them (netlink.AddrAdd of an IPNet /32).
    head = _IFADDR.pack(socket.AF_INET, 32, 0, 0, index)
    return head + w.attr(IFA_LOCAL, packed) + w.attr(IFA_ADDRESS, packed)


def add(address: str, index: int, seq: int) -> bytes:
    """Adds address/32; one that is there already is no error (NLM_F_REPLACE)."""
    flags = w.NLM_F_REQUEST | w.NLM_F_CREATE | NLM_F_REPLACE
    return w.message(RTM_NEWADDR, flags, seq, _body(address, index))


def delete(address: str, index: int, seq: int) -> bytes:
    return w.message(RTM_DELADDR, w.NLM_F_REQUEST, seq, _body(address, index))


def dump(seq: int) -> bytes:
    body = _IFADDR.pack(socket.AF_INET, 0, 0, 0, 0)
    return w.message(RTM_GETADDR, w.NLM_F_REQUEST | w.NLM_F_DUMP, seq, body)


def parse(payload: memoryview) -> tuple[int, str] | None:
    """(interface index, address) of one RTM_NEWADDR answer; None for other families."""
    family, _plen, _flags, _scope, index = _IFADDR.unpack_from(payload)
    if family != socket.AF_INET:
        return None
    a = w.attr_map(payload, _IFADDR.size)
    raw = a.get(IFA_LOCAL) or a.get(IFA_ADDRESS)
    return (index, socket.inet_ntoa(bytes(raw[:4]))) if raw is not None else None
