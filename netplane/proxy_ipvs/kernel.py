"""The IPVS mode's hands on the kernel: the IPVS table over generic netlink, the ipsets over
nfnetlink, the VIPs on kube-ipvs0 over rtnetlink, each read back and changed in batches
(many requests per system call). Blocking, and bound to the network namespace of the
thread that first uses it: run it on one worker thread."""

from __future__ import annotations

import errno
import logging
import socket
from collections.abc import Iterable
from pathlib import Path

from netplane.proxy_ipvs import ipset_wire, rtnl_wire
from netplane.proxy_ipvs import ipvs_wire as iw
from netplane.proxy_ipvs import names as n
from netplane.proxy_ipvs.diff import KernelTable, Ops
from netplane.proxy_ipvs.nlsocket import (
    NETLINK_GENERIC,
    NETLINK_NETFILTER,
    NETLINK_ROUTE,
    NetlinkError,
    NetlinkSocket,
)
from netplane.proxy_ipvs.planner import SetEntry
from netplane.proxy_ipvs.procfs import PROC_IP_VS, REAL_LINE, SERVICE_LINE, hex_ip
from netplane.proxy_ipvs.table import RealKey, RealServer, VirtualKey, VirtualServer

log = logging.getLogger(__name__)

_VS_SYSCTLS = ("conntrack", "expire_nodest_conn", "expire_quiescent_template")
_FORWARD_NAMES = {"Masq": 0, "Local": 1, "Tunnel": 2, "Route": 3}
# Deleting what is not there is not a failure: ESRCH/ENOENT (IPVS), EADDRNOTAVAIL
# (addresses), IPSET_ERR_EXIST (ipset members).
_ABSENT = {errno.ESRCH, errno.ENOENT, errno.EADDRNOTAVAIL, ipset_wire.ERR_EXIST}


class KernelError(Exception):
    """The kernel refused part of a sync; the message lists what."""


