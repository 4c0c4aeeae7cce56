"""`netplane proxy status` for IPVS mode: the node's virtual servers with their scheduler,
persistence, real servers and connection counts, as the kernel reports them. Pure
formatting over procfs.py's records; the CLI reads /proc."""

from __future__ import annotations

from netplane.ctl.tabwriter import tabwrite
from netplane.proxy_ipvs.procfs import PROC_IP_VS, Virtual, parse_ip_vs


def read() -> list[Virtual]:
    """The virtual servers of this thread's network namespace; none when the ip_vs module
    is not loaded."""
    try:
        with open(PROC_IP_VS) as f:
            return parse_ip_vs(f.read())
    except FileNotFoundError:
        return []


def format_virtuals(virtuals: list[Virtual]) -> str:
    lines = ["VIRTUAL-SERVER\tPROTO\tSCHEDULER\tPERSISTENT\tREAL-SERVERS\tACTIVE\tINACTIVE"]
    for v in sorted(virtuals, key=lambda v: (v.proto, v.address)):
        persistent = f"{v.persistent}s" if v.persistent is not None else "-"
        lines.append(f"{v.address}\t{v.proto.upper()}\t{v.scheduler}\t{persistent}\t{len(v.reals)}\t"
                     f"{sum(r.active for r in v.reals)}\t{sum(r.inactive for r in v.reals)}")
    # kubectl's column layout (three spaces between columns, as kube-proxy's tables here).
    return tabwrite("\n".join(lines) + "\n", padding=3)
