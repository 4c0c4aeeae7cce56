"""`netplane proxy status` for IPVS mode: the node's virtual servers with their scheduler,
persistence, real servers and connection counts, as the kernel reports them. Pure rows over
procfs.py's records; the CLI reads /proc and lays the table out."""

from __future__ import annotations

from netplane.proxy_ipvs.procfs import PROC_IP_VS, Virtual, parse_ip_vs

HEADER = ("VIRTUAL-SERVER", "PROTO", "SCHEDULER", "PERSISTENT", "REAL-SERVERS", "ACTIVE", "INACTIVE")


def read() -> list[Virtual]:
    """The virtual servers of this thread's network namespace; none when the ip_vs module
    is not loaded."""
    try:
        with open(PROC_IP_VS) as f:
            return parse_ip_vs(f.read())
    except FileNotFoundError:
        return []


def rows(virtuals: list[Virtual]) -> list[tuple[str, ...]]:
    return [(v.address, v.proto.upper(), v.scheduler, f"{v.persistent}s" if v.persistent is not None else "-",
             str(len(v.reals)), str(sum(r.active for r in v.reals)), str(sum(r.inactive for r in v.reals)))
            for v in sorted(virtuals, key=lambda v: (v.proto, v.address))]
