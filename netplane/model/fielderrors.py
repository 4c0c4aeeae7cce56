"""Field errors worded like Kubernetes' (k8s.io/apimachinery/pkg/util/validation/field)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

REQUIRED = "FieldValueRequired"
INVALID = "FieldValueInvalid"
NOT_SUPPORTED = "FieldValueNotSupported"
DUPLICATE = "FieldValueDuplicate"
FORBIDDEN = "FieldValueForbidden"
TOO_LONG = "FieldValueTooLong"
TOO_MANY = "FieldValueTooMany"

_TYPE_TEXT = {
    REQUIRED: "Required value",
    INVALID: "Invalid value",
    NOT_SUPPORTED: "Unsupported value",
    DUPLICATE: "Duplicate value",
    FORBIDDEN: "Forbidden",
    TOO_LONG: "Too long",
    TOO_MANY: "Too many",
}

# Kubernetes omits the value from the message for these types.
_VALUELESS = {REQUIRED, FORBIDDEN, TOO_LONG}

FIELD_IMMUTABLE = "field is immutable"


def go_value(value: Any) -> str:
    """Render a bad value as Go's %v / %q would in a field error."""
    if value is None:
        return '"null"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str):
        return go_quote(value)
    return json.dumps(value, separators=(",", ":"), sort_keys=True, ensure_ascii=False)


def go_quote(value: str) -> str:
    """Go's %q for the strings netplane sees (JSON escaping, non-ASCII kept)."""
    return json.dumps(value, ensure_ascii=False)


@dataclass(frozen=True)
class FieldError:
    """One problem with one field; `type` is Kubernetes' StatusCause type."""

    type: str
    field: str
    bad_value: Any = None
    detail: str = ""

    @property
    def message(self) -> str:
        """Kubernetes' ErrorBody: the cause message without the field path."""
        text = _TYPE_TEXT.get(self.type, self.type)
        if self.type not in _VALUELESS:
            text = f"{text}: {go_value(self.bad_value)}"
        if self.detail:
            text = f"{text}: {self.detail}"
        return text

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


def required(field: str, detail: str = "") -> FieldError:
    return FieldError(REQUIRED, field, "", detail)


def invalid(field: str, value: Any, detail: str) -> FieldError:
    return FieldError(INVALID, field, value, detail)


def not_supported(field: str, value: Any, supported: list[str]) -> FieldError:
    detail = "supported values: " + ", ".join(go_quote(v) for v in supported)
    return FieldError(NOT_SUPPORTED, field, value, detail)


def duplicate(field: str, value: Any) -> FieldError:
    return FieldError(DUPLICATE, field, value)


def forbidden(field: str, detail: str) -> FieldError:
    return FieldError(FORBIDDEN, field, "", detail)


def too_long(field: str, max_length: int) -> FieldError:
    unit = "byte" if max_length == 1 else "bytes"
    return FieldError(TOO_LONG, field, "", f"may not be more than {max_length} {unit}")


def too_many(field: str, actual: int, max_items: int) -> FieldError:
    return FieldError(TOO_MANY, field, actual, f"must have at most {max_items} items")


def summarize(kind: str, name: str, errors: list[FieldError]) -> str:
    """Kubernetes' NewInvalid message: `Service "web" is invalid: <errors>`.

    Like field.ErrorList.ToAggregate, repeated messages are shown once, and several
    errors are bracketed."""
    seen: list[str] = []
    for err in errors:
        text = str(err)
        if text not in seen:
            seen.append(text)
    body = seen[0] if len(seen) == 1 else "[" + ", ".join(seen) + "]"
    return f"{kind} {go_quote(name)} is invalid: {body}"
