"""JSON patch (RFC 6902), merge patch (RFC 7386) and Kubernetes' strategic merge patch."""

from __future__ import annotations

import contextlib
import copy
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from control.apiserver.patch import (
    PatchError,
    apply_json_patch,
    apply_merge_patch,
    apply_strategic_merge_patch,
    meta_for,
)

POD = meta_for("", "Pod")
DEPLOYMENT = meta_for("apps", "Deployment")


# --- RFC 6902, appendix A ------------------------------------------------------------

RFC6902_OK = [
    ({"foo": "bar"}, [{"op": "add", "path": "/baz", "value": "qux"}], {"baz": "qux", "foo": "bar"}),
    ({"foo": ["bar", "baz"]}, [{"op": "add", "path": "/foo/1", "value": "qux"}],
     {"foo": ["bar", "qux", "baz"]}),
    ({"baz": "qux", "foo": "bar"}, [{"op": "remove", "path": "/baz"}], {"foo": "bar"}),
    ({"foo": ["bar", "qux", "baz"]}, [{"op": "remove", "path": "/foo/1"}], {"foo": ["bar", "baz"]}),
    ({"baz": "qux", "foo": "bar"}, [{"op": "replace", "path": "/baz", "value": "boo"}],
     {"baz": "boo", "foo": "bar"}),
    ({"foo": {"bar": "baz", "waldo": "fred"}, "qux": {"corge": "grault"}},
     [{"op": "move", "from": "/foo/waldo", "path": "/qux/thud"}],
     {"foo": {"bar": "baz"}, "qux": {"corge": "grault", "thud": "fred"}}),
    ({"foo": ["all", "grass", "cows", "eat"]}, [{"op": "move", "from": "/foo/1", "path": "/foo/3"}],
     {"foo": ["all", "cows", "eat", "grass"]}),
    ({"baz": "qux", "foo": ["a", 2, "c"]},
     [{"op": "test", "path": "/baz", "value": "qux"}, {"op": "test", "path": "/foo/1", "value": 2}],
     {"baz": "qux", "foo": ["a", 2, "c"]}),
    ({"foo": "bar"}, [{"op": "add", "path": "/child", "value": {"grandchild": {}}}],
     {"foo": "bar", "child": {"grandchild": {}}}),
    ({"foo": "bar"}, [{"op": "add", "path": "/baz", "value": "qux", "xyz": 123}],
     {"foo": "bar", "baz": "qux"}),
    ({"foo": ["bar"]}, [{"op": "add", "path": "/foo/-", "value": ["abc", "def"]}],
     {"foo": ["bar", ["abc", "def"]]}),
    ({"/": 9, "~1": 10}, [{"op": "test", "path": "/~01", "value": 10}], {"/": 9, "~1": 10}),
    ({"a/b": 1}, [{"op": "copy", "from": "/a~1b", "path": "/c"}], {"a/b": 1, "c": 1}),
    ({"a": 1}, [{"op": "add", "path": "/n", "value": None}], {"a": 1, "n": None}),
]


@pytest.mark.parametrize(("doc", "ops", "expected"), RFC6902_OK)
def test_json_patch_applies_the_rfc_6902_examples(doc: Any, ops: Any, expected: Any) -> None:
    before = copy.deepcopy(doc)
    assert apply_json_patch(doc, ops) == expected
    assert doc == before


