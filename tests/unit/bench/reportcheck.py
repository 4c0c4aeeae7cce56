"""Checks a comparison report against its raw results: the sections are there and every
figure in its tables was measured (is the formatting of a value in results.json)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from netplane.bench.report import ABSENT, fmt

SECTIONS = ("# Proxy modes compared", "## Sync times", "## Network programming latency",
            "## Data path through a ClusterIP", "## Spread of new connections over the endpoints")
NUMBER = re.compile(r"^-?[\d,]*\.?\d+(e[-+]\d+)?$")


def leaves(value: Any) -> Iterator[float | int]:
    if isinstance(value, bool):
        return
    if isinstance(value, int | float):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from leaves(v)
    elif isinstance(value, list):
        for v in value:
            yield from leaves(v)


def table_rows(report: str) -> list[list[str]]:
    rows = []
    for line in report.splitlines():
        if line.startswith("| ") and not line.startswith("|---"):
            rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows


def check(report: str, results: dict[str, Any]) -> int:
    """Asserts the report's structure and provenance; returns how many figures it checked."""
    for section in SECTIONS:
        assert section in report, f"missing section {section!r}"
    assert ABSENT not in report, "a figure was not measured"
    assert results["date"] in report and results["machine"]["kernel"] in report
    measured = {fmt(v) for v in leaves(results["runs"])} | {fmt(v) for v in leaves(results["plan"])}
    measured |= {fmt(v) for v in leaves(results["machine"])}
    checked = 0
    for row in table_rows(report):
        for cell in row:
            for part in cell.split(" / "):
                if NUMBER.match(part):
                    assert part in measured, f"{part!r} in row {row} is not a value of results.json"
                    checked += 1
    runs = len(results["runs"])
    assert checked >= runs * 20, f"only {checked} figures for {runs} runs"
    return checked
