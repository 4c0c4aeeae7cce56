"""Command-line durations as Kubernetes' tools take them: Go's `40s`, `1m30s`, `250ms`, or a
bare number of seconds."""

from __future__ import annotations

import argparse
import re

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str) -> float:
    """Seconds; argparse's error for anything else, so a flag with `type=parse_duration`
    reports a bad value in one line."""
    text = text.strip()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    if text and re.fullmatch(rf"(?:{_DURATION.pattern})+", text):
        return sum(float(n) * _UNIT[u] for n, u in _DURATION.findall(text))
    raise argparse.ArgumentTypeError(f"not a duration: {text!r} (try 40s, 1m30s, 500ms)")
