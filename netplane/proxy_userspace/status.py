"""`netplane proxy status` for userspace mode: the proxy's listeners with the endpoints
each rotates over, as the running proxy reports them on its metrics port
(/debug/userspace/listeners): in this mode the state is in the proxy, not in the kernel."""

from __future__ import annotations

from typing import Any

from netplane.ctl.tabwriter import tabwrite


def format_listeners(listeners: list[dict[str, Any]]) -> str:
    lines = ["SERVICE\tKIND\tADDRESS\tPORT\tPROTO\tAFFINITY\tENDPOINTS"]
    for entry in listeners:
        affinity = f"ClientIP {entry['affinity_seconds']}s" if entry.get("affinity_seconds") else "-"
        endpoints = ",".join(entry["endpoints"]) or "none"
        lines.append(f"{entry['service']}\t{entry['kind'].replace(' ', '-')}\t{entry['address'] or '-'}\t"
                     f"{entry['port']}\t{entry['protocol']}\t{affinity}\t{endpoints}")
    # kubectl's column layout, three spaces apart as the other modes' status tables.
    return tabwrite("\n".join(lines) + "\n", padding=3)
