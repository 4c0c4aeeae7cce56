"""kubectl's client-side apply as a three-way JSON merge patch.

From the last applied configuration (original), the new one (modified) and the live
object (current): set what the new configuration says where the live object differs,
and delete (null) what the previous configuration had and the new one dropped. Fields
nobody applied — defaults, allocations, other writers' fields — are left alone.
Lists are replaced whole (merge-patch semantics).
"""

from __future__ import annotations

import json
from typing import Any

LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


def last_applied(obj: dict[str, Any]) -> dict[str, Any] | None:
    raw = ((obj.get("metadata") or {}).get("annotations") or {}).get(LAST_APPLIED)
    if not raw:
        return None
    try:
        parsed = json.loads(raw)
    except ValueError:
        return None
    return parsed if isinstance(parsed, dict) else None


def with_last_applied(config: dict[str, Any]) -> dict[str, Any]:
    """`config` carrying itself (without the annotation) as the last-applied annotation."""
    clean = json.loads(json.dumps(config))
    annotations = (clean.get("metadata") or {}).get("annotations") or {}
    annotations.pop(LAST_APPLIED, None)
    if not annotations and "annotations" in (clean.get("metadata") or {}):
        del clean["metadata"]["annotations"]
    text = json.dumps(clean, sort_keys=True, separators=(",", ":"))
    out = json.loads(json.dumps(clean))
    out.setdefault("metadata", {}).setdefault("annotations", {})[LAST_APPLIED] = text + "\n"
    return out


def _covers(config: Any, live: Any) -> bool:
    """Whether `live` already says everything `config` says; it may say more (defaults
    the server filled in, e.g. a port's protocol), which is not a difference."""
    if isinstance(config, dict):
        return isinstance(live, dict) and all(k in live and _covers(v, live[k]) for k, v in config.items())
    if isinstance(config, list):
        return (isinstance(live, list) and len(config) == len(live)
                and all(_covers(c, v) for c, v in zip(config, live, strict=True)))
    return bool(config == live and type(config) is type(live))


def three_way_patch(original: dict[str, Any] | None, modified: dict[str, Any],
                    current: dict[str, Any]) -> dict[str, Any]:
    """The merge patch that takes `current` to what `modified` asks for; {} if none."""
    patch: dict[str, Any] = {}
    original = original or {}
    for key, value in modified.items():
        live = current.get(key)
        if isinstance(value, dict) and isinstance(live, dict):
            sub = three_way_patch(original.get(key) if isinstance(original.get(key), dict) else None,
                                  value, live)
            if sub:
                patch[key] = sub
        elif not _covers(value, live):
            patch[key] = value
    for key in original:
        if key not in modified and key in current:
            patch[key] = None
    return patch
