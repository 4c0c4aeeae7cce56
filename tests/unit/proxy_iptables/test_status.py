"""`netplane proxy status` reads the rules back: the iptables-save parser and the summary."""

from __future__ import annotations

from pathlib import Path

from netplane.proxy_iptables.status import format_rows, parse_save, summarize

DATA = Path(__file__).parent / "testdata"

SAVED = (DATA / "status.save").read_text()


def test_the_summary_counts_endpoints_once_and_shows_rejected_services() -> None:
    rows = summarize(parse_save(SAVED))
    assert [(r.service, r.cluster_ip, r.port, r.endpoints, r.packets, r.chain) for r in rows] == [
        ("default/empty:http", "10.96.0.21", "80", 0, 2, "REJECT"),
        ("default/web:http", "10.96.0.20", "80", 2, 7, "KUBE-SVC-AAAA")]
    text = format_rows(rows)
    assert text.splitlines()[0].split() == ["SERVICE", "CLUSTER-IP", "PORT", "ENDPOINTS", "PACKETS", "BYTES",
                                            "CHAIN"]


def test_rules_of_other_owners_are_not_read() -> None:
    assert all(r.chain.startswith("KUBE-") for r in parse_save(SAVED))
