"""Output of `netplane ctl get`: kubectl's tables (from the server's Table), yaml, json, name."""

from __future__ import annotations

import json
from typing import Any

import yaml

from netplane.client.rest import ResourceRef


def name_lines(ref: ResourceRef, items: list[dict[str, Any]]) -> str:
    group = ref.group_version.split("/")[0] if "/" in ref.group_version else ""
    prefix = ref.kind.lower() + (f".{group}" if group else "")
    return "".join(f"{prefix}/{o['metadata']['name']}\n" for o in items)


def structured(items: list[dict[str, Any]], fmt: str, *, single: bool) -> str:
    doc: Any = items[0] if single else {"apiVersion": "v1", "kind": "List", "items": items,
                                        "metadata": {"resourceVersion": ""}}
    if fmt == "json":
        return json.dumps(doc, indent=4) + "\n"
    return yaml.safe_dump(doc, sort_keys=False, default_flow_style=False)


def table(tables: list[dict[str, Any]], *, wide: bool, namespace_column: bool) -> str:
    """Aligned columns like kubectl: priority-0 columns, all of them with -o wide."""
    columns: list[dict[str, Any]] = tables[0].get("columnDefinitions", []) if tables else []
    keep = [i for i, c in enumerate(columns) if wide or c.get("priority", 0) == 0]
    header = [columns[i]["name"].upper() for i in keep]
    rows = []
    for t in tables:
        for row in t.get("rows", []):
            cells = ["<none>" if row["cells"][i] in (None, "") else str(row["cells"][i]) for i in keep]
            if namespace_column:
                ns = ((row.get("object") or {}).get("metadata") or {}).get("namespace", "")
                cells.insert(0, ns)
            rows.append(cells)
    if namespace_column:
        header.insert(0, "NAMESPACE")
    if not rows:
        return ""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = ["   ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip()
             for r in [header, *rows]]
    return "\n".join(lines) + "\n"
