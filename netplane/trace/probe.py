"""The probe: a TCP SYN or a UDP datagram crafted with scapy and sent from inside the pod's
network namespace, from a source port of its own, and every answer it gets.

Runs as its own process (`python -m netplane.trace.probe`, started through nsenter by
prober.py): scapy reads the routes and interfaces of the namespace it starts in, and a
raw socket belongs to the namespace of its creator. It talks JSON lines with its parent:
it prints {"ready": ...} once the sniffer runs, sends on "go", prints {"answers": ...},
and ends the connection on "close" (or EOF, or SIGTERM).

The source port is reserved by a socket bound to it, so nothing else in the pod uses it
meanwhile; for UDP that socket also takes the reply (no ICMP error back to the service).
For TCP the pod's kernel knows nothing of the SYN scapy sent and would answer the SYN-ACK
with a reset; when the connection must complete (userspace mode accepts it before picking
a backend), a rule in the pod's own OUTPUT chain holds back those resets while the probe
runs, and goes in every way out (finally, SIGTERM).
"""

from __future__ import annotations

import argparse
import json
import random
import signal
import socket
import sys
import threading
import time
from dataclasses import asdict, dataclass
from typing import Any

ICMP_UNREACHABLE = {0: "net-unreachable", 1: "host-unreachable", 2: "protocol-unreachable",
                    3: "port-unreachable", 9: "net-prohibited", 10: "host-prohibited",
                    13: "admin-prohibited"}
_RULE_COMMENT = "netplane trace: hold the probe's connection open"


@dataclass(frozen=True)
class Answer:
    kind: str  # "syn-ack", "reset", "fin", "tcp", "udp", "icmp-unreachable", "icmp"
    src: str
    sport: int = 0
    detail: str = ""  # TCP flags, ICMP code name, UDP payload (its start)
    after_ms: float = 0.0
    seq: int = 0  # TCP: the answer's sequence number (what the probe's ACK acknowledges)


def classify(pkt: Any, src: str, sport: int, proto: str, dport: int, sent_at: float) -> Answer | None:
    """What `pkt` (a scapy packet) says about the probe, or None when it is not an answer to
    it (sent_at: when the probe left, to say how long the answer took)."""
    from scapy.layers.inet import ICMP, IP, TCP, UDP, IPerror, TCPerror, UDPerror

    if IP not in pkt or pkt[IP].dst != src:
        return None
    after = max(0.0, (float(pkt.time) - sent_at) * 1000) if sent_at else 0.0
    ip = pkt[IP]
    if proto == "tcp" and TCP in pkt and pkt[TCP].dport == sport:
        flags = str(pkt[TCP].flags)
        kind = ("syn-ack" if "S" in flags and "A" in flags else "reset" if "R" in flags
                else "fin" if "F" in flags else "tcp")
        return Answer(kind, ip.src, int(pkt[TCP].sport), flags, after, int(pkt[TCP].seq))
    if proto == "udp" and UDP in pkt and IPerror not in pkt and pkt[UDP].dport == sport:
        payload = bytes(pkt[UDP].payload)[:120].decode(errors="replace").strip()
        return Answer("udp", ip.src, int(pkt[UDP].sport), payload, after)
    if ICMP in pkt and IPerror in pkt:
        inner = pkt[IPerror]
        inner_l4 = next((pkt[layer] for layer in (TCPerror, UDPerror) if layer in pkt), None)
        if inner_l4 is None or inner_l4.sport != sport or inner_l4.dport != dport:
            return None
        icmp = pkt[ICMP]
        if icmp.type == 3:
            code = ICMP_UNREACHABLE.get(int(icmp.code), f"code {icmp.code}")
            return Answer("icmp-unreachable", ip.src, 0, f"{code} (for {inner.dst})", after)
        return Answer("icmp", ip.src, 0, f"type {icmp.type} code {icmp.code}", after)
    return None


