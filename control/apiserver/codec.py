"""Stored bytes <-> API objects: the resourceVersion lives in the store, not the bytes."""

from __future__ import annotations

from typing import Any

import orjson

from control.store import KeyValue


def decode_kv(kv: KeyValue) -> dict[str, Any]:
    obj = orjson.loads(kv.value)
    obj["metadata"]["resourceVersion"] = str(kv.mod_revision)
    return obj


def encode(obj: dict[str, Any]) -> bytes:
    """The stored form: the object without its resourceVersion, which the store's revision
    gives back on every read (as Kubernetes' etcd3 storage does)."""
    meta = obj["metadata"]
    rv = meta.pop("resourceVersion", None)
    try:
        # Sorted keys: a canonical form, so an update that changes nothing is seen as a
        # no-op whatever order the client wrote its fields in.
        return orjson.dumps(obj, option=orjson.OPT_SORT_KEYS)
    finally:
        if rv is not None:
            meta["resourceVersion"] = rv
