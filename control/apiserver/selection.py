"""`labelSelector` and `fieldSelector` of a list or watch, as one object filter."""

from __future__ import annotations

from typing import Any

from control.apiserver import errors
from control.apiserver.resources import ResourceInfo
from netplane.model.fields import FieldSelector, parse_field_selector
from netplane.model.selectors import Selector, SelectorError, parse_selector


class ObjectFilter:
    """Whether an object is in a list or watch; `everything` when no selector narrows it."""

    __slots__ = ("_fields", "_labels", "_res", "everything")

    def __init__(self, res: ResourceInfo, label_selector: str = "", field_selector: str = "") -> None:
        self._res = res
        self._labels: Selector | None = None
        self._fields: FieldSelector | None = None
        try:
            if label_selector.strip():
                self._labels = parse_selector(label_selector)
            if field_selector.strip():
                self._fields = parse_field_selector(field_selector)
        except SelectorError as exc:
            raise errors.bad_request(f"unable to parse requirement: {exc}") from exc
        if self._fields is not None:
            supported = res.field_values({"metadata": {}})
            for name in self._fields.fields():
                if name not in supported:
                    raise errors.bad_request(
                        f'"{name}" is not a known field selector: only "'
                        + '", "'.join(sorted(supported)) + '"')
        self.everything = self._labels is None and self._fields is None

    def matches(self, obj: dict[str, Any]) -> bool:
        if self.everything:
            return True
        if self._labels is not None:
            labels = (obj.get("metadata") or {}).get("labels") or {}
            if not self._labels.matches(labels):
                return False
        if self._fields is not None:
            return self._fields.matches(self._res.field_values(obj))
        return True
