"""The hand-packed netlink messages say what pyroute2's own message classes say (pyroute2
is the reference; it is only too slow for 100k messages per sync), and what the kernel
answers parses back."""

from __future__ import annotations

import socket

from hypothesis import given
from hypothesis import strategies as st
from pyroute2.netlink import NLM_F_REQUEST
from pyroute2.netlink.generic.ipvs import ipvsmsg
from pyroute2.netlink.nfnetlink.ipset import ipset_msg
from pyroute2.netlink.rtnl.ifaddrmsg import ifaddrmsg

from netplane.proxy_ipvs import ipset_wire, rtnl_wire
from netplane.proxy_ipvs import ipvs_wire as iw
from netplane.proxy_ipvs import wire as w
from netplane.proxy_ipvs.planner import SetEntry
from netplane.proxy_ipvs.table import FLAG_PERSISTENT, RealKey, VirtualKey, VirtualServer

FAMILY = 30
KEY = VirtualKey("TCP", "10.96.0.1", 80)
SVC = [("IPVS_SVC_ATTR_AF", 2), ("IPVS_SVC_ATTR_PROTOCOL", 6), ("IPVS_SVC_ATTR_ADDR", "10.96.0.1"),
       ("IPVS_SVC_ATTR_PORT", 80)]


def _pyroute2(cmd: int, attrs: list, seq: int = 7) -> bytes:
    m = ipvsmsg()
    m["cmd"], m["version"] = cmd, 1
    m["attrs"] = attrs
    m["header"]["type"], m["header"]["flags"], m["header"]["sequence_number"] = FAMILY, NLM_F_REQUEST, seq
    m.encode()
    return bytes(m.data)


def test_adding_a_real_server_encodes_as_pyroute2_does() -> None:
    dest = [("IPVS_DEST_ATTR_ADDR", "10.244.1.5"), ("IPVS_DEST_ATTR_PORT", 8080),
            ("IPVS_DEST_ATTR_FWD_METHOD", 0), ("IPVS_DEST_ATTR_WEIGHT", 1), ("IPVS_DEST_ATTR_U_THRESH", 0),
            ("IPVS_DEST_ATTR_L_THRESH", 0), ("IPVS_DEST_ATTR_ADDR_FAMILY", 2)]
    expected = _pyroute2(iw.CMD_NEW_DEST, [("IPVS_CMD_ATTR_SERVICE", {"attrs": SVC}),
                                           ("IPVS_CMD_ATTR_DEST", {"attrs": dest})])
    mine = iw.IpvsMessages(FAMILY).add_dest(iw.service_key(KEY), RealKey("10.244.1.5", 8080), 1, 7)
    assert mine == expected


def test_adding_a_persistent_virtual_server_encodes_as_pyroute2_does() -> None:
    full = [*SVC, ("IPVS_SVC_ATTR_SCHED_NAME", "sh"),
            ("IPVS_SVC_ATTR_FLAGS", {"flags": FLAG_PERSISTENT | 0x10, "mask": 0xFFFFFFFF}),
            ("IPVS_SVC_ATTR_TIMEOUT", 10800), ("IPVS_SVC_ATTR_NETMASK", "255.255.255.255")]
    expected = _pyroute2(iw.CMD_NEW_SERVICE, [("IPVS_CMD_ATTR_SERVICE", {"attrs": full})])
    vs = VirtualServer(KEY, "sh", FLAG_PERSISTENT | 0x10, 10800)
    assert iw.IpvsMessages(FAMILY).add_service(vs, 7) == expected


def _answer(cmd: int, attrs: list) -> memoryview:
    """A kernel answer as pyroute2 would build it; the payload after the netlink header."""
    return memoryview(_pyroute2(cmd, attrs))[w.HEADER_LEN:]


def test_a_dumped_virtual_server_parses_without_the_kernels_hashed_flag() -> None:
    attrs = [*SVC, ("IPVS_SVC_ATTR_SCHED_NAME", "wrr"),
             ("IPVS_SVC_ATTR_FLAGS", {"flags": 0x3, "mask": 0xFFFFFFFF}),
             ("IPVS_SVC_ATTR_TIMEOUT", 60), ("IPVS_SVC_ATTR_NETMASK", "255.255.255.255")]
    vs = iw.parse_service(_answer(iw.CMD_NEW_SERVICE, [("IPVS_CMD_ATTR_SERVICE", {"attrs": attrs})]))
    assert vs == VirtualServer(KEY, "wrr", FLAG_PERSISTENT, 60)


