"""The writer every describe page is built with: kubectl's PrefixWriter over a tabwriter
(padding 2), and the sections all kinds share (labels, annotations, events, tolerations,
and the generic dump of fields for kinds without their own page)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from netplane.ctl.durations import age, parse_time
from netplane.ctl.gofmt import go_value
from netplane.ctl.tabwriter import tabwrite

LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
_MAX_ANNOTATION = 140


class Page:
    """Lines are written as kubectl writes them (`page.write(1, "Image:\\t%s\\n")`-style:
    a level of indent, then text whose tabs separate columns)."""

    def __init__(self) -> None:
        self._done: list[str] = []
        self._text: list[str] = []

    def write(self, level: int, text: str) -> None:
        self._text.append("  " * level + text)

    def line(self, level: int, *cells: object) -> None:
        """One line of cells: `page.line(0, "Name:", name)` is "Name:\\t<name>\\n"."""
        self.write(level, "\t".join(str(c) for c in cells) + "\n")

    def flush(self) -> None:
        """Ends an alignment block, as kubectl's w.Flush() does before an events table."""
        self._done.append(tabwrite("".join(self._text), padding=2))
        self._text = []

    def text(self) -> str:
        self.flush()
        return "".join(self._done)




def or_none(text: str) -> str:
    return text or "<none>"


def labels_text(labels: dict[str, Any] | None) -> str:
    """labels.FormatLabels: `a=1,b=2` sorted, or <none>."""
    return ",".join(f"{k}={v}" for k, v in sorted((labels or {}).items())) or "<none>"


def labels_section(page: Page, title: str, labels: dict[str, Any] | None, level: int = 0) -> None:
    page.write(level, f"{title}:\t")
    if not labels:
        page.write(0, "<none>\n")
        return
    for i, (k, v) in enumerate(sorted(labels.items())):
        page.write(0, ("\t" if i else "") + f"{k}={v}\n")


def annotations_section(page: Page, annotations: dict[str, Any] | None, title: str = "Annotations") -> None:
    page.write(0, f"{title}:\t")
    keys = sorted(k for k in (annotations or {}) if k != LAST_APPLIED)
    if not keys:
        page.write(0, "<none>\n")
        return
    for i, key in enumerate(keys):
        if i:
            page.write(0, "\t")
        value = str(annotations[key]).removesuffix("\n")  # type: ignore[index]
        if len(value) + len(key) + 2 > _MAX_ANNOTATION or "\n" in value:
            page.write(0, f"{key}:\n")
            for part in value.split("\n"):
                short = part if len(part) <= _MAX_ANNOTATION - 2 else part[:_MAX_ANNOTATION - 2] + "..."
                page.write(0, f"\t  {short}\n")
        else:
            page.write(0, f"{key}: {value}\n")


def taint_text(t: dict[str, Any]) -> str:
    value = f"={t['value']}" if t.get("value") else ""
    return f"{t.get('key', '')}{value}:{t.get('effect', '')}"


def taints_section(page: Page, taints: list[dict[str, Any]] | None) -> None:
    page.write(0, "Taints:\t")
    if not taints:
        page.write(0, "<none>\n")
        return
    for i, t in enumerate(taints):
        page.write(0, ("\t" if i else "") + taint_text(t) + "\n")


def tolerations_section(page: Page, title: str, tolerations: list[dict[str, Any]] | None) -> None:
    page.write(0, f"{title}:\t")
    if not tolerations:
        page.write(0, "<none>\n")
        return
    for i, t in enumerate(sorted(tolerations, key=lambda t: t.get("key", ""))):
        text = t.get("key", "")
        if t.get("value"):
            text += f"={t['value']}"
        if t.get("effect"):
            text += f":{t['effect']}"
        if t.get("operator") == "Exists" and not t.get("value"):
            text += " op=Exists" if t.get("key") or t.get("effect") else "op=Exists"
        if t.get("tolerationSeconds") is not None:
            text += f" for {t['tolerationSeconds']}s"
        page.write(0, ("\t" if i else "") + text + "\n")


def _event_time(e: dict[str, Any]) -> datetime | None:
    return (parse_time(e.get("lastTimestamp")) or parse_time(e.get("eventTime"))
            or parse_time(e.get("firstTimestamp")))


def events_section(page: Page, events: list[dict[str, Any]] | None) -> None:
    """kubectl's DescribeEvents; `None` (events not fetched) prints nothing."""
    if events is None:
        return
    if not events:
        page.write(0, "Events:\t<none>\n")
        return
    page.flush()
    page.write(0, "Events:\n  Type\tReason\tAge\tFrom\tMessage\n")
    page.write(1, "----\t------\t----\t----\t-------\n")
    for e in sorted(events, key=lambda e: _event_time(e) or datetime.min.replace(tzinfo=UTC)):
        first = age(e.get("eventTime") or e.get("firstTimestamp"))
        series = e.get("series") or {}
        if series:
            interval = f"{age(series.get('lastObservedTime'))} (x{series.get('count', 0)} over {first})"
        elif (e.get("count") or 0) > 1:
            interval = f"{age(e.get('lastTimestamp'))} (x{e['count']} over {first})"
        else:
            interval = first
        source = (e.get("source") or {}).get("component") or e.get("reportingComponent") or ""
        message = " ".join(str(e.get("message", "")).split("\n")).strip()
        page.write(1, f"{e.get('type', '')}\t{e.get('reason', '')}\t{interval}\t{source}\t{message}\n")


_ACRONYMS = {"API", "URL", "UID", "OSB", "GUID"}


def smart_label(field: str) -> str:
    """kubectl's smartLabelFor: `apiVersion` → `API Version`, `nodeName` → `Node Name`."""
    if any(not (c.isalpha() or c == "-") for c in field):
        return field
    parts = re.findall(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|[^A-Za-z]+", field)
    return " ".join(p.upper() if p.upper() in _ACRONYMS else p[:1].upper() + p[1:] for p in parts)


_SKIP = {".metadata.managedFields", ".metadata.name", ".metadata.namespace", ".metadata.labels",
         ".metadata.annotations"}


def unstructured_section(page: Page, level: int, content: dict[str, Any], prefix: str = "") -> None:
    """kubectl's printUnstructuredContent: every field, sorted, nested by indent."""
    for key in sorted(content):
        value, path = content[key], f"{prefix}.{key}"
        if path in _SKIP:
            continue
        if isinstance(value, dict):
            page.write(level, f"{smart_label(key)}:\n")
            unstructured_section(page, level + 1, value, path)
        elif isinstance(value, list):
            page.write(level, f"{smart_label(key)}:\n")
            for child in value:
                if isinstance(child, dict):
                    unstructured_section(page, level + 1, child, path)
                else:
                    page.write(level + 1, f"{go_value(child)}\n")
        else:
            page.write(level, f"{smart_label(key)}:\t{go_value(value)}\n")


def generic(obj: dict[str, Any], events: list[dict[str, Any]] | None) -> str:
    """The page of a kind without its own describer."""
    meta = obj.get("metadata") or {}
    page = Page()
    page.line(0, "Name:", meta.get("name", ""))
    page.line(0, "Namespace:", meta.get("namespace", ""))
    labels_section(page, "Labels", meta.get("labels"))
    annotations_section(page, meta.get("annotations"))
    unstructured_section(page, 0, obj)
    events_section(page, events)
    return page.text()
