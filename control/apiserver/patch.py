"""The three PATCH content types of the Kubernetes API, as pure functions on JSON values.

- `application/json-patch+json`: RFC 6902 (`apply_json_patch`)
- `application/merge-patch+json`: RFC 7386 (`apply_merge_patch`)
- `application/strategic-merge-patch+json`: Kubernetes' strategic merge patch
  (`apply_strategic_merge_patch`), ported from k8s.io/apimachinery/pkg/util/strategicpatch
  with the options the apiserver uses (MergeParallelList, IgnoreUnmatchedNulls).

Inputs are never mutated. Every malformed patch raises `PatchError`.
"""

from __future__ import annotations

import json
from typing import Any

from control.apiserver.codec import json_copy
from control.apiserver.patchmeta import Field, Schema, meta_for

__all__ = [
    "PatchError",
    "apply_json_patch",
    "apply_merge_patch",
    "apply_strategic_merge_patch",
    "meta_for",
]


class PatchError(ValueError):
    """A patch that cannot be applied; the apiserver answers it with a 422 Status."""


def _equal(a: Any, b: Any) -> bool:
    """JSON equality: unlike Python's ==, true is not 1."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, dict):
        return (isinstance(b, dict) and a.keys() == b.keys()
                and all(_equal(v, b[k]) for k, v in a.items()))
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(map(_equal, a, b))
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    return type(a) is type(b) and a == b


def _result(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise PatchError("the patched object must be a JSON object")
    return value


# --- RFC 6902 JSON patch -------------------------------------------------------------


def _pointer(path: Any) -> list[str]:
    if not isinstance(path, str):
        raise PatchError(f"a JSON pointer must be a string, not {path!r}")
    if path == "":
        return []
    if not path.startswith("/"):
        raise PatchError(f'JSON pointer "{path}" must start with "/"')
    tokens = []
    for raw in path[1:].split("/"):
        # RFC 6901: "~1" is "/", "~0" is "~"; any other "~" escape is malformed.
        if "~" in raw.replace("~0", "").replace("~1", ""):
            raise PatchError(f'JSON pointer "{path}" has an invalid "~" escape')
        tokens.append(raw.replace("~1", "/").replace("~0", "~"))
    return tokens


def _index(token: str, size: int, *, allow_end: bool) -> int:
    if token == "-" and allow_end:
        return size
    # RFC 6901 array indexes: decimal digits, no sign, no leading zeros.
    if not token.isdigit() or not token.isascii() or (len(token) > 1 and token[0] == "0"):
        raise PatchError(f'"{token}" is not a valid array index')
    index = int(token)
    if index > size or (index == size and not allow_end):
        raise PatchError(f"array index {index} is out of bounds (length {size})")
    return index


def _walk(doc: Any, tokens: list[str], path: str) -> Any:
    node = doc
    for token in tokens:
        if isinstance(node, dict):
            if token not in node:
                raise PatchError(f'path "{path}" does not exist')
            node = node[token]
        elif isinstance(node, list):
            node = node[_index(token, len(node), allow_end=False)]
        else:
            raise PatchError(f'path "{path}" does not exist')
    return node


def _add(doc: Any, tokens: list[str], value: Any, path: str) -> Any:
    if not tokens:
        return value
    parent = _walk(doc, tokens[:-1], path)
    last = tokens[-1]
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list):
        parent.insert(_index(last, len(parent), allow_end=True), value)
    else:
        raise PatchError(f'cannot add at "{path}": its parent is not an object or array')
    return doc


def _remove(doc: Any, tokens: list[str], path: str) -> Any:
    if not tokens:
        raise PatchError("cannot remove the whole document")
    parent = _walk(doc, tokens[:-1], path)
    last = tokens[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise PatchError(f'cannot remove "{path}": it does not exist')
        return parent.pop(last)
    if isinstance(parent, list):
        return parent.pop(_index(last, len(parent), allow_end=False))
    raise PatchError(f'cannot remove "{path}": it does not exist')


def _member(op: dict[str, Any], name: str) -> Any:
    if name not in op:
        raise PatchError(f'operation {op.get("op")!r} is missing "{name}"')
    return op[name]


def apply_json_patch(doc: dict[str, Any], ops: list[Any]) -> dict[str, Any]:
    """Applies an RFC 6902 JSON patch; all operations succeed or none does."""
    if not isinstance(ops, list):
        raise PatchError("a JSON patch must be a list of operations")
    try:
        return _result(_apply_ops(json_copy(doc), ops))
    except RecursionError as exc:
        raise PatchError("the patch is nested too deeply") from exc


def _apply_ops(result: Any, ops: list[Any]) -> Any:
    for op in ops:
        if not isinstance(op, dict):
            raise PatchError(f"a JSON patch operation must be an object, not {op!r}")
        kind = _member(op, "op")
        path = _member(op, "path")
        tokens = _pointer(path)
        if kind == "add":
            result = _add(result, tokens, json_copy(_member(op, "value")), path)
        elif kind == "remove":
            _remove(result, tokens, path)
        elif kind == "replace":
            value = json_copy(_member(op, "value"))
            if tokens:
                _remove(result, tokens, path)
            result = _add(result, tokens, value, path)
        elif kind in ("move", "copy"):
            source = _member(op, "from")
            from_tokens = _pointer(source)
            if kind == "move":
                if tokens[: len(from_tokens)] == from_tokens and len(tokens) > len(from_tokens):
                    raise PatchError(f'cannot move "{source}" into its own child "{path}"')
                value = _remove(result, from_tokens, source) if from_tokens else result
            else:
                value = json_copy(_walk(result, from_tokens, source))
            result = _add(result, tokens, value, path)
        elif kind == "test":
            if not _equal(_walk(result, tokens, path), _member(op, "value")):
                raise PatchError(f'test failed: the value at "{path}" differs')
        else:
            raise PatchError(f"unknown JSON patch operation {kind!r}")
    return result


# --- RFC 7386 JSON merge patch -------------------------------------------------------


def _merge(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return json_copy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = _merge(out.get(key), value)
    return out


def apply_merge_patch(doc: dict[str, Any], patch: Any) -> dict[str, Any]:
    """Applies an RFC 7386 merge patch: null deletes, objects merge, anything else replaces."""
    if not isinstance(patch, dict):
        raise PatchError("a merge patch for an object must be a JSON object")
    try:
        return _result(_merge(doc, patch))
    except RecursionError as exc:
        raise PatchError("the patch is nested too deeply") from exc


# --- Kubernetes strategic merge patch ------------------------------------------------

_DIRECTIVE = "$patch"
_RETAIN_KEYS = "$retainKeys"
_DELETE_PREFIX = "$deleteFromPrimitiveList/"
_ORDER_PREFIX = "$setElementOrder/"


def apply_strategic_merge_patch(doc: dict[str, Any], patch: Any, meta: Schema) -> dict[str, Any]:
    """Applies a strategic merge patch, as kube-apiserver does for `kubectl apply` and `patch`."""
    if not isinstance(patch, dict):
        raise PatchError("a strategic merge patch must be a JSON object")
    try:
        # The port below mutates both sides freely, as Go's does; it works on copies.
        return _merge_map(json_copy(doc), json_copy(patch), meta)
    except RecursionError as exc:
        raise PatchError("the patch is nested too deeply") from exc


def _key(value: Any) -> tuple[str, Any]:
    """Go's == on decoded JSON: booleans, numbers and strings never equal each other."""
    if isinstance(value, bool):
        return ("b", value)
    if isinstance(value, int | float):
        return ("n", value)
    if isinstance(value, dict | list):
        return ("j", json.dumps(value, sort_keys=True))
    return (type(value).__name__, value)


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    return type(value).__name__


