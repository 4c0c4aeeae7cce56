"""core/v1 Secret and ConfigMap validation."""

from __future__ import annotations

import base64
import binascii

from netplane.model.fielderrors import FieldError, forbidden, invalid, required, too_long
from netplane.model.names import is_config_map_key
from netplane.model.validation.meta import (
    Obj,
    as_dict,
    immutable,
    object_meta,
    object_meta_update,
)

MAX_SECRET_SIZE = 1024 * 1024
TLS_CERT_KEY = "tls.crt"
TLS_PRIVATE_KEY_KEY = "tls.key"
_IMMUTABLE_MSG = "field is immutable when `immutable` is set"


def _decoded_length(value: object) -> int | None:
    """Length of a base64 value in bytes, or None when it is not valid base64."""
    if not isinstance(value, str):
        return None
    try:
        return len(base64.b64decode(value, validate=True))
    except (binascii.Error, ValueError):
        return None


def validate_secret(obj: Obj) -> list[FieldError]:
    errs = object_meta(obj, namespaced=True)
    data, string_data = as_dict(obj.get("data")), as_dict(obj.get("stringData"))
    total = 0
    for key, value in data.items():
        errs.extend(invalid(f"data[{key}]", key, msg) for msg in is_config_map_key(key))
        size = _decoded_length(value)
        if size is None:
            # Kubernetes rejects this while decoding the request; here it is a field error.
            errs.append(invalid(f"data[{key}]", "<value omitted>", "must be base64-encoded"))
        else:
            total += size
    for key, value in string_data.items():
        errs.extend(invalid(f"stringData[{key}]", key, msg) for msg in is_config_map_key(key))
        total += len(str(value).encode())
    if total > MAX_SECRET_SIZE:
        errs.append(too_long("data", MAX_SECRET_SIZE))
    if obj.get("type") == "kubernetes.io/tls":
        for key in (TLS_CERT_KEY, TLS_PRIVATE_KEY_KEY):
            if key not in data and key not in string_data:
                errs.append(required(f"data[{key}]"))
    return errs


def _immutable_data(new: Obj, old: Obj, keys: tuple[str, ...]) -> list[FieldError]:
    if old.get("immutable") is not True:
        return []
    errs: list[FieldError] = []
    if new.get("immutable") is not True:
        errs.append(forbidden("immutable", _IMMUTABLE_MSG))
    errs.extend(forbidden(key, _IMMUTABLE_MSG) for key in keys
                if as_dict(new.get(key)) != as_dict(old.get(key)))
    return errs


def validate_secret_update(new: Obj, old: Obj) -> list[FieldError]:
    errs = object_meta_update(new, old)
    errs.extend(_immutable_data(new, old, ("data",)))
    errs.extend(immutable(new.get("type"), old.get("type"), "type"))
    errs.extend(validate_secret(new))
    return errs


def validate_config_map(obj: Obj) -> list[FieldError]:
    errs = object_meta(obj, namespaced=True)
    data, binary = as_dict(obj.get("data")), as_dict(obj.get("binaryData"))
    total = 0
    for key, value in data.items():
        errs.extend(invalid(f"data[{key}]", key, msg) for msg in is_config_map_key(key))
        total += len(str(value).encode())
    for key, value in binary.items():
        errs.extend(invalid(f"binaryData[{key}]", key, msg) for msg in is_config_map_key(key))
        if key in data:
            errs.append(invalid(f"binaryData[{key}]", key, "duplicate of key present in data"))
        size = _decoded_length(value)
        if size is None:
            errs.append(invalid(f"binaryData[{key}]", "<value omitted>",
                                "must be base64-encoded"))
        else:
            total += size
    if total > MAX_SECRET_SIZE:
        errs.append(too_long("", MAX_SECRET_SIZE))
    return errs


def validate_config_map_update(new: Obj, old: Obj) -> list[FieldError]:
    errs = object_meta_update(new, old)
    errs.extend(_immutable_data(new, old, ("data", "binaryData")))
    errs.extend(validate_config_map(new))
    return errs
