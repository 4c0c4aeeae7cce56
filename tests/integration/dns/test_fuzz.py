"""Random, truncated and hostile packets against the real server over loopback (UDP and
TCP): it never crashes, never answers with anything but a well-formed reply to the same ID,
and keeps answering real queries after each one."""

from __future__ import annotations

import socket
import struct

from dnslib import EDNS0, QTYPE, DNSHeader, DNSQuestion, DNSRecord
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.integration.dns.conftest import DnsProcess, addresses, query

ZONE = "cluster.local"
FUZZ = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
NAMES = [f"kubernetes.default.svc.{ZONE}", f"dns-version.{ZONE}", "www.example.test", f"x.y.svc.{ZONE}",
         "1.0.96.10.in-addr.arpa", f"_https._tcp.kubernetes.default.svc.{ZONE}"]
QTYPES = ["A", "AAAA", "SRV", "PTR", "TXT", "CNAME", "ANY", "SOA", "NS", "MX"]


@st.composite
def valid_queries(draw: st.DrawFn) -> bytes:
    header = DNSHeader(id=draw(st.integers(0, 0xFFFF)), rd=draw(st.integers(0, 1)))
    qtype = getattr(QTYPE, draw(st.sampled_from(QTYPES)))
    q = DNSRecord(header, q=DNSQuestion(draw(st.sampled_from(NAMES)), qtype))
    if draw(st.booleans()):
        q.add_ar(EDNS0(udp_len=draw(st.integers(0, 0xFFFF)), version=draw(st.integers(0, 2)),
                       flags=draw(st.sampled_from(["", "do"]))))
    return bytes(q.pack())


@st.composite
def mangled(draw: st.DrawFn) -> bytes:
    """A valid query cut short, with bytes flipped, or with a header claiming other counts."""
    wire = bytearray(draw(valid_queries()))
    how = draw(st.sampled_from(["cut", "flip", "counts", "pointer"]))
    if how == "cut":
        return bytes(wire[:draw(st.integers(0, len(wire) - 1))])
    if how == "flip":
        for _ in range(draw(st.integers(1, 6))):
            wire[draw(st.integers(0, len(wire) - 1))] = draw(st.integers(0, 255))
        return bytes(wire)
    if how == "counts":
        wire[4:12] = struct.pack("!HHHH", *(draw(st.integers(0, 0xFFFF)) for _ in range(4)))
        return bytes(wire)
    # A name that is a compression pointer to itself or forward: a loop for a naive parser.
    target = draw(st.integers(0, len(wire) + 4))
    return bytes(wire[:12]) + struct.pack("!H", 0xC000 | target) + b"\x00\x01\x00\x01"


def _probe(ident: int) -> bytes:
    return bytes(DNSRecord(DNSHeader(id=ident, rd=1), q=DNSQuestion(f"dns-version.{ZONE}", QTYPE.TXT)).pack())


def _udp(dns: DnsProcess, wire: bytes) -> list[bytes]:
    """Sends `wire`, then a real query from the same socket, and returns the replies that
    came before the real query's answer (which proves the server still answers). Replies to
    forwarded names may come later; they are not waited for."""
    probe_id = (int.from_bytes(wire[:2].ljust(2, b"\0"), "big") + 1) & 0xFFFF
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(3)
        s.sendto(wire, ("127.0.0.1", dns.port))
        s.sendto(_probe(probe_id), ("127.0.0.1", dns.port))
        replies = []
        while True:
            reply = s.recv(65535)
            parsed = DNSRecord.parse(reply)
            if parsed.header.id == probe_id and parsed.rr and str(parsed.q.qname) == f"dns-version.{ZONE}.":
                break
            replies.append(reply)
    assert dns.alive(), dns.log_tail()
    return replies


def _check(sent: bytes, replies: list[bytes]) -> None:
    for reply in replies:
        parsed = DNSRecord.parse(reply)
        assert parsed.header.qr == 1
        assert reply[:2] == sent[:2], "a reply carries the query's ID"


@FUZZ
@given(st.binary(min_size=0, max_size=600))
def test_random_datagrams(dns: DnsProcess, wire: bytes) -> None:
    _check(wire, _udp(dns, wire))


@FUZZ
@given(mangled())
def test_truncated_and_mangled_queries(dns: DnsProcess, wire: bytes) -> None:
    _check(wire, _udp(dns, wire))


@FUZZ
@given(valid_queries())
def test_every_valid_query_of_the_zone_gets_a_reply_with_its_id(dns: DnsProcess, wire: bytes) -> None:
    replies = _udp(dns, wire)
    _check(wire, replies)
    if DNSRecord.parse(wire).q.qname.matchSuffix(ZONE):
        assert len(replies) == 1, "the zone answers at once (forwarded names may come later)"


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.one_of(st.binary(max_size=300), mangled(), valid_queries()), min_size=1, max_size=4),
       st.booleans())
def test_tcp_streams_of_garbage_and_half_messages(dns: DnsProcess, messages: list[bytes], cut: bool) -> None:
    stream = b"".join(struct.pack("!H", len(m)) + m for m in messages)
    if cut:
        stream = stream[:-1]  # the last message never completes
    with socket.create_connection(("127.0.0.1", dns.port), timeout=2) as s:
        s.sendall(stream)
        s.shutdown(socket.SHUT_WR)
        s.settimeout(2)
        try:
            while s.recv(65535):
                pass
        except (TimeoutError, ConnectionResetError):
            pass
    assert dns.alive(), dns.log_tail()
    assert addresses(query(dns.port, f"dns-version.{ZONE}", "TXT", tcp=True)) == []
    assert query(dns.port, f"dns-version.{ZONE}", "TXT", tcp=True).rr