def _merge_map(original: dict[str, Any] | None, patch: dict[str, Any], schema: Schema) -> dict[str, Any]:
    if _DIRECTIVE in patch:
        directive = patch.pop(_DIRECTIVE)
        if directive == "replace":
            return _merge_map({}, patch, schema)
        if directive == "delete":
            return {}
        raise PatchError(f"unknown patch type {directive!r} in map")
    if original is None:
        original = {}
    _apply_retain_keys(original, patch)
    _merge_ordered_lists(original, patch, schema)
    for key, value in patch.items():
        # Other "$" keys are ordinary fields to Kubernetes too (e.g. JSON schema's "$ref").
        delete_list = key.startswith(_DELETE_PREFIX)
        if delete_list:
            key = _strip(key, _DELETE_PREFIX)
        if value is None:
            # IgnoreUnmatchedNulls: null deletes what exists and is otherwise dropped.
            original.pop(key, None)
            continue
        field = schema.lookup(key)
        current = original.get(key, _MISSING)
        if current is _MISSING or _kind(current) != _kind(value):
            if not delete_list:
                original[key] = _fresh(value, field)
            continue
        if isinstance(value, dict):
            if field.strategy == "replace":
                original[key] = _fresh(value, field)
            else:
                original[key] = _merge_map(current, value, field.value_schema)
        elif isinstance(value, list):
            original[key] = _merge_list(current, value, field, delete_list)
        else:
            original[key] = value
    return original


_MISSING = object()


