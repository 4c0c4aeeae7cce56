"""IPVS's generic-netlink messages (include/uapi/linux/ip_vs.h): virtual and real servers
added, edited, deleted and dumped. Pure: the family id comes from the caller."""

from __future__ import annotations

import ipaddress
import socket
import struct

from netplane.proxy_ipvs import wire as w
from netplane.proxy_ipvs.table import (
    FLAG_HASHED,
    FWD_MASQ,
    PROTOCOL_NAMES,
    PROTOCOLS,
    RealKey,
    RealServer,
    VirtualKey,
    VirtualServer,
)

GENL_NAME = "IPVS"
GENL_VERSION = 1

CMD_NEW_SERVICE, CMD_SET_SERVICE, CMD_DEL_SERVICE, CMD_GET_SERVICE = 1, 2, 3, 4
CMD_NEW_DEST, CMD_SET_DEST, CMD_DEL_DEST, CMD_GET_DEST = 5, 6, 7, 8
CMD_SET_CONFIG, CMD_GET_CONFIG, CMD_FLUSH = 12, 13, 17

ATTR_SERVICE, ATTR_DEST = 1, 2
ATTR_TIMEOUT_TCP, ATTR_TIMEOUT_TCP_FIN, ATTR_TIMEOUT_UDP = 4, 5, 6

SVC_AF, SVC_PROTOCOL, SVC_ADDR, SVC_PORT, SVC_FWMARK = 1, 2, 3, 4, 5
SVC_SCHED_NAME, SVC_FLAGS, SVC_TIMEOUT, SVC_NETMASK = 6, 7, 8, 9

DEST_ADDR, DEST_PORT, DEST_FWD_METHOD, DEST_WEIGHT = 1, 2, 3, 4
DEST_U_THRESH, DEST_L_THRESH, DEST_ACTIVE_CONNS, DEST_INACT_CONNS = 5, 6, 7, 8
DEST_PERSIST_CONNS, DEST_ADDR_FAMILY = 9, 11

_FLAGS = struct.Struct("=II")
_GENL = {cmd: struct.pack("=BBH", cmd, GENL_VERSION, 0) for cmd in range(1, 18)}
_REQUEST = w.NLM_F_REQUEST


def _family(address: str) -> int:
    return socket.AF_INET6 if ":" in address else socket.AF_INET


def _packed(address: str) -> bytes:
    return ipaddress.ip_address(address).packed


def service_key(key: VirtualKey) -> bytes:
    """The nested attribute that names a virtual server (what every dest message carries)."""
    return w.nested(ATTR_SERVICE, w.u16(SVC_AF, _family(key.address)),
                    w.u16(SVC_PROTOCOL, PROTOCOLS[key.protocol]),
                    w.attr(SVC_ADDR, _packed(key.address)), w.be16(SVC_PORT, key.port))


def _service_full(vs: VirtualServer) -> bytes:
    k = vs.key
    v6 = ":" in k.address
    # IPv4 carries a netmask, IPv6 a prefix length (ip_vs_genl_parse_service).
    netmask = w.u32(SVC_NETMASK, 128) if v6 else w.be32(SVC_NETMASK, 0xFFFFFFFF)
    return w.nested(ATTR_SERVICE, w.u16(SVC_AF, _family(k.address)),
                    w.u16(SVC_PROTOCOL, PROTOCOLS[k.protocol]), w.attr(SVC_ADDR, _packed(k.address)),
                    w.be16(SVC_PORT, k.port), w.asciiz(SVC_SCHED_NAME, vs.scheduler),
                    w.attr(SVC_FLAGS, _FLAGS.pack(vs.flags, 0xFFFFFFFF)),
                    w.u32(SVC_TIMEOUT, vs.timeout), netmask)


def _dest(real: RealKey, weight: int | None) -> bytes:
    parts = [w.attr(DEST_ADDR, _packed(real.address)), w.be16(DEST_PORT, real.port)]
    if weight is not None:  # a full entry: what adding or editing needs
        parts += [w.u32(DEST_FWD_METHOD, FWD_MASQ), w.u32(DEST_WEIGHT, weight),
                  w.u32(DEST_U_THRESH, 0), w.u32(DEST_L_THRESH, 0)]
    parts.append(w.u16(DEST_ADDR_FAMILY, _family(real.address)))
    return w.nested(ATTR_DEST, *parts)


