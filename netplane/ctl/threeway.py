"""kubectl's client-side apply patch: Kubernetes' three-way strategic merge patch, ported
from k8s.io/apimachinery/pkg/util/strategicpatch (CreateThreeWayMergePatch), so the
same three inputs give the same patch body kubectl would send.

From the last applied configuration (original), the new configuration (modified) and
the live object (current): the patch is the delta from current to modified *without*
deletions, plus the deletions from original to modified. Fields nobody applied —
defaults, allocations, other writers' fields — are left alone. Lists whose field has a
merge key (a Service's ports by `port`, containers by `name`) are merged element by
element with `$setElementOrder` and `$patch: delete` directives; other lists are
replaced whole. With no patch metadata (`schema=None`, kinds the client does not know)
the result is a JSON merge patch, as kubectl computes for custom resources.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, Protocol

from netplane.ctl.gofmt import go_value

LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
_RETAIN_KEYS = "$retainKeys"
_DELETE_PRIMITIVE = "$deleteFromPrimitiveList/"
_SET_ORDER = "$setElementOrder/"


class PatchSchema(Protocol):
    """Patch metadata of one struct type (Kubernetes' `patchStrategy`/`patchMergeKey` tags)."""

    def lookup(self, key: str) -> PatchField: ...


class PatchField(Protocol):
    @property
    def strategies(self) -> tuple[str, ...]: ...

    @property
    def merge_key(self) -> str: ...

    @property
    def value_schema(self) -> PatchSchema: ...


class PatchError(ValueError):
    """The configuration cannot be patched this way (a merge-list element lacks its key)."""


class _NoSchema:
    """Every field untagged: maps merge, lists are replaced (JSON merge patch)."""

    strategies: tuple[str, ...] = ()
    merge_key = ""

    def lookup(self, key: str) -> _NoSchema:
        return self

    @property
    def value_schema(self) -> _NoSchema:
        return self


# --- the last-applied annotation --------------------------------------------------------


def go_json(value: Any) -> str:
    """`value` as Go's json.Marshal writes it: compact, keys sorted, <>& and U+2028/9
    escaped, other non-ASCII kept; kubectl stores the annotation in this form."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    for char, escape in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"),
                         ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        text = text.replace(char, escape)
    return text


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
    """kubectl's GetModifiedConfiguration: `config` carrying, as its last-applied
    annotation, itself serialized without that annotation (an empty `annotations` map
    stays, as kubectl leaves it)."""
    clean = json.loads(json.dumps(config))
    meta = clean.setdefault("metadata", {})
    annotations = meta.get("annotations") or {}
    annotations.pop(LAST_APPLIED, None)
    meta["annotations"] = annotations
    text = go_json(clean) + "\n"
    out = json.loads(json.dumps(clean))
    out["metadata"]["annotations"][LAST_APPLIED] = text
    return out


# --- diff -----------------------------------------------------------------------------




def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    return type(value).__name__


def json_equal(a: Any, b: Any) -> bool:
    """Deep equality of decoded JSON (true is not 1; 1 is 1.0)."""
    if _json_type(a) != _json_type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(json_equal(v, b[k]) for k, v in a.items())
    if isinstance(a, list):
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def _strategy(field: PatchField) -> tuple[bool, str]:
    rest = [s for s in field.strategies if s != "retainKeys"]
    return "retainKeys" in field.strategies, (rest[0] if rest else "")


def _diff_maps(original: dict[str, Any], modified: dict[str, Any], schema: PatchSchema, *,
               ignore_deletions: bool, ignore_changes: bool, retain_keys: bool = False) -> dict[str, Any]:
    patch: dict[str, Any] = {}
    retain: list[str] = []
    opts = {"ignore_deletions": ignore_deletions, "ignore_changes": ignore_changes}
    for key, mod in modified.items():
        if retain_keys and mod is not None:
            retain.append(key)
        if key not in original:
            if not ignore_changes:
                patch[key] = mod
            continue
        orig = original[key]
        if _json_type(orig) != _json_type(mod):
            if not ignore_changes:
                patch[key] = mod
            continue
        field = schema.lookup(key)
        keeps, strategy = _strategy(field)
        if isinstance(orig, dict):
            if strategy == "replace":
                if not ignore_changes and not json_equal(orig, mod):
                    patch[key] = mod
                continue
            sub = _diff_maps(orig, mod, field.value_schema, retain_keys=keeps, **opts)
            if sub:
                patch[key] = sub
        elif isinstance(orig, list) and strategy == "merge":
            _diff_merge_list(key, orig, mod, field, patch, retain_keys=keeps, **opts)
        elif not ignore_changes and not json_equal(orig, mod):
            patch[key] = mod
    if not ignore_deletions:
        for key in original:
            if key not in modified:
                patch[key] = None
    has_new = any(v is not None and k not in modified for k, v in original.items())
    if retain and (patch or has_new):
        patch[_RETAIN_KEYS] = sorted(retain)
    return patch


def _diff_merge_list(key: str, original: list[Any], modified: list[Any], field: PatchField,
                     patch: dict[str, Any], *, ignore_deletions: bool, ignore_changes: bool,
                     retain_keys: bool) -> None:
    if not original and not modified:
        return
    first = (original or modified)[0]
    if isinstance(first, list):
        raise PatchError(f"{key}: lists of lists cannot be merged")
    if isinstance(first, dict):
        merge_key = field.merge_key
        if not merge_key:
            raise PatchError(f"{key}: a list of objects needs a merge key to merge")
        changes, deletions = _diff_lists_of_maps(
            key, original, modified, field.value_schema, merge_key, ignore_deletions=ignore_deletions,
            ignore_changes=ignore_changes, retain_keys=retain_keys)
        changes = _order_like(changes, modified, merge_key) + deletions
        same_order = len(original) == len(modified) and all(
            go_value(o.get(merge_key)) == go_value(m.get(merge_key))
            for o, m in zip(original, modified, strict=True))
        if changes:
            patch[key] = changes
        if (not ignore_changes and (changes or not same_order)) or (not ignore_deletions and changes):
            patch[_SET_ORDER + key] = [{merge_key: m[merge_key]} for m in modified]
        return
    added, removed = _diff_scalars(original, modified, ignore_deletions=ignore_deletions,
                                   ignore_changes=ignore_changes)
    if added:
        patch[key] = added
    if removed:
        patch[_DELETE_PRIMITIVE + key] = removed
    if (not ignore_deletions and removed) or (not ignore_changes and not json_equal(original, modified)):
        patch[_SET_ORDER + key] = modified


def _keyed(items: list[Any], key: str, where: str) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for item in items:
        if not isinstance(item, dict) or key not in item:
            raise PatchError(f"an element of {where} has no {key} (its merge key): {go_json(item)}")
        out.append((go_value(item[key]), item))
    return sorted(out, key=lambda pair: pair[0])


def _diff_lists_of_maps(where: str, original: list[Any], modified: list[Any], schema: PatchSchema,
                        merge_key: str, *, ignore_deletions: bool, ignore_changes: bool,
                        retain_keys: bool) -> tuple[list[Any], list[Any]]:
    orig, mod = _keyed(original, merge_key, where), _keyed(modified, merge_key, where)
    changes: list[Any] = []
    deletions: list[Any] = []
    i = j = 0
    while i < len(orig) or j < len(mod):
        if i < len(orig) and j < len(mod) and orig[i][0] == mod[j][0]:
            sub = _diff_maps(orig[i][1], mod[j][1], schema, ignore_deletions=ignore_deletions,
                             ignore_changes=ignore_changes, retain_keys=retain_keys)
            if sub:
                sub[merge_key] = mod[j][1][merge_key]
                changes.append(sub)
            i, j = i + 1, j + 1
        elif i >= len(orig) or (j < len(mod) and orig[i][0] > mod[j][0]):
            if not ignore_changes:
                changes.append(mod[j][1])
            j += 1
        else:
            if not ignore_deletions:
                deletions.append({merge_key: orig[i][1][merge_key], "$patch": "delete"})
            i += 1
    return changes, deletions


def _diff_scalars(original: list[Any], modified: list[Any], *, ignore_deletions: bool,
                  ignore_changes: bool) -> tuple[list[Any], list[Any]]:
    orig = sorted(original, key=go_value)
    mod = sorted(modified, key=go_value)
    added: list[Any] = []
    removed: list[Any] = []
    i = j = 0
    while i < len(orig) or j < len(mod):
        o = go_value(orig[i]) if i < len(orig) else None
        m = go_value(mod[j]) if j < len(mod) else None
        if o is not None and m is not None and o == m:
            i, j = i + 1, j + 1
        elif m is None or (o is not None and o < m):
            if not ignore_deletions:
                removed.append(orig[i])
            i += 1
        else:
            if not ignore_changes:
                added.append(mod[j])
            j += 1
    added = _order_scalars(added, modified)
    return added, _dedupe(removed)


def _dedupe(items: list[Any]) -> list[Any]:
    out: list[Any] = []
    for item in items:
        if not any(json_equal(item, seen) for seen in out):
            out.append(item)
    return out


def _index_of(order: list[Any], item: Any, key: Callable[[Any], str]) -> int:
    wanted = key(item)
    return next((n for n, o in enumerate(order) if key(o) == wanted), -1)


def _order_like(items: list[dict[str, Any]], order: list[Any], merge_key: str) -> list[dict[str, Any]]:
    """normalizeSliceOrder: `items` in the order of `order` (by merge key); deletions last."""
    def key(v: Any) -> str:
        return go_value(v.get(merge_key)) if isinstance(v, dict) else go_value(v)

    plain = [x for x in items if x.get("$patch") != "delete"]
    plain.sort(key=lambda x: _index_of(order, x, key))
    return plain + [x for x in items if x.get("$patch") == "delete"]


def _order_scalars(items: list[Any], order: list[Any]) -> list[Any]:
    return sorted(items, key=lambda x: _index_of(order, x, go_value))


# --- merging the deletions patch with the delta patch ----------------------------------


def _merge_patches(first: dict[str, Any], second: dict[str, Any], schema: PatchSchema) -> dict[str, Any]:
    """mergeMap(deletions, delta) with kubectl's MergeOptions{}: the two patches touch
    disjoint leaves, so this is a union that pairs up merge-list elements by key and
    orders them as their `$setElementOrder` says (mergePatchIntoOriginal)."""
    out = dict(first)
    for key, value in second.items():
        if key.startswith((_SET_ORDER, _DELETE_PRIMITIVE)) or key == _RETAIN_KEYS:
            out.setdefault(key, value)
            continue
        if key not in out or value is None or _json_type(out[key]) != _json_type(value):
            out[key] = value
            continue
        field = schema.lookup(key)
        _, strategy = _strategy(field)
        if isinstance(value, dict):
            out[key] = value if strategy == "replace" else _merge_patches(out[key], value,
                                                                           field.value_schema)
        elif isinstance(value, list) and strategy == "merge":
            order = second.get(_SET_ORDER + key, first.get(_SET_ORDER + key))
            out[key] = _merge_lists(out[key], value, field, order if isinstance(order, list) else value)
        else:
            out[key] = value
    return out


def _merge_lists(first: list[Any], second: list[Any], field: PatchField, order: list[Any]) -> list[Any]:
    if not (first or second):
        return first
    sample = (first or second)[0]
    if not isinstance(sample, dict):
        merged = _dedupe(first + second)
        wanted = {go_value(v) for v in order}
        return (_order_scalars([v for v in merged if go_value(v) in wanted], order)
                + [v for v in merged if go_value(v) not in wanted])
    mk = field.merge_key
    merged = [dict(x) for x in first]
    for item in second:
        n = _index_of(merged, item, lambda v: go_value(v.get(mk)))
        if n >= 0:
            merged[n] = _merge_patches(merged[n], item, field.value_schema)
        else:
            merged.append(item)
    # Items the new configuration lists go in its order; the rest (deletions) after them.
    wanted = {go_value(x.get(mk)) for x in order if isinstance(x, dict)}
    in_order = _order_like([x for x in merged if go_value(x.get(mk)) in wanted], order, mk)
    others = _order_like([x for x in merged if go_value(x.get(mk)) not in wanted], first, mk)
    return _merge_sorted(others, in_order, first, mk)


def _merge_sorted(left: list[Any], right: list[Any], order: list[Any], mk: str) -> list[Any]:
    """mergeSortedSlice: interleave by the position in `order` where both items have one."""
    def pos(v: Any) -> int:
        return _index_of(order, v, lambda x: go_value(x.get(mk)))

    out: list[Any] = []
    i = j = 0
    while i < len(left) or j < len(right):
        take_left = j >= len(right) or (i < len(left) and 0 <= pos(left[i]) < pos(right[j]))
        if take_left:
            out.append(left[i])
            i += 1
        else:
            out.append(right[j])
            j += 1
    return out


def three_way_patch(original: dict[str, Any] | None, modified: dict[str, Any], current: dict[str, Any],
                    schema: PatchSchema | None = None) -> dict[str, Any]:
    """The patch that takes `current` to what `modified` asks for, deleting what `original`
    had and `modified` dropped; {} when there is nothing to do. With a `schema` it is a
    strategic merge patch, without one a JSON merge patch."""
    s: PatchSchema = schema if schema is not None else _NoSchema()
    delta = _diff_maps(current, modified, s, ignore_deletions=True, ignore_changes=False)
    deletions = _diff_maps(original or {}, modified, s, ignore_deletions=False, ignore_changes=True)
    return _merge_patches(deletions, delta, s)