RFC6902_ERRORS = [
    ({"foo": "bar"}, [{"op": "add", "path": "/baz/bat", "value": "qux"}]),  # A.12: no parent
    ({"/": 9, "~1": 10}, [{"op": "test", "path": "/~01", "value": "10"}]),  # A.15: string != number
    ({"baz": "qux"}, [{"op": "test", "path": "/baz", "value": "bar"}]),  # A.9
    ({"foo": ["a"]}, [{"op": "add", "path": "/foo/2", "value": 1}]),  # past the end
    ({"foo": ["a"]}, [{"op": "remove", "path": "/foo/1"}]),
    ({"foo": ["a"]}, [{"op": "remove", "path": "/foo/01"}]),  # leading zero
    ({"foo": ["a"]}, [{"op": "remove", "path": "/foo/-1"}]),
    ({"foo": 1}, [{"op": "remove", "path": "/bar"}]),
    ({"foo": 1}, [{"op": "replace", "path": "/bar", "value": 2}]),
    ({"foo": 1}, [{"op": "add", "path": "foo", "value": 2}]),  # not a pointer
    ({"foo": 1}, [{"op": "add", "path": "/~2", "value": 2}]),  # bad escape
    ({"foo": 1}, [{"op": "frobnicate", "path": "/foo"}]),
    ({"foo": 1}, [{"op": "add", "path": "/x"}]),  # no value
    ({"foo": 1}, [{"path": "/x", "value": 1}]),  # no op
    ({"foo": {"a": 1}}, [{"op": "move", "from": "/foo", "path": "/foo/a/b"}]),
    ({"foo": 1}, [{"op": "replace", "path": "", "value": [1]}]),  # an object stays an object
    ({"foo": True}, [{"op": "test", "path": "/foo", "value": 1}]),  # true is not 1
    ({"foo": 1}, ["add"]),
]


@pytest.mark.parametrize(("doc", "ops"), RFC6902_ERRORS)
def test_json_patch_rejects_invalid_operations_with_patch_error(doc: Any, ops: Any) -> None:
    with pytest.raises(PatchError):
        apply_json_patch(doc, ops)


def test_json_patch_is_atomic_and_leaves_the_input_alone() -> None:
    doc = {"a": [1, 2]}
    with pytest.raises(PatchError):
        apply_json_patch(doc, [{"op": "remove", "path": "/a/0"}, {"op": "remove", "path": "/zz"}])
    assert doc == {"a": [1, 2]}


# --- RFC 7386, appendix A ------------------------------------------------------------

RFC7386 = [
    ({"a": "b"}, {"a": "c"}, {"a": "c"}),
    ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
    ({"a": "b"}, {"a": None}, {}),
    ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
    ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
    ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
    ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
    ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
    ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
    ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
    ({"a": "foo"}, {"a": {"b": None}}, {"a": {}}),
]


@pytest.mark.parametrize(("doc", "patch", "expected"), RFC7386)
def test_merge_patch_applies_the_rfc_7386_examples(doc: Any, patch: Any, expected: Any) -> None:
    before = copy.deepcopy(doc)
    assert apply_merge_patch(doc, patch) == expected
    assert doc == before


def test_merge_patch_replaces_lists_even_where_strategic_merge_would_merge() -> None:
    doc = {"metadata": {"finalizers": ["a"]}}
    assert apply_merge_patch(doc, {"metadata": {"finalizers": ["b"]}}) == {
        "metadata": {"finalizers": ["b"]}}


def test_merge_patch_that_is_not_an_object_is_a_patch_error() -> None:
    with pytest.raises(PatchError):
        apply_merge_patch({"a": 1}, [1])


# --- strategic merge patch -----------------------------------------------------------


def _pod(*containers: dict[str, Any], **meta: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", **meta},
            "spec": {"containers": list(containers)}}


def test_containers_merge_by_name_keeping_unpatched_fields_and_containers() -> None:
    live = _pod({"name": "a", "image": "a:1", "ports": [{"containerPort": 80}]},
                {"name": "b", "image": "b:1"})
    patched = apply_strategic_merge_patch(
        live, {"spec": {"containers": [{"name": "a", "image": "a:2"}]}}, POD)
    assert patched["spec"]["containers"] == [
        {"name": "a", "image": "a:2", "ports": [{"containerPort": 80}]},
        {"name": "b", "image": "b:1"},
    ]
    assert live["spec"]["containers"][0]["image"] == "a:1"


def test_a_new_container_is_appended_after_the_ones_the_patch_names() -> None:
    live = _pod({"name": "a"}, {"name": "b"})
    patched = apply_strategic_merge_patch(live, {"spec": {"containers": [{"name": "c"}]}}, POD)
    # normalizeElementOrder: a patch item not on the server comes before server-only items.
    assert [c["name"] for c in patched["spec"]["containers"]] == ["c", "a", "b"]