class IpvsMessages:
    """Builds the requests for one IPVS family id; `seq` is the caller's to choose."""

    def __init__(self, family_id: int) -> None:
        self.family_id = family_id

    def _msg(self, cmd: int, seq: int, body: bytes, flags: int = _REQUEST) -> bytes:
        return w.message(self.family_id, flags, seq, _GENL[cmd] + body)

    def add_service(self, vs: VirtualServer, seq: int) -> bytes:
        return self._msg(CMD_NEW_SERVICE, seq, _service_full(vs))

    def edit_service(self, vs: VirtualServer, seq: int) -> bytes:
        return self._msg(CMD_SET_SERVICE, seq, _service_full(vs))

    def delete_service(self, key: VirtualKey, seq: int) -> bytes:
        return self._msg(CMD_DEL_SERVICE, seq, service_key(key))

    def add_dest(self, svc_key: bytes, real: RealKey, weight: int, seq: int) -> bytes:
        """`svc_key`: `service_key(...)`, computed once per virtual server."""
        return self._msg(CMD_NEW_DEST, seq, svc_key + _dest(real, weight))

    def edit_dest(self, svc_key: bytes, real: RealKey, weight: int, seq: int) -> bytes:
        return self._msg(CMD_SET_DEST, seq, svc_key + _dest(real, weight))

    def delete_dest(self, svc_key: bytes, real: RealKey, seq: int) -> bytes:
        return self._msg(CMD_DEL_DEST, seq, svc_key + _dest(real, None))

    def get_service(self, key: VirtualKey, seq: int) -> bytes:
        return self._msg(CMD_GET_SERVICE, seq, service_key(key))

    def dump_services(self, seq: int) -> bytes:
        return self._msg(CMD_GET_SERVICE, seq, b"", _REQUEST | w.NLM_F_DUMP)

    def dump_dests(self, svc_key: bytes, seq: int) -> bytes:
        return self._msg(CMD_GET_DEST, seq, svc_key, _REQUEST | w.NLM_F_DUMP)

    def flush(self, seq: int) -> bytes:
        return self._msg(CMD_FLUSH, seq, b"")

    def set_timeouts(self, tcp: int, tcp_fin: int, udp: int, seq: int) -> bytes:
        """ipvsadm --set: 0 keeps the kernel's current value."""
        body = (w.u32(ATTR_TIMEOUT_TCP, tcp) + w.u32(ATTR_TIMEOUT_TCP_FIN, tcp_fin)
                + w.u32(ATTR_TIMEOUT_UDP, udp))
        return self._msg(CMD_SET_CONFIG, seq, body)


def _address(value: memoryview, family: int) -> str:
    raw = bytes(value[:16 if family == socket.AF_INET6 else 4])
    return socket.inet_ntop(family, raw)


def parse_service(payload: memoryview) -> VirtualServer | None:
    """A GET_SERVICE answer's virtual server; None for a firewall-mark service (no
    address: never one of ours)."""
    outer = w.attr_map(payload, 4)
    nested = outer.get(ATTR_SERVICE)
    if nested is None:
        return None
    a = w.attr_map(nested)
    if SVC_ADDR not in a or (SVC_FWMARK in a and w.get_u32(a[SVC_FWMARK])):
        return None
    family = w.get_u16(a[SVC_AF])
    protocol = PROTOCOL_NAMES.get(w.get_u16(a[SVC_PROTOCOL]), str(w.get_u16(a[SVC_PROTOCOL])))
    key = VirtualKey(protocol, _address(a[SVC_ADDR], family), w.get_be16(a[SVC_PORT]))
    flags = _FLAGS.unpack_from(a[SVC_FLAGS])[0] & ~FLAG_HASHED if SVC_FLAGS in a else 0
    return VirtualServer(key, w.get_str(a[SVC_SCHED_NAME]) if SVC_SCHED_NAME in a else "",
                         flags, w.get_u32(a[SVC_TIMEOUT]) if SVC_TIMEOUT in a else 0)


def parse_dest(payload: memoryview, service_family: int = socket.AF_INET) -> RealServer | None:
    outer = w.attr_map(payload, 4)
    nested = outer.get(ATTR_DEST)
    if nested is None:
        return None
    a = w.attr_map(nested)
    family = w.get_u16(a[DEST_ADDR_FAMILY]) if DEST_ADDR_FAMILY in a else service_family

    def num(kind: int) -> int:
        return w.get_u32(a[kind]) if kind in a else 0

    return RealServer(RealKey(_address(a[DEST_ADDR], family), w.get_be16(a[DEST_PORT])),
                      weight=num(DEST_WEIGHT), forward=num(DEST_FWD_METHOD) & 0x7,
                      active=num(DEST_ACTIVE_CONNS), inactive=num(DEST_INACT_CONNS),
                      persistent=num(DEST_PERSIST_CONNS))
