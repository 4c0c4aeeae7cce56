"""Rule sets read as iptables-save -c prints them and as the renderer writes restore input."""

from __future__ import annotations

from pathlib import Path

import pytest

from netplane.trace.ruleset import RulesetError, parse
from tests.unit.trace.fixtures import GOLDEN, representative

# What `iptables-save -c` printed on node-1 of a 2-node `netplane up` cluster in iptables
# mode (nf_tables), after a few traces.
SAVED = (Path(__file__).parent / "testdata" / "node-1.nft.save").read_text()


def test_counters_policies_and_options_are_read_from_iptables_save() -> None:
    rs = parse(SAVED)
    pre = rs.chain("nat", "PREROUTING")
    assert pre is not None and pre.policy == "ACCEPT"
    assert rs.chain("nat", "KUBE-SERVICES").policy is None  # type: ignore[union-attr]
    [rule] = pre.rules
    assert (rule.index, rule.packets, rule.bytes, rule.comment, rule.target.name) == (
        1, 10, 6253, "kubernetes service portals", "KUBE-SERVICES")
    assert str(rule) == '-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES'
    assert [t for t in rs.tables] == ["mangle", "filter", "nat"]


def test_negations_belong_to_the_option_they_precede() -> None:
    rs = parse(SAVED)
    ret = rs.chain("nat", "KUBE-POSTROUTING").rules[0]  # type: ignore[union-attr]
    mark = next(m for m in ret.matches if m.module == "mark")
    assert mark.options[0].name == "--mark" and mark.options[0].negated
    masq = rs.chain("nat", "KUBE-SVC-CDGGSHYLG3RE2FKL").rules[0]  # type: ignore[union-attr]
    builtin = {o.name: o for o in masq.matches[0].options}
    assert builtin["-s"].negated and not builtin["-d"].negated
    tcp = next(m for m in masq.matches if m.module == "tcp")
    assert tcp.get("--dport").values == ("80",)  # type: ignore[union-attr]
    statistic = rs.chain("nat", "KUBE-SVC-CDGGSHYLG3RE2FKL").rules[1]  # type: ignore[union-attr]
    assert next(m for m in statistic.matches if m.module == "statistic").get("--probability").values == (  # type: ignore[union-attr]
        "0.50000000000",)


def test_target_options_are_kept_with_the_target() -> None:
    reject = parse(SAVED).chain("filter", "KUBE-SERVICES").rules[2]  # type: ignore[union-attr]
    assert reject.target.name == "REJECT"
    assert reject.target.get("--reject-with") == "icmp-port-unreachable"
    assert reject.comment == "default/empty:http has no endpoints"
    assert (reject.packets, reject.bytes) == (1, 40)


def test_the_renderers_restore_input_parses_with_builtin_chains_made_on_demand() -> None:
    rs = representative()
    forward = rs.chain("filter", "FORWARD")
    assert forward is not None and forward.policy == "ACCEPT"
    # Each jump is inserted first (-I FORWARD 1), so the last inserted comes first.
    assert [r.target.name for r in forward.rules] == ["KUBE-PROXY-FIREWALL", "KUBE-FORWARD", "KUBE-SERVICES",
                                                      "KUBE-EXTERNAL-SERVICES"]
    assert [r.index for r in forward.rules] == [1, 2, 3, 4]
    rendered = sum(1 for line in (GOLDEN / "representative.rules").read_text().splitlines()
                   if line.startswith("-A "))
    assert sum(1 for _ in rs.rules()) == rendered + 12  # kube-proxy's 12 jumps


def test_the_status_golden_file_reads_with_its_counters() -> None:
    rs = parse((GOLDEN / "status.save").read_text())
    svc = rs.chain("nat", "KUBE-SVC-AAAA")
    assert svc is not None and [r.packets for r in svc.rules] == [0, 0, 5]


def test_counters_are_keyed_by_rule_text_so_an_inserted_rule_does_not_shift_them() -> None:
    before = parse("*nat\n[4:0] -A KUBE-SERVICES -d 10.0.0.1/32 -j KUBE-SVC-A\n[1:0] -A KUBE-SERVICES -j X\n"
                   "[2:0] -A KUBE-SERVICES -j X\nCOMMIT\n")
    after = parse("*nat\n[0:0] -A KUBE-SERVICES -d 10.0.0.9/32 -j KUBE-SVC-B\n"
                  "[5:0] -A KUBE-SERVICES -d 10.0.0.1/32 -j KUBE-SVC-A\nCOMMIT\n")
    b, a = before.counters(), after.counters()
    key = ("nat", "KUBE-SERVICES", "-d 10.0.0.1/32 -j KUBE-SVC-A", 0)
    assert (b[key], a[key]) == (4, 5)
    assert b[("nat", "KUBE-SERVICES", "-j X", 1)] == 2  # the same text twice: told apart by order


@pytest.mark.parametrize("text", ["-A X -j ACCEPT\n", "*nat\n-Z FOO\n", "*nat\n:BAD\n",
                                  '*nat\n-A X -m comment --comment "x\n'])
def test_what_is_not_iptables_text_is_refused_with_the_line(text: str) -> None:
    with pytest.raises(RulesetError, match="line"):
        parse(text)