def test_patch_delete_directive_removes_a_container_by_name() -> None:
    live = _pod({"name": "a"}, {"name": "b"})
    patch = {"spec": {"containers": [{"name": "a", "$patch": "delete"}]}}
    assert apply_strategic_merge_patch(live, patch, POD)["spec"]["containers"] == [{"name": "b"}]


def test_patch_replace_directive_in_a_list_replaces_the_whole_list() -> None:
    live = _pod({"name": "a", "image": "x"}, {"name": "b"})
    patch = {"spec": {"containers": [{"name": "c", "image": "y"}, {"$patch": "replace"}]}}
    assert apply_strategic_merge_patch(live, patch, POD)["spec"]["containers"] == [
        {"name": "c", "image": "y"}]


def test_patch_replace_directive_in_a_map_replaces_the_map() -> None:
    live = _pod({"name": "a"}, labels={"x": "1", "y": "2"})
    patch = {"metadata": {"labels": {"z": "3", "$patch": "replace"}}}
    assert apply_strategic_merge_patch(live, patch, POD)["metadata"]["labels"] == {"z": "3"}


def test_patch_delete_directive_in_a_map_empties_it() -> None:
    live = _pod({"name": "a"}, labels={"x": "1"})
    patch = {"metadata": {"labels": {"$patch": "delete"}}}
    assert apply_strategic_merge_patch(live, patch, POD)["metadata"]["labels"] == {}


def test_patch_merge_directive_is_rejected_as_kubernetes_does() -> None:
    with pytest.raises(PatchError):
        apply_strategic_merge_patch(_pod(), {"metadata": {"labels": {"$patch": "merge"}}}, POD)
    with pytest.raises(PatchError):
        apply_strategic_merge_patch(
            _pod({"name": "a"}), {"spec": {"containers": [{"$patch": "merge"}]}}, POD)


def test_null_deletes_a_field_and_is_dropped_where_nothing_is_there() -> None:
    live = _pod({"name": "a"}, labels={"x": "1"})
    patched = apply_strategic_merge_patch(
        live, {"metadata": {"labels": {"x": None, "y": None}, "annotations": {"n": None}}}, POD)
    assert patched["metadata"]["labels"] == {}
    assert patched["metadata"]["annotations"] == {}


def test_finalizers_are_a_union_and_deleted_from_with_delete_from_primitive_list() -> None:
    live = _pod(finalizers=["a", "b"])
    patched = apply_strategic_merge_patch(live, {"metadata": {"finalizers": ["b", "c"]}}, POD)
    assert patched["metadata"]["finalizers"] == ["a", "b", "c"]
    patched = apply_strategic_merge_patch(
        live, {"metadata": {"$deleteFromPrimitiveList/finalizers": ["a", "zz"]}}, POD)
    assert patched["metadata"]["finalizers"] == ["b"]


def test_set_element_order_orders_the_merged_list() -> None:
    live = _pod({"name": "a"}, {"name": "b"}, {"name": "c"})
    patch = {"spec": {"$setElementOrder/containers": [{"name": "c"}, {"name": "a"}, {"name": "b"}],
                      "containers": [{"name": "a", "image": "new"}]}}
    patched = apply_strategic_merge_patch(live, patch, POD)
    assert patched["spec"]["containers"] == [{"name": "c"}, {"name": "a", "image": "new"},
                                             {"name": "b"}]
    assert "$setElementOrder/containers" not in patched["spec"]


def test_set_element_order_must_agree_with_the_patch_list() -> None:
    patch = {"spec": {"$setElementOrder/containers": [{"name": "a"}, {"name": "b"}],
                      "containers": [{"name": "b"}, {"name": "a"}]}}
    with pytest.raises(PatchError):
        apply_strategic_merge_patch(_pod({"name": "a"}, {"name": "b"}), patch, POD)


