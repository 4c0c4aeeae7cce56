"""What the probe makes of the packets it sniffs: answers to it, and everything else."""

from __future__ import annotations

from scapy.layers.inet import ICMP, IP, TCP, UDP

from netplane.trace.probe import classify

ME, SPORT = "10.244.1.2", 41000


def test_a_syn_ack_and_a_reset_from_the_service_are_answers() -> None:
    synack = IP(src="10.96.0.20", dst=ME) / TCP(sport=80, dport=SPORT, flags="SA", seq=77)
    answer = classify(synack, ME, SPORT, "tcp", 80, 0.0)
    assert answer is not None
    assert (answer.kind, answer.src, answer.sport, answer.seq) == ("syn-ack", "10.96.0.20", 80, 77)
    rst = IP(src="10.96.0.20", dst=ME) / TCP(sport=80, dport=SPORT, flags="RA")
    assert classify(rst, ME, SPORT, "tcp", 80, 0.0).kind == "reset"  # type: ignore[union-attr]


def test_an_icmp_port_unreachable_about_the_probe_is_a_rejection() -> None:
    quoted = IP(src=ME, dst="10.96.0.21") / TCP(sport=SPORT, dport=81, flags="S")
    icmp = IP(src="10.244.1.1", dst=ME) / ICMP(type=3, code=3) / bytes(quoted)
    answer = classify(IP(bytes(icmp)), ME, SPORT, "tcp", 81, 0.0)
    assert answer is not None and answer.kind == "icmp-unreachable"
    assert answer.src == "10.244.1.1" and answer.detail == "port-unreachable (for 10.96.0.21)"


def test_a_udp_reply_carries_its_payload() -> None:
    reply = IP(src="10.96.0.10", dst=ME) / UDP(sport=53, dport=SPORT) / b"web-1\n"
    answer = classify(reply, ME, SPORT, "udp", 53, 0.0)
    assert answer is not None and (answer.kind, answer.detail) == ("udp", "web-1")


def test_packets_for_other_ports_or_hosts_are_not_answers() -> None:
    other_port = IP(src="10.96.0.20", dst=ME) / TCP(sport=80, dport=SPORT + 1, flags="SA")
    assert classify(other_port, ME, SPORT, "tcp", 80, 0.0) is None
    outgoing = IP(src=ME, dst="10.96.0.20") / TCP(sport=SPORT, dport=80, flags="S")
    assert classify(outgoing, ME, SPORT, "tcp", 80, 0.0) is None
    quoted = IP(src=ME, dst="10.96.0.21") / UDP(sport=SPORT + 5, dport=53)
    unrelated = IP(bytes(IP(src="10.244.1.1", dst=ME) / ICMP(type=3, code=3) / bytes(quoted)))
    assert classify(unrelated, ME, SPORT, "udp", 53, 0.0) is None