class IpvsKernel:
    def __init__(self) -> None:
        self._genl: NetlinkSocket | None = None
        self._msgs: iw.IpvsMessages | None = None
        self._nf: NetlinkSocket | None = None
        self._rt: NetlinkSocket | None = None

    def close(self) -> None:
        for sock in (self._genl, self._nf, self._rt):
            if sock is not None:
                sock.close()
        self._genl = self._nf = self._rt = None

    # -- IPVS ------------------------------------------------------------------------------

    @property
    def genl(self) -> NetlinkSocket:
        if self._genl is None:
            sock = NetlinkSocket(NETLINK_GENERIC)
            try:
                self._msgs = iw.IpvsMessages(sock.family_id(iw.GENL_NAME))
            except NetlinkError as exc:
                sock.close()
                raise KernelError("this kernel has no IPVS (the ip_vs module is missing or cannot be "
                                  f"loaded: {exc.strerror}); use --proxy-mode iptables") from exc
            self._genl = sock
        return self._genl

    @property
    def msgs(self) -> iw.IpvsMessages:
        _ = self.genl
        assert self._msgs is not None
        return self._msgs

    def services(self) -> dict[VirtualKey, VirtualServer]:
        sock, seq = self.genl, self.genl.seq()
        found = sock.dump(self.msgs.dump_services(seq), seq, lambda m: iw.parse_service(m.payload))
        return {vs.key: vs for vs in found if vs is not None}

    def service(self, key: VirtualKey) -> VirtualServer | None:
        sock, seq = self.genl, self.genl.seq()
        try:
            answers = sock.request(self.msgs.get_service(key, seq), seq)
        except NetlinkError as exc:
            if exc.errno in _ABSENT:
                return None
            raise
        for answer in answers:
            return iw.parse_service(answer.payload)
        return None

    def reals(self, key: VirtualKey) -> dict[RealKey, RealServer]:
        sock, seq = self.genl, self.genl.seq()
        try:
            found = list(sock.dump(self.msgs.dump_dests(iw.service_key(key), seq), seq,
                                   lambda m: iw.parse_dest(m.payload)))
        except NetlinkError as exc:
            if exc.errno in _ABSENT:
                return {}
            raise
        return {rs.key: rs for rs in found if rs is not None}

    def table(self, keys: Iterable[VirtualKey] | None = None) -> KernelTable:
        """The kernel's virtual servers and their real servers: all of them (keys None),
        or the ones named."""
        if keys is None:
            services = self.services()
            reals = self._proc_reals()
            return {k: (vs, reals.get(k, {})) for k, vs in services.items()}
        out = {}
        for key in keys:
            vs = self.service(key)
            if vs is not None:
                out[key] = (vs, self.reals(key))
        return out

    def _proc_reals(self) -> dict[VirtualKey, dict[RealKey, RealServer]]:
        """Every IPv4 real server from /proc/net/ip_vs: one read instead of a dump per
        virtual server (10k dumps take ~4 s in user-mode Linux, the read ~0.7 s)."""
        out: dict[VirtualKey, dict[RealKey, RealServer]] = {}
        current: dict[RealKey, RealServer] | None = None
        with open(PROC_IP_VS) as f:
            for line in f:
                if line.startswith("  ->"):
                    d = REAL_LINE.match(line)
                    if d is None or current is None:
                        continue
                    rk = RealKey(hex_ip(d[1]), int(d[2], 16))
                    current[rk] = RealServer(rk, int(d[4]), _FORWARD_NAMES.get(d[3], 0), int(d[5]), int(d[6]))
                    continue
                s = SERVICE_LINE.match(line)
                if s is None:
                    current = None  # a header, an IPv6 or a firewall-mark service: not ours
                    continue
                current = out.setdefault(VirtualKey(s[1], hex_ip(s[2]), int(s[3], 16)), {})
        return out

    def apply(self, ops: Ops) -> list[str]:
        """Applies the operations in order (services before their real servers, real
        servers before a deleted service); returns what the kernel refused."""
        sock, m = self.genl, self.msgs
        what: dict[int, str] = {}
        msgs: list[bytes] = []

        def put(make: object, label: str, *args: object) -> None:
            seq = sock.seq()
            what[seq] = label
            msgs.append(make(*args, seq))  # type: ignore[operator]

        for vs in ops.add_services:
            put(m.add_service, f"add virtual server {vs.key}", vs)
        for vs in ops.edit_services:
            put(m.edit_service, f"edit virtual server {vs.key}", vs)
        keys: dict[VirtualKey, bytes] = {}

        def svc(key: VirtualKey) -> bytes:
            found = keys.get(key)
            if found is None:
                found = keys[key] = iw.service_key(key)
            return found

        for vk, rk in ops.add_reals:
            put(m.add_dest, f"add real server {rk} to {vk}", svc(vk), rk, 1)
        for vk, rk, weight in ops.edit_reals:
            put(m.edit_dest, f"set weight {weight} of {rk} in {vk}", svc(vk), rk, weight)
        for vk, rk in ops.delete_reals:
            put(m.delete_dest, f"delete real server {rk} of {vk}", svc(vk), rk)
        for key in ops.delete_services:
            put(m.delete_service, f"delete virtual server {key}", key)
        failures = sock.send_batch(msgs)
        return [f"{what.get(seq, seq)}: {errno.errorcode.get(err, err)}" for seq, err in failures
                if not (err in _ABSENT and what.get(seq, "").startswith("delete"))]

    def set_timeouts(self, tcp: int, tcp_fin: int, udp: int) -> None:
        """ipvsadm --set; zero keeps the kernel's value."""
        sock, seq = self.genl, self.genl.seq()
        failures = sock.send_batch([self.msgs.set_timeouts(tcp, tcp_fin, udp, seq)])
        if failures:
            raise KernelError(f"setting the IPVS timeouts failed: {errno.errorcode.get(failures[0][1])}")

    def flush(self) -> int:
        """Removes every virtual server; returns how many there were."""
        count = len(self.services())
        sock, seq = self.genl, self.genl.seq()
        sock.send_batch([self.msgs.flush(seq)])
        return count

    @staticmethod
    def tune_sysctls() -> None:
        """kube-proxy's IPVS sysctls: connections tracked by conntrack (so iptables can
        masquerade them), a deleted real server's connections end at their next packet,
        and persistence templates of a drained real server expire."""
        for key in _VS_SYSCTLS:
            path = Path("/proc/sys/net/ipv4/vs") / key
            try:
                if path.read_text().strip() != "1":
                    path.write_text("1")
            except OSError as exc:
                log.warning("cannot set net.ipv4.vs.%s=1: %s", key, exc)

    # -- ipsets ----------------------------------------------------------------------------

    @property
    def nf(self) -> NetlinkSocket:
        if self._nf is None:
            self._nf = NetlinkSocket(NETLINK_NETFILTER)
        return self._nf

    def ensure_sets(self) -> None:
        """Creates kube-proxy's ipsets; one that exists with the same type is no error
        (no NLM_F_EXCL), one of another type is."""
        from pyroute2 import IPSet
        from pyroute2.ipset import IPSetError

        with IPSet() as ipset:
            for info in n.IPSETS:
                extra = ({"bitmap_ports_range": (0, 65535)} if info.kind == n.BITMAP_PORT
                         else {"hashsize": 1024, "maxelem": 65536})
                try:
                    ipset.create(info.name, stype=info.kind, exclusive=False, **extra)
                except IPSetError as exc:
                    raise KernelError(f"cannot create ipset {info.name} ({info.kind}): {exc}; a set of that "
                                      "name but another type is in the way (--cleanup removes it)") from exc

    def members(self, set_name: str) -> set[SetEntry]:
        sock, seq = self.nf, self.nf.seq()
        out: set[SetEntry] = set()
        for chunk in sock.dump(ipset_wire.list_members(set_name, seq), seq,
                               lambda m: ipset_wire.parse_members(m.payload)):
            out.update(chunk)
        return out

    def change_members(self, added: Iterable[tuple[str, SetEntry]],
                       removed: Iterable[tuple[str, SetEntry]]) -> list[str]:
        sock = self.nf
        what: dict[int, str] = {}
        msgs = []
        for set_name, entry in added:
            seq = sock.seq()
            what[seq] = f"add {entry} to ipset {set_name}"
            msgs.append(ipset_wire.add(set_name, entry, seq))
        for set_name, entry in removed:
            seq = sock.seq()
            what[seq] = f"delete {entry} from ipset {set_name}"
            msgs.append(ipset_wire.delete(set_name, entry, seq))
        failures = sock.send_batch(msgs)
        return [f"{what.get(seq, seq)}: error {err}" for seq, err in failures
                if not (err in _ABSENT and what.get(seq, "").startswith("delete"))]

    def destroy_sets(self) -> list[str]:
        """Destroys kube-proxy's ipsets (iptables must not reference them any more)."""
        from pyroute2 import IPSet
        from pyroute2.ipset import IPSetError

        gone, busy = [], []
        with IPSet() as ipset:
            for info in n.IPSETS:
                try:
                    ipset.destroy(info.name)
                    gone.append(info.name)
                except IPSetError as exc:
                    if exc.code != errno.ENOENT:
                        busy.append(f"{info.name}: {exc}")
        if busy:
            raise KernelError("cannot destroy ipsets: " + "; ".join(busy))
        return gone

    # -- VIPs on kube-ipvs0 ---------------------------------------------------------------

    @property
    def rt(self) -> NetlinkSocket:
        if self._rt is None:
            self._rt = NetlinkSocket(NETLINK_ROUTE)
        return self._rt

    def ensure_dummy(self) -> int:
        """kube-ipvs0's index, creating the dummy link first if needed (left down: its
        addresses are local all the same, and it answers nothing itself)."""
        index = self.dummy_index()
        if index is not None:
            return index
        seq = self.rt.seq()
        try:
            self.rt.request(rtnl_wire.new_dummy(n.DUMMY_DEVICE, seq), seq)
        except NetlinkError as exc:
            if exc.errno != errno.EEXIST:
                raise KernelError(f"cannot create the dummy interface {n.DUMMY_DEVICE}: {exc.strerror} (the "
                                  "kernel needs the dummy module)") from exc
        index = self.dummy_index()
        if index is None:
            raise KernelError(f"{n.DUMMY_DEVICE} vanished right after it was created")
        return index

    @staticmethod
    def dummy_index() -> int | None:
        try:
            return socket.if_nametoindex(n.DUMMY_DEVICE)  # this thread's namespace
        except OSError:
            return None

    def addresses(self) -> list[tuple[int, str]]:
        """(interface index, address) of every IPv4 address in this namespace."""
        sock, seq = self.rt, self.rt.seq()
        return [a for a in sock.dump(rtnl_wire.dump(seq), seq, lambda m: rtnl_wire.parse(m.payload))
                if a is not None]

    def change_vips(self, index: int, added: Iterable[str], removed: Iterable[str]) -> list[str]:
        sock = self.rt
        what: dict[int, str] = {}
        msgs = []
        for ip in added:
            seq = sock.seq()
            what[seq] = f"bind {ip} to {n.DUMMY_DEVICE}"
            msgs.append(rtnl_wire.add(ip, index, seq))
        for ip in removed:
            seq = sock.seq()
            what[seq] = f"delete {ip} from {n.DUMMY_DEVICE}"
            msgs.append(rtnl_wire.delete(ip, index, seq))
        failures = sock.send_batch(msgs)
        return [f"{what.get(seq, seq)}: {errno.errorcode.get(err, err)}" for seq, err in failures
                if not (err in _ABSENT and what.get(seq, "").startswith("delete"))]

    def delete_dummy(self) -> bool:
        index = self.dummy_index()
        if index is None:
            return False
        seq = self.rt.seq()
        self.rt.request(rtnl_wire.delete_link(index, seq), seq)
        return True


def ipvs_available() -> str | None:
    """None when this namespace's kernel has IPVS (loading the module if needed), else why not."""
    try:
        with NetlinkSocket(NETLINK_GENERIC) as sock:
            sock.family_id(iw.GENL_NAME)
    except NetlinkError as exc:
        return f"the kernel has no IPVS ({exc.strerror}; the ip_vs module is missing or cannot be loaded)"
    except OSError as exc:
        return f"cannot open a generic netlink socket: {exc}"
    return None
