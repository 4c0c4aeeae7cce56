"""A full sync's last transaction carries the jumps from the built-in chains that the kernel
lacks, and the canary chain, so no iptables process runs per jump."""

from __future__ import annotations

from netplane.model import ProxyState
from netplane.proxy_iptables import chains
from netplane.proxy_iptables.backend import CANARY, with_jumps_and_canary
from netplane.proxy_iptables.renderer import Renderer, RenderOptions
from tests.unit.proxy_iptables.fake_restore import FakeTables


def _saved(kernel: FakeTables) -> str:
    lines = []
    for table, chains_ in kernel.tables.items():
        lines.append(f"*{table}")
        lines += [f":{name} - [0:0]" for name in chains_]
        lines += [f"-A {name} {rule}" for name, rules in chains_.items() for rule in rules]
        lines.append("COMMIT")
    return "\n".join(lines) + "\n"


def test_missing_jumps_are_inserted_first_once_and_the_canary_created() -> None:
    kernel = FakeTables()
    kernel.tables["mangle"] = {}
    text = Renderer(RenderOptions(node_name="n")).render(ProxyState()).text
    first = with_jumps_and_canary(text, saved="")
    assert first.count("-I ") == len(chains.JUMPS) and f":{CANARY} - [0:0]" in first
    kernel.restore(first)
    expected = '-m comment --comment "kubernetes service portals" -j KUBE-SERVICES'
    assert kernel.tables["nat"]["PREROUTING"][0] == expected
    again = with_jumps_and_canary(text, saved=_saved(kernel))
    assert "-I " not in again and CANARY not in again, "what exists is not added twice"