def test_a_dumped_real_server_parses_with_its_counters() -> None:
    dest = [("IPVS_DEST_ATTR_ADDR_FAMILY", 2), ("IPVS_DEST_ATTR_ADDR", "10.244.1.5"),
            ("IPVS_DEST_ATTR_PORT", 8080), ("IPVS_DEST_ATTR_FWD_METHOD", 0), ("IPVS_DEST_ATTR_WEIGHT", 0),
            ("IPVS_DEST_ATTR_ACTIVE_CONNS", 3), ("IPVS_DEST_ATTR_INACT_CONNS", 2)]
    rs = iw.parse_dest(_answer(iw.CMD_NEW_DEST, [("IPVS_CMD_ATTR_DEST", {"attrs": dest})]))
    assert rs is not None
    assert (rs.key, rs.weight, rs.active, rs.inactive) == (RealKey("10.244.1.5", 8080), 0, 3, 2)


ENTRIES = st.one_of(
    st.builds(lambda p: SetEntry(port=p), st.integers(0, 65535)),
    st.builds(lambda a, proto, p: SetEntry(a, proto, p), st.ip_addresses(v=4).map(str),
              st.sampled_from(["tcp", "udp", "sctp"]), st.integers(1, 65535)),
    st.builds(lambda a, p, b: SetEntry(a, "tcp", p, b), st.ip_addresses(v=4).map(str), st.integers(1, 65535),
              st.ip_addresses(v=4).map(str)),
    st.builds(lambda a, p, b, c: SetEntry(a, "udp", p, b, c), st.ip_addresses(v=4).map(str),
              st.integers(1, 65535), st.ip_addresses(v=4).map(str), st.integers(1, 32)),
)


@given(ENTRIES)
def test_an_ipset_member_reads_back_as_written(entry: SetEntry) -> None:
    data = ipset_wire.entry_data(entry)
    (kind, value), = w.attrs(data)
    assert kind == ipset_wire.ATTR_DATA
    assert ipset_wire.parse_entry(value) == entry


def test_adding_an_ipset_member_means_to_pyroute2_what_it_means_to_us() -> None:
    mine = ipset_msg(ipset_wire.add("KUBE-CLUSTER-IP", SetEntry("10.96.0.1", "tcp", 80), 5))
    mine.decode()
    assert mine["header"]["type"] == (6 << 8) | 9
    assert mine.get_attr("IPSET_ATTR_SETNAME") == "KUBE-CLUSTER-IP"
    data = mine.get_attr("IPSET_ATTR_DATA")
    assert data.get_attr("IPSET_ATTR_IP_FROM").get_attr("IPSET_ATTR_IPADDR_IPV4") == "10.96.0.1"
    assert (data.get_attr("IPSET_ATTR_PORT_FROM"), data.get_attr("IPSET_ATTR_PROTO")) == (80, 6)


def test_a_vip_address_means_to_pyroute2_what_it_means_to_us() -> None:
    msg = ifaddrmsg(rtnl_wire.add("10.96.0.1", 4, 9))
    msg.decode()
    assert (msg["family"], msg["prefixlen"], msg["index"]) == (socket.AF_INET, 32, 4)
    assert msg.get_attr("IFA_LOCAL") == msg.get_attr("IFA_ADDRESS") == "10.96.0.1"
    assert rtnl_wire.parse(memoryview(rtnl_wire.add("10.96.0.1", 4, 9))[w.HEADER_LEN:]) == (4, "10.96.0.1")


def test_an_error_answer_names_the_request_it_refuses() -> None:
    request = w.message(FAMILY, w.NLM_F_REQUEST, 42, b"\0" * 4)
    error = w.message(w.NLMSG_ERROR, 0, 42, (-17).to_bytes(4, "little", signed=True) + request[:16])
    (msg,) = w.messages(error)
    assert (msg.kind, msg.error, msg.failed_seq) == (w.NLMSG_ERROR, 17, 42)
