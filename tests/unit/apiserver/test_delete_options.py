"""DeleteOptions checks and the garbage collector's finalizers that a deletion leaves
(pure: Kubernetes' ValidateDeleteOptions and deletionFinalizersForGarbageCollection)."""

from __future__ import annotations

from typing import Any

import pytest

from control.apiserver.errors import ApiError
from control.apiserver.resources import by_kind
from control.apiserver.strategies import (
    GARBAGE_COLLECTED_KINDS,
    deletion_finalizers,
    validate_delete_options,
)
from control.controllers.garbagecollector import WATCHED

DEPLOYMENT = by_kind("apps/v1", "Deployment")
CONFIGMAP = by_kind("v1", "ConfigMap")


def rejected(options: dict[str, Any]) -> ApiError:
    with pytest.raises(ApiError) as caught:
        validate_delete_options(options)
    return caught.value


@pytest.mark.parametrize("options", [
    {}, {"propagationPolicy": "Orphan"}, {"propagationPolicy": "Background"},
    {"propagationPolicy": "Foreground"}, {"orphanDependents": True},
    {"orphanDependents": False}, {"orphanDependents": None, "propagationPolicy": "Orphan"},
])
def test_known_policies_and_the_legacy_flag_alone_are_accepted(options: dict[str, Any]) -> None:
    validate_delete_options(options)


def test_an_unknown_policy_is_invalid_with_the_supported_values_named() -> None:
    err = rejected({"propagationPolicy": "Cascade"})
    assert (err.code, err.reason) == (422, "Invalid")
    assert err.message == ('DeleteOptions.meta.k8s.io "" is invalid: propagationPolicy: Unsupported '
                           'value: "Cascade": supported values: "Foreground", "Background", '
                           '"Orphan", "nil"')
    status = err.status()
    assert status["details"]["kind"] == "DeleteOptions"
    assert status["details"]["group"] == "meta.k8s.io"
    assert [(c["reason"], c["field"]) for c in status["details"]["causes"]] == [
        ("FieldValueNotSupported", "propagationPolicy")]


def test_the_legacy_flag_and_a_policy_together_are_invalid() -> None:
    err = rejected({"orphanDependents": False, "propagationPolicy": "Foreground"})
    assert (err.code, err.reason) == (422, "Invalid")
    assert "orphanDependents and deletionPropagation cannot be both set" in err.message
    assert [c["reason"] for c in err.status()["details"]["causes"]] == ["FieldValueInvalid"]


def test_both_mistakes_at_once_are_both_reported() -> None:
    err = rejected({"orphanDependents": True, "propagationPolicy": "Sometimes"})
    assert err.message.startswith('DeleteOptions.meta.k8s.io "" is invalid: [')
    assert len(err.status()["details"]["causes"]) == 2


@pytest.mark.parametrize("options", [{"orphanDependents": "yes"}, {"propagationPolicy": 3}])
def test_a_value_of_the_wrong_type_is_a_bad_request(options: dict[str, Any]) -> None:
    err = rejected(options)
    assert (err.code, err.reason) == (400, "BadRequest")


@pytest.mark.parametrize(("finalizers", "options", "want"), [
    ([], {}, []),
    ([], {"propagationPolicy": "Background"}, []),
    ([], {"propagationPolicy": "Orphan"}, ["orphan"]),
    ([], {"propagationPolicy": "Foreground"}, ["foregroundDeletion"]),
    ([], {"orphanDependents": True}, ["orphan"]),
    ([], {"orphanDependents": False}, []),
    # Other finalizers stay, in their order; the policy's own goes last.
    (["example.com/hold"], {"propagationPolicy": "Orphan"}, ["example.com/hold", "orphan"]),
    # The request's policy replaces the one already on the object (a second delete).
    (["orphan"], {"propagationPolicy": "Foreground"}, ["foregroundDeletion"]),
    (["foregroundDeletion", "x.io/y"], {"propagationPolicy": "Background"}, ["x.io/y"]),
    (["orphan"], {"orphanDependents": False}, []),
    # Without a policy in the request, a finalizer set on the object decides.
    (["orphan"], {}, ["orphan"]),
    (["foregroundDeletion"], {"gracePeriodSeconds": 0}, ["foregroundDeletion"]),
])
def test_the_policy_decides_the_garbage_collection_finalizers(
        finalizers: list[str], options: dict[str, Any], want: list[str]) -> None:
    assert DEPLOYMENT is not None
    assert deletion_finalizers(DEPLOYMENT, finalizers, options) == want


def test_an_unchanged_set_is_returned_as_given() -> None:
    assert DEPLOYMENT is not None
    given = ["orphan", "x.io/y"]
    assert deletion_finalizers(DEPLOYMENT, given, {"propagationPolicy": "Orphan"}) is given


def test_kinds_the_collector_does_not_watch_get_no_finalizer_that_would_hold_them_forever() -> None:
    assert CONFIGMAP is not None
    assert deletion_finalizers(CONFIGMAP, [], {"propagationPolicy": "Orphan"}) == []
    assert deletion_finalizers(CONFIGMAP, [], {"propagationPolicy": "Foreground"}) == []


def test_the_apiserver_and_the_garbage_collector_agree_on_the_collected_kinds() -> None:
    assert {kind for _v, kind, _path in WATCHED} == GARBAGE_COLLECTED_KINDS