def _fresh(value: Any, field: Field) -> Any:
    """A patch value with nothing to merge into: directives applied and stray nulls dropped."""
    if isinstance(value, dict):
        return _merge_map({}, value, field.value_schema)
    if isinstance(value, list):
        if field.strategy == "merge" and field.merge_key and all(isinstance(v, dict) for v in value):
            return _merge_slice([], value, field)
        return _fresh_items(value, field.value_schema)
    return value


def _fresh_items(items: list[Any], schema: Schema) -> list[Any]:
    # Go keeps such lists raw; decoding into typed structs then drops directives and
    # nulls, which is what storing the cleaned elements reproduces for schemaless JSON.
    return [_merge_map({}, v, schema) if isinstance(v, dict) else v for v in items]


def _strip(key: str, prefix: str) -> str:
    rest = key[len(prefix):]
    if not rest:
        raise PatchError(f"directive {key!r} names no field")
    return rest


def _apply_retain_keys(original: dict[str, Any], patch: dict[str, Any]) -> None:
    if _RETAIN_KEYS not in patch:
        return
    retain = patch.pop(_RETAIN_KEYS)
    if not isinstance(retain, list) or not all(isinstance(k, str) for k in retain):
        raise PatchError("$retainKeys must be a list of field names")
    keep = set(retain)
    for key, value in patch.items():
        if value is None or key.startswith((_DELETE_PREFIX, _ORDER_PREFIX)):
            continue
        if key not in keep:
            raise PatchError(f'field "{key}" is in the patch but not in $retainKeys')
    for key in [k for k in original if k not in keep]:
        del original[key]


def _merge_list(current: list[Any], patch: list[Any], field: Field, delete_list: bool) -> list[Any]:
    # Delete lists apply whatever the field's strategy (strategicpatch mergeSliceHandler).
    if field.strategy == "merge" or delete_list:
        return _merge_slice(current, patch, field, delete_list=delete_list)
    return _fresh_items(patch, field.value_schema)


def _element_kind(*lists: list[Any]) -> str:
    kind = ""
    for items in lists:
        for item in items:
            if item is None or isinstance(item, list):
                raise PatchError("lists of nulls or of lists cannot be merged")
            if kind and _kind(item) != kind:
                raise PatchError("list element types are not identical")
            kind = _kind(item)
    return kind


def _merge_slice(original: list[Any], patch: list[Any], field: Field, *, delete_list: bool = False,
                 ) -> list[Any]:
    if not original and not patch:
        return original
    kind = _element_kind(original, patch)
    key = field.merge_key
    if kind != "dict":
        if delete_list:
            doomed = {_key(v) for v in patch}
            return [v for v in original if _key(v) not in doomed]
        merged = _dedupe(original + patch)
        key = ""
    else:
        if not key:
            raise PatchError("cannot merge lists of objects without a merge key")
        original, patch = _special_elements(original, patch, key, field.value_schema)
        # A copy: Go appends to a new slice header, so `original` (the server's order
        # below) does not see the appended patch items.
        merged = _merge_elements(list(original), patch, key, field.value_schema)
    patch_items, server_only = _partition(merged, patch, key)
    return _normalize(patch_items, server_only, patch, original, key)


def _dedupe(items: list[Any]) -> list[Any]:
    seen: set[tuple[str, Any]] = set()
    out = []
    for item in items:
        if _key(item) not in seen:
            seen.add(_key(item))
            out.append(item)
    return out


def _merge_key_of(item: Any, key: str) -> tuple[str, Any]:
    if not isinstance(item, dict):
        raise PatchError(f"list element {item!r} is not an object")
    if key not in item:
        raise PatchError(f"list element does not contain declared merge key: {key}")
    return _key(item[key])


def _same_key(item: Any, key: str, wanted: tuple[str, Any]) -> bool:
    return isinstance(item, dict) and key in item and _key(item[key]) == wanted


def _special_elements(original: list[Any], patch: list[Any], key: str,
                      schema: Schema) -> tuple[list[Any], list[Any]]:
    plain: list[Any] = []
    replace = False
    for item in patch:
        if _DIRECTIVE not in item:
            plain.append(item)
            continue
        directive = item[_DIRECTIVE]
        if directive == "delete":
            doomed = _merge_key_of(item, key)
            original = [o for o in original if not _same_key(o, key, doomed)]
        elif directive == "replace":
            replace = True
        elif directive == "merge":
            raise PatchError("merging lists cannot yet be specified in the patch")
        else:
            raise PatchError(f"unknown patch type {directive!r} in list")
    if replace:
        # `{"$patch": "replace"}` in a list: the rest of the patch list is the new list.
        return [_merge_map({}, item, schema) for item in plain], []
    return original, plain


