"""Choosing among the walk's paths by counter deltas and the probe's conntrack entry."""

from __future__ import annotations

from netplane.trace.evidence import choose, counter_deltas, rule_id
from netplane.trace.packet import Packet
from netplane.trace.ruleset import Ruleset, parse
from netplane.trace.walker import Path, walk
from tests.unit.trace.fixtures import NODE, POD, representative

RULES = representative()
SVC = "KUBE-SVC-CYJJNRDIWBDS7HGJ"  # ns1/three: three endpoints, statistic choice


def three() -> list[Path]:
    return walk(RULES, Packet("tcp", POD, 40000, "172.30.0.43", 80), NODE, "cbr0")


def moved(path: Path, extra: int = 0) -> dict[tuple[str, str, int], int]:
    """The counters a real pass of `path` moves (+ `extra` on every rule)."""
    deltas = {rule_id(r): extra for r in RULES.rules()}
    for s in path.fired:
        assert s.rule is not None
        deltas[rule_id(s.rule)] = 1 + extra
    return deltas


def test_deltas_follow_rules_across_an_insertion_and_count_new_rules_from_zero() -> None:
    before = parse("*nat\n[4:0] -A KUBE-SERVICES -j A\nCOMMIT\n")
    after = parse("*nat\n[2:0] -A KUBE-SERVICES -j NEW\n[9:0] -A KUBE-SERVICES -j A\nCOMMIT\n")
    assert counter_deltas(before, after) == {("nat", "KUBE-SERVICES", 1): 2, ("nat", "KUBE-SERVICES", 2): 5}
    assert counter_deltas(Ruleset(), after)[("nat", "KUBE-SERVICES", 2)] == 9


def test_the_counters_alone_pick_the_endpoint_the_statistic_match_chose() -> None:
    paths = three()
    for truth in paths:
        choice = choose(paths, moved(truth))
        assert choice.path.dnat == truth.dnat and choice.fits
        assert "only this path's rules all counted the probe" in choice.how


def test_conntrack_settles_what_concurrent_traffic_left_open() -> None:
    paths = three()
    truth = paths[1]
    busy = moved(truth, extra=3)  # every rule moved: other clients of the service meanwhile
    assert choose(paths, busy).alternatives == 2
    choice = choose(paths, busy, truth.dnat, conntrack_seen=True)
    assert choice.path.dnat == truth.dnat and choice.fits
    assert choice.how.startswith(f"conntrack shows DNAT to {truth.dnat[0]}:{truth.dnat[1]}")  # type: ignore[index]


def test_a_path_whose_rules_did_not_count_is_flagged_not_trusted() -> None:
    paths = three()
    choice = choose(paths, {rule_id(r): 0 for r in RULES.rules()})
    assert not choice.fits and choice.unmoved
    assert "no path fits every counter" in choice.how


def test_a_single_path_is_the_rules_decision() -> None:
    [path] = walk(RULES, Packet("tcp", POD, 1, "172.30.0.41", 80), NODE, "cbr0")
    choice = choose([path], moved(path))
    assert choice.how == "the rules decide alone" and choice.fits