def _emit(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def _source(dst: str, dport: int) -> str:
    """The address the pod's kernel picks to reach `dst` (its routes decide, as they would
    for a real client)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect((dst, dport))
        return str(s.getsockname()[0])


class _ResetHold:
    """A rule in the pod's OUTPUT chain that drops the kernel's resets from the probe's
    port, so scapy can complete the handshake; removed on close."""

    def __init__(self, sport: int) -> None:
        from netplane.kernel.iptables import Iptables, detect_variant

        self.ipt = Iptables(detect_variant())
        self.spec = ["OUTPUT", "-p", "tcp", "--sport", str(sport), "--tcp-flags", "RST", "RST",
                     "-m", "comment", "--comment", _RULE_COMMENT, "-j", "DROP"]
        self.installed = False

    def install(self) -> None:
        done = self.ipt.run_blocking("-I", *self.spec)
        if done.returncode != 0:
            raise RuntimeError(f"cannot hold the pod's resets back: {done.stderr.strip()}")
        self.installed = True

    def remove(self) -> None:
        if self.installed:
            self.ipt.run_blocking("-D", *self.spec)
            self.installed = False


def run(proto: str, dst: str, dport: int, timeout: float, handshake: bool, payload: bytes,
        linger: float) -> int:
    from scapy.config import conf
    from scapy.layers.inet import IP, TCP, UDP
    from scapy.sendrecv import AsyncSniffer, send
    from scapy.supersocket import L3RawSocket

    conf.verb = 0
    # A raw IP socket: the pod's kernel routes the probe (and resolves the gateway) exactly
    # as it routes the pod's own traffic.
    conf.L3socket = L3RawSocket
    src = _source(dst, dport)
    reserve = socket.socket(socket.AF_INET, socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM)
    reserve.bind((src, 0))
    sport = int(reserve.getsockname()[1])
    answers: list[Answer] = []
    first = threading.Event()
    sent_at = 0.0

    def on_packet(pkt: Any) -> None:
        answer = classify(pkt, src, sport, proto, dport, sent_at)
        if answer is not None:
            answers.append(answer)
            first.set()

    hold = _ResetHold(sport) if proto == "tcp" and handshake else None
    started = threading.Event()
    sniffer = AsyncSniffer(store=False, prn=on_packet, started_callback=started.set)
    isn = random.randrange(1 << 31)
    opened = False
    try:
        if hold is not None:
            hold.install()
        sniffer.start()
        started.wait(5)
        _emit({"ready": True, "src": src, "sport": sport})
        if sys.stdin.readline().strip() != "go":
            return 0
        sent = ["SYN"] if proto == "tcp" else ["datagram"]
        sent_at = time.time()
        if proto == "tcp":
            send(IP(src=src, dst=dst) / TCP(sport=sport, dport=dport, flags="S", seq=isn))
        else:
            send(IP(src=src, dst=dst) / UDP(sport=sport, dport=dport) / payload)
        first.wait(timeout)
        synack = next((a for a in answers if a.kind == "syn-ack"), None)
        if synack is not None:
            opened = True
            if hold is not None:
                send(IP(src=src, dst=dst) / TCP(sport=sport, dport=dport, flags="A", seq=isn + 1,
                                                ack=synack.seq + 1))
                sent.append("ACK")
        # A little longer for what follows the first answer (a proxy's reset of a connection
        # it accepted but cannot serve, a second reply).
        time.sleep(linger)
        _emit({"sent": sent, "answers": [asdict(a) for a in answers]})
        sys.stdin.readline()  # "close", or EOF when the parent is gone
    finally:
        if hold is not None:
            hold.remove()
        if opened and proto == "tcp":
            # The resets flow again: end the connection on both sides' conntrack and the peer.
            send(IP(src=src, dst=dst) / TCP(sport=sport, dport=dport, flags="R", seq=isn + 1))
        if sniffer.running:
            sniffer.stop(join=False)
        reserve.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m netplane.trace.probe", description=__doc__.splitlines()[0])
    p.add_argument("--proto", choices=("tcp", "udp"), required=True)
    p.add_argument("--dst", required=True)
    p.add_argument("--dport", type=int, required=True)
    p.add_argument("--timeout", type=float, default=2.0)
    p.add_argument("--linger", type=float, default=0.3)
    p.add_argument("--handshake", action="store_true")
    p.add_argument("--payload", default="hostname")
    args = p.parse_args(argv)

    def stop(_signum: int, _frame: object) -> None:
        raise SystemExit(143)

    signal.signal(signal.SIGTERM, stop)
    try:
        return run(args.proto, args.dst, args.dport, args.timeout, args.handshake, args.payload.encode(),
                   args.linger)
    except (OSError, RuntimeError) as exc:
        _emit({"error": str(exc)})
        return 1


if __name__ == "__main__":
    sys.exit(main())