def test_retain_keys_clears_fields_not_listed() -> None:
    live = {"spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}}}
    patch = {"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}}
    assert apply_strategic_merge_patch(live, patch, DEPLOYMENT) == {
        "spec": {"strategy": {"type": "Recreate"}}}
    with pytest.raises(PatchError):
        apply_strategic_merge_patch(
            live, {"spec": {"strategy": {"$retainKeys": ["type"], "other": 1}}}, DEPLOYMENT)


def test_service_ports_merge_by_port_and_tolerations_are_replaced() -> None:
    svc = {"spec": {"ports": [{"port": 80, "targetPort": 8080}, {"port": 443}]}}
    patched = apply_strategic_merge_patch(
        svc, {"spec": {"ports": [{"port": 80, "name": "http"}]}}, meta_for("", "Service"))
    assert patched["spec"]["ports"] == [{"port": 80, "targetPort": 8080, "name": "http"},
                                        {"port": 443}]
    live = {"spec": {"tolerations": [{"key": "a"}], "containers": []}}
    patched = apply_strategic_merge_patch(live, {"spec": {"tolerations": [{"key": "b"}]}}, POD)
    assert patched["spec"]["tolerations"] == [{"key": "b"}]


def test_nested_lists_merge_by_their_own_keys() -> None:
    live = _pod({"name": "a", "env": [{"name": "X", "value": "1"}],
                 "volumeMounts": [{"mountPath": "/d", "name": "v"}]})
    patch = {"spec": {"containers": [{"name": "a", "env": [{"name": "Y", "value": "2"}],
                                      "volumeMounts": [{"mountPath": "/d", "readOnly": True}]}]}}
    c = apply_strategic_merge_patch(live, patch, POD)["spec"]["containers"][0]
    assert c["env"] == [{"name": "Y", "value": "2"}, {"name": "X", "value": "1"}]
    assert c["volumeMounts"] == [{"mountPath": "/d", "name": "v", "readOnly": True}]


def test_status_conditions_merge_by_type() -> None:
    node = {"status": {"conditions": [{"type": "Ready", "status": "False"},
                                      {"type": "DiskPressure", "status": "False"}]}}
    patch = {"status": {"conditions": [{"type": "Ready", "status": "True"}]}}
    patched = apply_strategic_merge_patch(node, patch, meta_for("", "Node"))
    assert patched["status"]["conditions"] == [{"type": "Ready", "status": "True"},
                                               {"type": "DiskPressure", "status": "False"}]


def test_unknown_kinds_replace_lists_but_still_merge_owner_references() -> None:
    meta = meta_for("example.com", "Widget")
    live = {"metadata": {"ownerReferences": [{"uid": "1", "name": "a"}]}, "spec": {"xs": [1]}}
    patch = {"metadata": {"ownerReferences": [{"uid": "2", "name": "b"}]}, "spec": {"xs": [2]}}
    patched = apply_strategic_merge_patch(live, patch, meta)
    assert patched["spec"]["xs"] == [2]
    assert [r["uid"] for r in patched["metadata"]["ownerReferences"]] == ["2", "1"]


def test_a_list_element_without_its_merge_key_is_a_patch_error() -> None:
    with pytest.raises(PatchError):
        apply_strategic_merge_patch(_pod({"name": "a"}), {"spec": {"containers": [{"image": "x"}]}},
                                    POD)


def test_kubectl_apply_three_way_patch_updates_a_deployment() -> None:
    """The patch `kubectl apply` sends after a manifest drops a label, an env var and
    changes an image, adding a sidecar (CreateThreeWayMergePatch's output, by hand)."""
    last_applied = {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "labels": {"app": "web", "tier": "front"}},
        "spec": {"replicas": 2, "template": {"metadata": {"labels": {"app": "web"}}, "spec": {
            "containers": [{"name": "nginx", "image": "nginx:1.0",
                            "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]}]}}},
    }
    live = copy.deepcopy(last_applied)
    live["metadata"]["annotations"] = {
        "kubectl.kubernetes.io/last-applied-configuration": json.dumps(last_applied),
        "deployment.kubernetes.io/revision": "1"}
    live["metadata"]["finalizers"] = ["example.com/keep"]
    pod_spec = live["spec"]["template"]["spec"]
    pod_spec["containers"][0]["imagePullPolicy"] = "IfNotPresent"  # defaulted by the server
    pod_spec["containers"].insert(0, {"name": "mesh-proxy", "image": "proxy:1"})  # a webhook's
    live["status"] = {"replicas": 2}
    new_manifest = copy.deepcopy(last_applied)
    del new_manifest["metadata"]["labels"]["tier"]
    new_manifest["spec"]["template"]["spec"]["containers"] = [
        {"name": "nginx", "image": "nginx:1.1", "env": [{"name": "A", "value": "1"}]},
        {"name": "log", "image": "busybox"}]
    patch = {
        "metadata": {
            "annotations": {"kubectl.kubernetes.io/last-applied-configuration":
                            json.dumps(new_manifest)},
            "labels": {"tier": None}},
        "spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "nginx"}, {"name": "log"}],
            "containers": [
                {"$setElementOrder/env": [{"name": "A"}],
                 "env": [{"$patch": "delete", "name": "B"}],
                 "image": "nginx:1.1", "name": "nginx"},
                {"image": "busybox", "name": "log"}]}}},
    }
    patched = apply_strategic_merge_patch(live, patch, DEPLOYMENT)
    assert patched["metadata"]["labels"] == {"app": "web"}
    assert patched["metadata"]["finalizers"] == ["example.com/keep"]
    assert patched["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "1"
    assert patched["spec"]["template"]["spec"]["containers"] == [
        {"name": "mesh-proxy", "image": "proxy:1"},
        {"name": "nginx", "image": "nginx:1.1", "env": [{"name": "A", "value": "1"}],
         "imagePullPolicy": "IfNotPresent"},
        {"name": "log", "image": "busybox"},
    ]
    assert patched["status"] == {"replicas": 2}
    assert "$setElementOrder/containers" not in json.dumps(patched)


# --- whatever the input: a dict or a PatchError ---------------------------------------

_scalars = st.none() | st.booleans() | st.integers(-3, 3) | st.sampled_from(["a", "b", "name"])
_keys = st.sampled_from(["a", "b", "name", "port", "type", "$patch", "$retainKeys", "containers",
                         "finalizers", "$setElementOrder/containers", "spec", "metadata",
                         "$deleteFromPrimitiveList/finalizers", "delete", "replace"])
_json = st.recursive(_scalars, lambda inner: st.lists(inner, max_size=4)
                     | st.dictionaries(_keys, inner, max_size=4), max_leaves=25)
_objects = st.dictionaries(_keys, _json, max_size=5)
_pointers = st.lists(st.sampled_from(["a", "b", "0", "1", "-", "~0", "~1", "01", "name"]),
                     max_size=3).map(lambda parts: "".join("/" + p for p in parts))
_ops = st.lists(st.fixed_dictionaries(
    {"op": st.sampled_from(["add", "remove", "replace", "move", "copy", "test", "x"]),
     "path": _pointers},
    optional={"value": _json, "from": _pointers}), max_size=4)


def _dict_or_patch_error(fn: Any, doc: Any, patch: Any, *rest: Any) -> None:
    before = copy.deepcopy((doc, patch))
    with contextlib.suppress(PatchError):
        assert isinstance(fn(doc, patch, *rest), dict)
    assert (doc, patch) == before


@settings(max_examples=300, deadline=None)
@given(_objects, _objects, st.sampled_from([("", "Pod"), ("apps", "Deployment"), ("", "Node"),
                                            ("x", "Unknown")]))
def test_strategic_merge_gives_a_dict_or_a_patch_error(doc: Any, patch: Any, kind: Any) -> None:
    _dict_or_patch_error(apply_strategic_merge_patch, doc, patch, meta_for(*kind))


@settings(max_examples=300, deadline=None)
@given(_objects, _ops)
def test_json_patch_gives_a_dict_or_a_patch_error(doc: Any, ops: Any) -> None:
    _dict_or_patch_error(apply_json_patch, doc, ops)


@settings(max_examples=100, deadline=None)
@given(_objects, _json)
def test_merge_patch_gives_a_dict_or_a_patch_error(doc: Any, patch: Any) -> None:
    _dict_or_patch_error(apply_merge_patch, doc, patch)
