"""Field errors and the Invalid summary read exactly like Kubernetes'."""

from __future__ import annotations

import pytest

from netplane.model import FieldError, summarize
from netplane.model.fielderrors import (
    duplicate,
    forbidden,
    invalid,
    not_supported,
    required,
    too_long,
    too_many,
)


@pytest.mark.parametrize(("error", "message"), [
    (invalid("spec.ports[0].port", 0, "must be between 1 and 65535, inclusive"),
     "Invalid value: 0: must be between 1 and 65535, inclusive"),
    (invalid("metadata.name", "Web", "bad"), 'Invalid value: "Web": bad'),
    (invalid("x", True, "bad"), "Invalid value: true: bad"),
    (invalid("x", None, "bad"), 'Invalid value: "null": bad'),
    (invalid("x", ["a", "b"], "bad"), 'Invalid value: ["a","b"]: bad'),
    (not_supported("spec.ports[0].protocol", "FOO", ["SCTP", "TCP", "UDP"]),
     'Unsupported value: "FOO": supported values: "SCTP", "TCP", "UDP"'),
    (required("spec.ports"), "Required value"),
    (required("metadata.name", "name or generateName is required"),
     "Required value: name or generateName is required"),
    (duplicate("spec.ports[1].name", "http"), 'Duplicate value: "http"'),
    (forbidden("spec.clusterIPs", "may not be set for ExternalName services"),
     "Forbidden: may not be set for ExternalName services"),
    (too_long("metadata.annotations", 262144), "Too long: may not be more than 262144 bytes"),
    (too_many("endpoints", 1001, 1000), "Too many: 1001: must have at most 1000 items"),
])
def test_error_bodies_match_kubernetes(error: FieldError, message: str) -> None:
    assert error.message == message


def test_error_types_are_kubernetes_cause_types() -> None:
    assert required("a").type == "FieldValueRequired"
    assert invalid("a", 1, "x").type == "FieldValueInvalid"
    assert not_supported("a", "x", []).type == "FieldValueNotSupported"
    assert duplicate("a", 1).type == "FieldValueDuplicate"
    assert forbidden("a", "x").type == "FieldValueForbidden"
    assert too_long("a", 1).type == "FieldValueTooLong"


def test_a_single_error_is_summarized_without_brackets() -> None:
    err = invalid("spec.ports[0].port", 0, "must be between 1 and 65535, inclusive")
    assert summarize("Service", "web", [err]) == (
        'Service "web" is invalid: spec.ports[0].port: Invalid value: 0: must be between 1 '
        "and 65535, inclusive")


def test_several_errors_are_bracketed_and_repeats_shown_once() -> None:
    a = required("spec.ports")
    b = not_supported("spec.type", "X", ["ClusterIP"])
    assert summarize("Service", "web", [a, b, a]) == (
        'Service "web" is invalid: [spec.ports: Required value, spec.type: Unsupported '
        'value: "X": supported values: "ClusterIP"]')
