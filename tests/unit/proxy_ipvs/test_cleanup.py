"""What --cleanup removes from iptables: IPVS mode's jumps and chains, nothing of a node
where IPVS mode never ran, and no chain that another mode's rules still use."""

from __future__ import annotations

from netplane.proxy_ipvs import cleanup
from netplane.proxy_ipvs.iptables_rules import RuleOptions, missing_jumps, render_rules, with_jumps

IPTABLES_MODE_ONLY = {"nat": ":KUBE-SERVICES - [0:0]\n:KUBE-MARK-MASQ - [0:0]\n", "filter": ""}


def _saved(extra_nat: str = "") -> dict[str, str]:
    text = with_jumps(render_rules({"KUBE-CLUSTER-IP"}, RuleOptions()), {})
    nat, _, filt = text.partition("*filter\n")
    jumps = [line.replace("-I ", "-A ", 1).replace(" 1 -m", " -m") for line in text.splitlines()
             if line.startswith("-I ")]
    nat_jumps = [j for j in jumps if "service portals" in j or "postrouting" in j]
    filter_jumps = [j for j in jumps if j not in nat_jumps]
    return {"nat": nat + "\n".join(nat_jumps) + extra_nat, "filter": filt + "\n".join(filter_jumps)}


def test_a_node_without_ipvs_mode_is_left_alone() -> None:
    assert cleanup.removal(IPTABLES_MODE_ONLY) == ("", 0)


def test_every_jump_and_chain_of_ipvs_mode_goes() -> None:
    text, count = cleanup.removal(_saved())
    assert count == 10
    assert text.count("-D ") == 8
    assert "-X KUBE-MARK-MASQ" in text and "-X KUBE-IPVS-FILTER" in text


def test_a_chain_another_mode_still_jumps_to_is_flushed_but_kept() -> None:
    text, count = cleanup.removal(_saved("\n:KUBE-SVC-X - [0:0]\n-A KUBE-SVC-X -j KUBE-MARK-MASQ\n"))
    assert count == 9 and ":KUBE-MARK-MASQ - [0:0]" in text and "-X KUBE-MARK-MASQ" not in text


def test_only_missing_jumps_are_inserted() -> None:
    saved = {"nat": '-A OUTPUT -m comment --comment "kubernetes service portals" -j KUBE-SERVICES\n'}
    missing = missing_jumps(saved)
    assert len(missing["nat"]) == 2 and len(missing["filter"]) == 5
