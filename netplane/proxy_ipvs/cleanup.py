"""What `--cleanup` removes from iptables for IPVS mode (kube-proxy's cleanupIptablesLeftovers),
as one restore transaction computed from iptables-save. Pure. A chain that rules of
others still jump to (the iptables mode's KUBE-MARK-MASQ, its KUBE-PROXY-FIREWALL jumps)
is flushed of our rules but left for its other owner to remove."""

from __future__ import annotations

import re

from netplane.proxy_ipvs import names as n

_JUMP = re.compile(r"^-A (\S+) .*-j (\S+)")


def was_here(saved: dict[str, str]) -> bool:
    """IPVS mode left chains in these tables (table -> iptables-save text)."""
    return any(f":{chain} " in saved.get(table, "") for table, chains in n.OWN_CHAINS.items()
               for chain in chains)


def removal(saved: dict[str, str]) -> tuple[str, int]:
    """The restore input that removes IPVS mode's jumps and chains, and how many chains it
    deletes; ("", 0) when there is nothing of ours."""
    if not was_here(saved):
        return "", 0
    out: list[str] = []
    deleted = 0
    for table in ("nat", "filter"):
        text = saved.get(table, "")
        ours = [ch for ch in (*n.CLEANUP_CHAINS[table], *((n.MARK_MASQ,) if table == "nat" else ()))
                if f":{ch} " in text]
        if not ours:
            continue
        own_jumps = {f"-A {builtin} {n.jump_spec(chain, comment)}" for t, builtin, chain, comment in n.JUMPS
                     if t == table}
        ours_set = set(ours)
        jumps: list[str] = []
        referenced = set()
        for line in text.splitlines():
            if line in own_jumps:
                jumps.append("-D" + line[2:])  # once per copy: a duplicate needs its own -D
                continue
            m = _JUMP.match(line)
            if m and m[2] in ours_set and m[1] not in ours_set:
                referenced.add(m[2])  # someone else's rule jumps here
        doomed = [ch for ch in ours if ch not in referenced]
        deleted += len(doomed)
        out += [f"*{table}", *(f":{ch} - [0:0]" for ch in ours), *jumps, *(f"-X {ch}" for ch in doomed),
                "COMMIT"]
    return "\n".join(out) + "\n", deleted
