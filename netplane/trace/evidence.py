"""Which of the walk's paths the kernel took for the probe: the conntrack entry says where
DNAT sent this very 5-tuple; the counters say which rules packets matched between two
snapshots. A path fits when every rule it fires moved; conntrack breaks the ties that other
traffic moving the same counters can leave. Pure."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from netplane.trace.ruleset import Rule, Ruleset
from netplane.trace.walker import Path, Step

RuleId = tuple[str, str, int]  # table, chain, 1-based index in the later snapshot


def counter_deltas(before: Ruleset, after: Ruleset) -> dict[RuleId, int]:
    """Packets each rule of `after` matched since `before`; a rule `before` lacked (a sync
    in between) counts from zero."""
    earlier = before.counters()
    out: dict[RuleId, int] = {}
    seen: dict[tuple[str, str, str], int] = {}
    for rule in after.rules():
        n = seen.get(rule.key, 0)
        seen[rule.key] = n + 1
        out[(rule.table, rule.chain, rule.index)] = rule.packets - earlier.get((*rule.key, n), 0)
    return out


def rule_id(rule: Rule) -> RuleId:
    return (rule.table, rule.chain, rule.index)


@dataclass(frozen=True)
class Choice:
    path: Path
    how: str  # one line: what decided
    fits: bool  # every rule the path fires moved its counter
    unmoved: tuple[Step, ...] = ()  # fired rules whose counters did not move
    alternatives: int = 0  # other paths that fit the evidence as well


def _unmoved(path: Path, deltas: Mapping[RuleId, int]) -> tuple[Step, ...]:
    return tuple(s for s in path.fired if s.rule is not None and deltas.get(rule_id(s.rule), 0) <= 0)


def choose(paths: list[Path], deltas: Mapping[RuleId, int] | None = None,
           conntrack_dnat: tuple[str, int] | None = None, conntrack_seen: bool = False) -> Choice:
    """The path the evidence supports. `conntrack_seen`: the probe's conntrack entry was
    found, so `conntrack_dnat` (None: not DNATed) is known."""
    if not paths:
        raise ValueError("no path to choose from")
    deltas = deltas or {}
    candidates = paths
    how: list[str] = []
    if conntrack_seen:
        same = [p for p in paths if p.dnat == conntrack_dnat]
        if same:
            candidates = same
            if len(paths) > 1:
                target = f"DNAT to {conntrack_dnat[0]}:{conntrack_dnat[1]}" if conntrack_dnat else "no DNAT"
                how.append(f"conntrack shows {target}")
    fitting = [p for p in candidates if not _unmoved(p, deltas)] if deltas else []
    if len(fitting) == 1:
        chosen = fitting[0]
        if len(candidates) > 1:
            how.append("only this path's rules all counted the probe")
    elif fitting:
        chosen = max(fitting, key=lambda p: (sum(deltas.get(rule_id(s.rule), 0) for s in p.fired
                                                 if s.assumed and s.rule is not None), p.probability or 0))
        how.append(f"{len(fitting)} paths fit the counters (other traffic moved them too); the one whose "
                   "undecided rules counted most")
    else:
        chosen = max(candidates, key=lambda p: (sum(1 for s in p.fired if s.rule is not None
                                                     and deltas.get(rule_id(s.rule), 0) > 0),
                                                p.probability or 0))
        if len(candidates) > 1:
            how.append("no path fits every counter; the one most counters support")
    if len(paths) == 1:
        how.insert(0, "the rules decide alone")
    unmoved = _unmoved(chosen, deltas)
    return Choice(chosen, "; ".join(how) or "the rules decide alone", bool(deltas) and not unmoved, unmoved,
                  max(0, len(fitting) - 1))
