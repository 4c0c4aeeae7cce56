"""Builders of valid objects that validation tests then break one field at a time."""

from __future__ import annotations

from typing import Any

from netplane.model import apply_defaults, validate


def valid_service(**spec: Any) -> dict[str, Any]:
    obj = {"apiVersion": "v1", "kind": "Service",
           "metadata": {"name": "web", "namespace": "default"},
           "spec": {"selector": {"app": "web"},
                    "ports": [{"name": "http", "port": 80, "targetPort": 8080}], **spec}}
    apply_defaults(obj)
    return obj


def valid_pod(**spec: Any) -> dict[str, Any]:
    obj = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": "web-1", "namespace": "default", "labels": {"app": "web"}},
           "spec": {"containers": [{"name": "app", "image": "busybox:1",
                                    "ports": [{"name": "http", "containerPort": 8080}]}],
                    **spec}}
    apply_defaults(obj)
    return obj


def messages(obj: dict[str, Any]) -> list[str]:
    return [str(e) for e in validate(obj)]
