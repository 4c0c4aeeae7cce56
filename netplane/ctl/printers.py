"""Output of `netplane ctl get`: the server's Tables printed as kubectl prints them, and the
yaml, json and name formats."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import yaml

from netplane.client.rest import ResourceRef
from netplane.ctl.gofmt import go_value
from netplane.ctl.tabwriter import tabwrite


@dataclass(frozen=True)
class TableOptions:
    wide: bool = False
    with_namespace: bool = False
    with_kind: str = ""  # "service", "deployment.apps": prefixes names when several kinds are listed
    show_labels: bool = False
    no_headers: bool = False


def qualified_kind(ref: ResourceRef) -> str:
    """kubectl's name for a kind in messages and -o name: `service`, `deployment.apps`."""
    group = ref.group_version.rpartition("/")[0]
    return ref.kind.lower() + (f".{group}" if group else "")




def _labels(row: dict[str, Any]) -> str:
    labels = ((row.get("object") or {}).get("metadata") or {}).get("labels") or {}
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items())) or "<none>"


def table(tables: list[dict[str, Any]], options: TableOptions) -> str:
    """The rows of `tables` (one kind) as one aligned table; "" if there are no rows."""
    if not any(t.get("rows") for t in tables):
        return ""
    columns: list[dict[str, Any]] = next((t["columnDefinitions"] for t in tables
                                          if t.get("columnDefinitions")), [])
    # kubectl hides columns of priority > 0 unless -o wide.
    keep = [i for i, c in enumerate(columns) if options.wide or c.get("priority", 0) == 0]
    lines: list[list[str]] = []
    if not options.no_headers:
        header = [str(columns[i].get("name", "")).upper() for i in keep]
        if options.with_namespace:
            header.insert(0, "NAMESPACE")
        if options.show_labels:
            header.append("LABELS")
        lines.append(header)
    for t in tables:
        for row in t.get("rows") or []:
            cells = row.get("cells") or []
            out = [go_value(cells[i]) if i < len(cells) else "" for i in keep]
            if options.with_kind and out:
                out[0] = f"{options.with_kind}/{out[0]}"
            if options.with_namespace:
                out.insert(0, ((row.get("object") or {}).get("metadata") or {}).get("namespace", ""))
            if options.show_labels:
                out.append(_labels(row))
            lines.append(out)
    return tabwrite("".join("\t".join(line) + "\n" for line in lines), minwidth=6, padding=3)


def name_lines(ref: ResourceRef, items: list[dict[str, Any]]) -> str:
    prefix = qualified_kind(ref)
    return "".join(f"{prefix}/{o['metadata']['name']}\n" for o in items)


class _Dumper(yaml.SafeDumper):
    """kubectl's YAML: keys sorted, no line folding, multi-line strings as literal blocks,
    and double quotes where a string needs quoting (go-yaml's choice; PyYAML's is single)."""

    def choose_scalar_style(self) -> str:
        style = super().choose_scalar_style()
        return '"' if style == "'" else style


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value and not value.startswith((" ", "\n")) else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def to_yaml(doc: Any) -> str:
    return yaml.dump(doc, Dumper=_Dumper, sort_keys=True, default_flow_style=False,
                     allow_unicode=True, width=2**31 - 1)


def to_json(doc: Any) -> str:
    # Go's json.MarshalIndent, as kubectl uses: sorted keys, four spaces, UTF-8 kept.
    return json.dumps(doc, indent=4, sort_keys=True, ensure_ascii=False) + "\n"


def structured(items: list[dict[str, Any]], fmt: str, *, single: bool) -> str:
    """One object (`single`) or a `List` of them, as yaml or json."""
    doc: Any = items[0] if single else {"apiVersion": "v1", "kind": "List", "items": items,
                                        "metadata": {"resourceVersion": ""}}
    return to_json(doc) if fmt == "json" else to_yaml(doc)
