"""A whole netfilter rule set as iptables shows it: tables, chains with their policies, and
each chain's rules in order with their counters, parsed into options the matcher reads.

Reads `iptables-save -c` output (nf_tables and legacy print the same format) and also
`iptables-restore` input as netplane's renderer writes it (`-A`, `-I CHAIN [N]`, `-X`),
so that rendered rule sets can be walked in tests without a kernel. Pure.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass, field

BUILTIN_CHAINS = {
    "raw": ("PREROUTING", "OUTPUT"),
    "mangle": ("PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"),
    "nat": ("PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"),
    "filter": ("INPUT", "FORWARD", "OUTPUT"),
    "security": ("INPUT", "FORWARD", "OUTPUT"),
}
# Options whose value count is fixed (everything else takes the words up to the next option):
# a comment may start with "-", --tcp-flags and --match-set take two words.
_ARITY = {"--comment": 1, "--tcp-flags": 2, "--match-set": 2}
# Options of iptables itself; the others belong to the last `-m` module (or the target).
_BUILTIN_OPTIONS = {"-s": "-s", "--source": "-s", "--src": "-s", "-d": "-d", "--destination": "-d",
                    "--dst": "-d", "-p": "-p", "--protocol": "-p", "-i": "-i", "--in-interface": "-i",
                    "-o": "-o", "--out-interface": "-o", "-f": "-f", "--fragment": "-f"}
_COUNTERS = re.compile(r"^\[(\d+):(\d+)\]\s+(.*)$")
_CHAIN = re.compile(r"^:(\S+)\s+(\S+)(?:\s+\[(\d+):(\d+)\])?")


class RulesetError(ValueError):
    """The text is not iptables-save or iptables-restore input."""


@dataclass(frozen=True)
class Option:
    name: str  # "-d", "--dport", ...
    values: tuple[str, ...]
    negated: bool = False


@dataclass(frozen=True)
class Match:
    module: str  # "" for iptables' own options (-s, -d, -p, -i, -o, -f)
    options: tuple[Option, ...]

    def get(self, name: str) -> Option | None:
        return next((o for o in self.options if o.name == name), None)


@dataclass(frozen=True)
class Target:
    name: str  # ACCEPT, DROP, DNAT, a chain name, ... ("" when the rule has none)
    options: tuple[Option, ...] = ()
    goto: bool = False  # -g: the chain returns to the caller's caller

    def get(self, name: str) -> str | None:
        option = next((o for o in self.options if o.name == name), None)
        return None if option is None else (option.values[0] if option.values else "")

    def has(self, name: str) -> bool:
        return any(o.name == name for o in self.options)


@dataclass(frozen=True)
class Rule:
    table: str
    chain: str
    index: int  # 1-based position in its chain, as `iptables -L --line-numbers` counts
    spec: str  # the rule as iptables prints it, after "-A CHAIN "
    matches: tuple[Match, ...]
    target: Target
    packets: int = 0
    bytes: int = 0

    @property
    def comment(self) -> str:
        for m in self.matches:
            if m.module == "comment" and (o := m.get("--comment")) is not None:
                return o.values[0] if o.values else ""
        return ""

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.table, self.chain, self.spec)

    def __str__(self) -> str:
        return f"-A {self.chain} {self.spec}"


@dataclass
class Chain:
    name: str
    policy: str | None  # None for a user chain
    packets: int = 0
    bytes: int = 0
    rules: list[Rule] = field(default_factory=list)


@dataclass
class Ruleset:
    tables: dict[str, dict[str, Chain]] = field(default_factory=dict)

    def chain(self, table: str, name: str) -> Chain | None:
        return self.tables.get(table, {}).get(name)

    def rules(self) -> Iterator[Rule]:
        for chains in self.tables.values():
            for chain in chains.values():
                yield from chain.rules

    def counters(self) -> dict[tuple[str, str, str, int], int]:
        """Packets per rule, keyed by (table, chain, spec, n-th rule with that spec): the key
        survives rules inserted before it, which a position would not."""
        out: dict[tuple[str, str, str, int], int] = {}
        for rule in self.rules():
            n = 0
            while (*rule.key, n) in out:
                n += 1
            out[(*rule.key, n)] = rule.packets
        return out


def _table(ruleset: Ruleset, name: str) -> dict[str, Chain]:
    if name not in ruleset.tables:
        ruleset.tables[name] = {c: Chain(c, "ACCEPT") for c in BUILTIN_CHAINS.get(name, ())}
    return ruleset.tables[name]


def parse(text: str) -> Ruleset:
    """Every table, chain and rule in `text` (iptables-save -c output or restore input)."""
    ruleset = Ruleset()
    table: dict[str, Chain] | None = None
    table_name = ""
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#") or line == "COMMIT":
            continue
        if line.startswith("*"):
            table_name = line[1:].strip()
            table = _table(ruleset, table_name)
            continue
        if table is None:
            raise RulesetError(f"line {number}: {line[:60]!r} comes before any *table line")
        if line.startswith(":"):
            m = _CHAIN.match(line)
            if m is None:
                raise RulesetError(f"line {number}: bad chain line {line!r}")
            name, policy = m.group(1), m.group(2)
            chain = table.setdefault(name, Chain(name, None if policy == "-" else policy))
            if policy != "-":
                chain.policy = policy
            chain.packets, chain.bytes = int(m.group(3) or 0), int(m.group(4) or 0)
            continue
        packets = bytes_ = 0
        if (c := _COUNTERS.match(line)) is not None:
            packets, bytes_, line = int(c.group(1)), int(c.group(2)), c.group(3)
        try:
            words = shlex.split(line)
        except ValueError as exc:
            raise RulesetError(f"line {number}: {exc}: {line!r}") from None
        _command(ruleset, table_name, table, words, packets, bytes_, number)
    return ruleset


def _command(ruleset: Ruleset, table_name: str, table: dict[str, Chain], words: list[str],
             packets: int, bytes_: int, number: int) -> None:
    op = words[0] if words else ""
    if op == "-X":
        for name in words[1:]:
            table.pop(name, None)
        return
    if op == "-F":
        for name in words[1:] or list(table):
            if name in table:
                table[name].rules.clear()
        return
    if op not in ("-A", "-I") or len(words) < 2:
        raise RulesetError(f"line {number}: cannot read {' '.join(words)[:80]!r}")
    name = words[1]
    rest = words[2:]
    position: int | None = None
    if op == "-I":
        position = 1
        if rest and rest[0].isdigit():
            position, rest = int(rest[0]), rest[1:]
    chain = table.setdefault(name, Chain(name, None))
    matches, target = parse_spec(rest)
    rule = Rule(table_name, name, 0, spec_text(rest), matches, target, packets, bytes_)
    if position is None:
        chain.rules.append(rule)
    else:
        chain.rules.insert(position - 1, rule)
    chain.rules[:] = [_renumbered(r, i) for i, r in enumerate(chain.rules, 1)]


def _renumbered(rule: Rule, index: int) -> Rule:
    if rule.index == index:
        return rule
    return Rule(rule.table, rule.chain, index, rule.spec, rule.matches, rule.target, rule.packets, rule.bytes)


def spec_text(words: list[str]) -> str:
    """The words joined back as iptables-save quotes them."""
    return " ".join(f'"{w}"' if (not w or any(ch in w for ch in ' "\'')) else w for w in words)


def parse_spec(words: list[str]) -> tuple[tuple[Match, ...], Target]:
    """A rule's words (after "-A CHAIN") as its matches, grouped by module, and its target."""
    builtin: list[Option] = []
    modules: list[tuple[str, list[Option]]] = []
    target = Target("")
    target_options: list[Option] | None = None
    negate = False
    i = 0
    while i < len(words):
        word = words[i]
        if word == "!":
            negate = True
            i += 1
            continue
        if word in ("-m", "--match"):
            modules.append((words[i + 1] if i + 1 < len(words) else "", []))
            i += 2
            continue
        if word in ("-j", "--jump", "-g", "--goto"):
            name = words[i + 1] if i + 1 < len(words) else ""
            target = Target(name, goto=word in ("-g", "--goto"))
            target_options = []
            i += 2
            continue
        if not word.startswith("-"):
            raise RulesetError(f"unexpected word {word!r} in rule {' '.join(words)!r}")
        arity = _ARITY.get(word)
        j = i + 1
        if arity is not None:
            j = min(len(words), i + 1 + arity)
        else:
            while j < len(words) and words[j] != "!" and not _is_option(words[j]):
                j += 1
        option = Option(_BUILTIN_OPTIONS.get(word, word), tuple(words[i + 1:j]), negate)
        negate = False
        if target_options is not None:
            target_options.append(option)
        elif option.name in _BUILTIN_OPTIONS.values() and word in _BUILTIN_OPTIONS:
            builtin.append(option)
        elif modules:
            modules[-1][1].append(option)
        else:
            builtin.append(option)  # e.g. --dport after a bare -p tcp: iptables loads tcp itself
        i = j
    if target_options:
        target = Target(target.name, tuple(target_options), target.goto)
    matches = [Match("", tuple(builtin))] if builtin else []
    matches += [Match(name, tuple(options)) for name, options in modules]
    return tuple(matches), target


def _is_option(word: str) -> bool:
    # A negative number is a value, never an option.
    return word.startswith("-") and not word[1:2].isdigit()
