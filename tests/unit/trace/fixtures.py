"""Rule sets and a node for the trace's pure tests: kube-proxy's layout as netplane's
renderer writes it (the golden file of tests/unit/proxy_iptables, with the jumps from the
built-in chains that a sync inserts), and a node-1 that fits it."""

from __future__ import annotations

from pathlib import Path

from netplane.proxy_iptables.backend import with_jumps_and_canary
from netplane.trace.node import NodeView, Route
from netplane.trace.ruleset import Ruleset, parse

GOLDEN = Path(__file__).parents[1] / "proxy_iptables" / "testdata"

# representative.yaml's proxy runs on node-1 with cluster CIDR 10.0.0.0/24; its pods here
# sit on cbr0 (10.0.0.0/24, 10.180.0.0/24), the other nodes' pods behind eth0.
NODE = NodeView("node-1",
                {"lo": ("127.0.0.1/8",), "eth0": ("192.168.0.1/24",),
                 "cbr0": ("10.0.0.1/24", "10.180.0.254/24")},
                (Route("0.0.0.0/0", "eth0", "192.168.0.254"), Route("10.0.0.0/24", "cbr0"),
                 Route("10.180.0.0/24", "cbr0"), Route("10.180.1.0/24", "eth0", "192.168.0.2"),
                 Route("10.180.2.0/24", "eth0", "192.168.0.3"), Route("192.168.0.0/24", "eth0")))
POD = "10.0.0.5"


def with_jumps(rendered: str) -> str:
    """Rendered rules as the kernel holds them after a full sync: plus kube-proxy's jumps
    from PREROUTING, FORWARD, POSTROUTING..."""
    return with_jumps_and_canary(rendered, "")


def representative() -> Ruleset:
    return parse(with_jumps((GOLDEN / "representative.rules").read_text()))
