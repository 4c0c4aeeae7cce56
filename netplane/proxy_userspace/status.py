"""`netplane proxy status` for userspace mode: the proxy's listeners with the endpoints
each rotates over, as the running proxy reports them on its metrics port
(/debug/userspace/listeners): in this mode the state is in the proxy, not in the kernel.
Pure rows; the CLI asks the proxy and lays the table out."""

from __future__ import annotations

from typing import Any

HEADER = ("SERVICE", "KIND", "ADDRESS", "PORT", "PROTO", "AFFINITY", "ENDPOINTS")


def rows(listeners: list[dict[str, Any]]) -> list[tuple[str, ...]]:
    out = []
    for entry in listeners:
        affinity = f"ClientIP {entry['affinity_seconds']}s" if entry.get("affinity_seconds") else "-"
        out.append((entry["service"], entry["kind"].replace(" ", "-"), entry["address"] or "-",
                    str(entry["port"]), entry["protocol"], affinity, ",".join(entry["endpoints"]) or "none"))
    return out