def _merge_elements(original: list[Any], patch: list[Any], key: str, schema: Schema) -> list[Any]:
    for item in patch:
        wanted = _merge_key_of(item, key)
        for i, existing in enumerate(original):
            if _same_key(existing, key, wanted):
                original[i] = _merge_map(existing, item, schema)
                break
        else:
            original.append(_merge_map({}, item, schema))
    return original


def _partition(merged: list[Any], by: list[Any], key: str) -> tuple[list[Any], list[Any]]:
    if key:
        present = {_merge_key_of(v, key) for v in by if isinstance(v, dict) and key in v}
        ident = [_merge_key_of(v, key) for v in merged]
    else:
        present = {_key(v) for v in by}
        ident = [_key(v) for v in merged]
    inside = [v for v, i in zip(merged, ident, strict=True) if i in present]
    outside = [v for v, i in zip(merged, ident, strict=True) if i not in present]
    return inside, outside


def _positions(order: list[Any], key: str) -> dict[tuple[str, Any], int]:
    positions: dict[tuple[str, Any], int] = {}
    for i, item in enumerate(order):
        if key and not (isinstance(item, dict) and key in item):
            continue
        positions.setdefault(_merge_key_of(item, key) if key else _key(item), i)
    return positions


def _normalize(patch_items: list[Any], server_only: list[Any], patch_order: list[Any],
               server_order: list[Any], key: str) -> list[Any]:
    """strategicpatch normalizeElementOrder: patch items keep the patch's order, items only
    on the server keep theirs, and the two are interleaved by the server's order."""
    def ident(item: Any) -> tuple[str, Any]:
        return _merge_key_of(item, key) if key else _key(item)

    def by(order: list[Any], items: list[Any]) -> list[Any]:
        positions = _positions(order, key)
        return sorted(items, key=lambda v: positions.get(ident(v), -1))

    left, right = by(server_order, server_only), by(patch_order, patch_items)
    server = _positions(server_order, key)
    out: list[Any] = []
    i = j = 0
    while i < len(left) or j < len(right):
        if j >= len(right):
            out.append(left[i])
            i += 1
        elif i >= len(left):
            out.append(right[j])
            j += 1
        else:
            li, ri = server.get(ident(left[i])), server.get(ident(right[j]))
            # mergeSortedSlice: a server-only item goes first only when both are on the
            # server and it came first there; otherwise the patch item goes first.
            if li is not None and ri is not None and li < ri:
                out.append(left[i])
                i += 1
            else:
                out.append(right[j])
                j += 1
    return out


def _merge_ordered_lists(original: dict[str, Any], patch: dict[str, Any], schema: Schema) -> None:
    """`$setElementOrder/<field>`: merge that list now, then order it as the directive says."""
    for directive in [k for k in patch if k.startswith(_ORDER_PREFIX)]:
        order = patch.pop(directive)
        name = _strip(directive, _ORDER_PREFIX)
        if not isinstance(order, list):
            raise PatchError(f"{directive} must be a list")
        field = schema.lookup(name)
        key = field.merge_key
        current, wanted = original.get(name, _MISSING), patch.get(name, _MISSING)
        if current is not _MISSING and not isinstance(current, list):
            raise PatchError(f'"{name}" is not a list')
        if wanted is not _MISSING and not isinstance(wanted, list):
            raise PatchError(f'"{name}" in the patch is not a list')
        _check_order(wanted if wanted is not _MISSING else [], order, key)
        if current is _MISSING and wanted is _MISSING:
            continue
        existing = list(current) if current is not _MISSING else []
        if wanted is _MISSING:
            merged = current
        elif current is _MISSING:
            merged = _fresh(wanted, field)
        else:
            merged = _merge_list(current, wanted, field, False)
        _element_kind(existing, wanted if wanted is not _MISSING else [])
        patch_items, server_only = _partition(merged, order, key)
        original[name] = _normalize(patch_items, server_only, order, existing, key)
        patch.pop(name, None)


def _check_order(patch_list: list[Any], order: list[Any], key: str) -> None:
    """The patch list's items must appear in `$setElementOrder`, in the same relative order."""
    items = [v for v in patch_list if not (isinstance(v, dict) and _DIRECTIVE in v)]
    if not items or not order:
        return
    j = 0
    for wanted in order:
        if j == len(items):
            break
        left = _merge_key_of(items[j], key) if key else _key(items[j])
        right = _merge_key_of(wanted, key) if key else _key(wanted)
        if left == right:
            j += 1
    if j < len(items):
        raise PatchError("the order in the patch list does not match its $setElementOrder list")

