"""Go's `%v` of decoded JSON: how kubectl prints cells and how strategicpatch compares keys."""

from __future__ import annotations

from typing import Any


def go_value(value: Any) -> str:
    """fmt.Sprint of a value decoded from JSON (numbers lose a trailing `.0`, maps sort)."""
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, list):
        return "[" + " ".join(go_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "map[" + " ".join(f"{k}:{go_value(v)}" for k, v in sorted(value.items())) + "]"
    return str(value)
