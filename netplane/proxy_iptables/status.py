"""What iptables mode programmed, read back with packet counters, for `netplane proxy status`.

Two readers give the same rows: python-iptables (libiptc) for legacy tables, which it
reads in-process without a subprocess; `iptables-save -c` for nf_tables, which libiptc
cannot see. `summarize` turns the rules into one row per service port.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable
from dataclasses import dataclass

from netplane.kernel.iptables import Iptables
from netplane.proxy_iptables import chains as c


@dataclass(frozen=True)
class Rule:
    table: str
    chain: str
    comment: str
    target: str
    destination: str
    dport: str
    packets: int
    bytes: int


@dataclass(frozen=True)
class ServiceRow:
    service: str
    cluster_ip: str
    port: str
    endpoints: int
    packets: int
    bytes: int
    chain: str


_COUNTERS = re.compile(r"^\[(\d+):(\d+)\]\s+(.*)$")


def parse_save(text: str) -> list[Rule]:
    """The KUBE-* rules of `iptables-save -c` output."""
    out: list[Rule] = []
    table = ""
    for line in text.splitlines():
        if line.startswith("*"):
            table = line[1:].strip()
            continue
        m = _COUNTERS.match(line)
        packets = bytes_ = 0
        if m:
            packets, bytes_, line = int(m.group(1)), int(m.group(2)), m.group(3)
        if not line.startswith("-A KUBE-"):
            continue
        words = shlex.split(line)
        out.append(Rule(table, words[1], _after(words, "--comment"), _after(words, "-j"),
                        _after(words, "-d"), _after(words, "--dport"), packets, bytes_))
    return out


def _after(words: list[str], flag: str) -> str:
    try:
        return words[words.index(flag) + 1]
    except (ValueError, IndexError):
        return ""


def read_libiptc(tables: Iterable[str] = ("nat", "filter")) -> list[Rule]:
    """The KUBE-* rules of the legacy tables, through python-iptables."""
    import iptc  # python-iptables; libiptc speaks only to legacy tables

    out: list[Rule] = []
    for name in tables:
        table = iptc.Table(name)
        table.refresh()
        for chain in table.chains:
            if not chain.name.startswith("KUBE-"):
                continue
            for rule in chain.rules:
                comment = next((m.comment for m in rule.matches if m.name == "comment"), "") or ""
                dport = next((m.dport for m in rule.matches if m.name in ("tcp", "udp", "sctp") and m.dport),
                             "") or ""
                packets, bytes_ = rule.get_counters()
                out.append(Rule(name, chain.name, comment, rule.target.name if rule.target else "",
                                (rule.dst or "").split("/")[0], str(dport), packets, bytes_))
    return out


def read(ipt: Iptables) -> list[Rule]:
    if ipt.variant == "legacy":
        return read_libiptc()
    return parse_save(ipt.save_blocking(counters=True))


def summarize(rules: list[Rule]) -> list[ServiceRow]:
    """One row per service port with a cluster IP rule: its packets, and how many
    endpoint rules its service chain has."""
    # Affinity rules jump to endpoint chains too: count each endpoint chain once.
    per_chain: dict[str, set[str]] = {}
    for r in rules:
        if r.chain.startswith((c.SVC, c.SVL)) and r.target.startswith(c.SEP):
            per_chain.setdefault(r.chain, set()).add(r.target)
    rows = []
    for r in rules:
        ip = r.destination.split("/")[0]
        if r.chain == c.SERVICES and r.comment.endswith(" cluster IP"):
            rows.append(ServiceRow(r.comment.removesuffix(" cluster IP"), ip, r.dport,
                                   len(per_chain.get(r.target, ())), r.packets, r.bytes, r.target))
        elif r.chain == c.SERVICES and r.target in ("REJECT", "DROP") and r.comment.endswith("endpoints"):
            name = r.comment.rsplit(" has no", 1)[0]
            rows.append(ServiceRow(name, ip, r.dport, 0, r.packets, r.bytes, r.target))
    return sorted(rows, key=lambda row: row.service)


def format_rows(rows: list[ServiceRow]) -> str:
    header = ("SERVICE", "CLUSTER-IP", "PORT", "ENDPOINTS", "PACKETS", "BYTES", "CHAIN")
    table = [header, *((r.service, r.cluster_ip, r.port, str(r.endpoints), str(r.packets), str(r.bytes),
                        r.chain) for r in rows)]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    return "\n".join("   ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
                     for row in table) + "\n"
