"""The userspace side: the node's socket table read back, the proxy's ring of picks, and
the listener a packet reaches."""

from __future__ import annotations

import pytest

from netplane.proxy_userspace.picks import PickLog
from netplane.trace.modes import TraceUnavailable, find_listener, tracer_for
from netplane.trace.packet import Packet
from netplane.trace.sockets import bound

# /proc/net/tcp: 10.96.0.20:80 and 0.0.0.0:30080 listen (0A), 127.0.0.1:10249 too, one
# established connection to port 80 (01).
TCP = """  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 1400600A:0050 00000000:0000 0A 00000000:0000 00:00000000 00000000     0        0 1 1
   1: 00000000:7580 00000000:0000 0A 00000000:0000 00:00000000 00000000     0        0 2 1
   2: 0100007F:2809 00000000:0000 0A 00000000:0000 00:00000000 00000000     0        0 3 1
   3: 1400600A:0050 0201F40A:A028 01 00000000:0000 00:00000000 00000000     0        0 4 1
"""


def test_listening_sockets_are_found_by_address_or_wildcard() -> None:
    assert bound(TCP, "10.96.0.20", 80, "0A") == [("10.96.0.20", 80)]
    assert bound(TCP, "10.255.0.12", 30080, "0A") == [("0.0.0.0", 30080)]
    assert bound(TCP, "10.96.0.21", 80, "0A") == []


def test_the_pick_ring_keeps_the_last_picks_and_filters_by_client() -> None:
    log = PickLog(size=3)
    log.record("default/web:http (cluster IP)", "10.244.1.2", 40000, "10.244.2.2:8080")
    log.record("default/web:http (cluster IP)", "10.244.1.2", 40001, None)
    for port in (40002, 40003):
        log.record("default/web:http (cluster IP)", "10.244.1.9", port, "10.244.1.3:8080")
    assert [p["client"] for p in log.view()] == ["10.244.1.2:40001", "10.244.1.9:40002", "10.244.1.9:40003"]
    [mine] = log.view("10.244.1.2:40001")
    assert mine["endpoint"] is None
    assert len(log.view("10.244.1.9")) == 2 and log.view("10.244.1.2:40000") == []


def test_a_packet_reaches_the_listener_of_its_address_or_the_node_port_one() -> None:
    listeners = [{"service": "default/web:http", "kind": "cluster IP", "name": "a", "protocol": "TCP",
                  "address": "10.96.0.20", "port": 80, "endpoints": []},
                 {"service": "default/web:http", "kind": "node port", "name": "b", "protocol": "TCP",
                  "address": "0.0.0.0", "port": 30080, "endpoints": []}]
    assert find_listener(listeners, Packet("tcp", "10.244.1.2", 1, "10.96.0.20", 80))["name"] == "a"  # type: ignore[index]
    assert find_listener(listeners, Packet("tcp", "10.244.1.2", 1, "10.255.0.12", 30080))["name"] == "b"  # type: ignore[index]
    assert find_listener(listeners, Packet("udp", "10.244.1.2", 1, "10.96.0.20", 80)) is None


def test_every_mode_has_a_tracer_and_an_unknown_one_is_refused_before_any_probe() -> None:
    with pytest.raises(TraceUnavailable, match="knows iptables, userspace, ipvs"):
        tracer_for("nftables")
    modes = ("iptables", "userspace", "ipvs")
    assert [tracer_for(m).mode for m in modes] == list(modes)
    assert [tracer_for(m).needs_ipsets for m in modes] == [False, False, True]
