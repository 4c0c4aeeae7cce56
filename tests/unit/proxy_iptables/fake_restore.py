"""A small iptables-restore --noflush interpreter over in-memory tables, for unit tests of
what sequences of renders leave in the kernel. It keeps only what the renderer relies on:
a chain line creates or flushes, -A appends, -I inserts, -D deletes the first identical
rule, -X deletes an empty chain nothing jumps to; each table section applies whole or not
at all. The real kernel checks the same in tests/integration/proxy."""

from __future__ import annotations

import copy
import shlex

BUILTIN = {"filter": ("INPUT", "FORWARD", "OUTPUT"), "nat": ("PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"),
           "mangle": ("PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING")}


class RestoreError(Exception):
    pass


class FakeTables:
    def __init__(self) -> None:
        self.tables: dict[str, dict[str, list[str]]] = {t: {c: [] for c in cs} for t, cs in BUILTIN.items()}

    def restore(self, text: str) -> None:
        table = None
        work: dict[str, list[str]] = {}
        for n, line in enumerate(text.splitlines(), 1):
            if not line or line.startswith("#"):
                continue
            if line.startswith("*"):
                table = line[1:]
                work = copy.deepcopy(self.tables[table])
            elif line == "COMMIT":
                assert table is not None
                self.tables[table] = work
                table = None
            elif line.startswith(":"):
                work[line[1:].split()[0]] = []
            else:
                words = shlex.split(line)
                op, chain = words[0], words[1]
                spec = " ".join(f'"{w}"' if " " in w else w for w in words[2:])
                if chain not in work:
                    raise RestoreError(f"line {n}: chain {chain} does not exist")
                target = words[words.index("-j") + 1] if "-j" in words else ""
                if target.startswith("KUBE-") and target not in work:
                    raise RestoreError(f"line {n}: jump to missing chain {target}")
                if op == "-A":
                    work[chain].append(spec)
                elif op == "-I":
                    inserted = " ".join(f'"{w}"' if " " in w else w for w in words[3:])
                    work[chain].insert(int(words[2]) - 1, inserted)
                elif op == "-D":
                    if spec not in work[chain]:
                        raise RestoreError(f"line {n}: no such rule to delete: {line}")
                    work[chain].remove(spec)
                elif op == "-X":
                    if work[chain]:
                        raise RestoreError(f"line {n}: chain {chain} is not empty")
                    if any(f"-j {chain}" in r.split(" -j ")[-1:][0] and r.endswith(f"-j {chain}")
                           for rules in work.values() for r in rules):
                        raise RestoreError(f"line {n}: chain {chain} is still referenced")
                    del work[chain]
                else:
                    raise RestoreError(f"line {n}: unknown operation {op}")

    def snapshot(self) -> dict[str, dict[str, list[str]]]:
        """Chains and their rules; KUBE-SERVICES' order is not part of what the renderer
        promises after partial syncs (rules match distinct addresses), so it is sorted."""
        out = copy.deepcopy(self.tables)
        for table in out.values():
            for chain in ("KUBE-SERVICES", "KUBE-NODEPORTS", "KUBE-EXTERNAL-SERVICES"):
                if chain in table:
                    table[chain] = sorted(table[chain])
        return out
