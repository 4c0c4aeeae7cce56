"""Client-side apply's three-way patch, and reading manifests."""

from __future__ import annotations

from pathlib import Path

import pytest

from control.apiserver.patchmeta import meta_for
from netplane.ctl.manifests import ManifestError, load
from netplane.ctl.threeway import LAST_APPLIED, last_applied, three_way_patch, with_last_applied

SERVICE = meta_for("", "Service")


def test_server_defaults_are_not_differences_under_the_strategic_schema() -> None:
    config = {"spec": {"ports": [{"port": 80}]}}
    live = {"spec": {"ports": [{"port": 80, "protocol": "TCP"}], "clusterIP": "10.96.0.9"}}
    assert three_way_patch(config, config, live, SERVICE) == {}


def test_without_a_schema_a_list_that_differs_from_live_is_replaced_whole() -> None:
    config = {"spec": {"ports": [{"port": 80}]}}
    live = {"spec": {"ports": [{"port": 80, "protocol": "TCP"}]}}
    assert three_way_patch(config, config, live) == {"spec": {"ports": [{"port": 80}]}}


def test_changed_values_are_set_and_dropped_fields_are_deleted() -> None:
    original = {"metadata": {"labels": {"a": "1", "b": "2"}}, "spec": {"x": 1}}
    modified = {"metadata": {"labels": {"a": "9"}}, "spec": {"x": 1}}
    live = {"metadata": {"labels": {"a": "1", "b": "2", "other": "kept"}}, "spec": {"x": 1, "y": 2}}
    assert three_way_patch(original, modified, live) == {"metadata": {"labels": {"a": "9", "b": None}}}


def test_a_changed_merge_list_element_is_patched_by_its_key_with_the_element_order() -> None:
    original = {"spec": {"ports": [{"port": 80}]}}
    modified = {"spec": {"ports": [{"port": 80, "name": "http"}]}}
    live = {"spec": {"ports": [{"port": 80, "protocol": "TCP"}]}}
    patch = three_way_patch(original, modified, live, SERVICE)
    assert patch["spec"]["ports"] == [{"port": 80, "name": "http"}]
    assert patch["spec"]["$setElementOrder/ports"] == [{"port": 80}]


def test_a_dropped_merge_list_element_is_deleted_by_a_patch_directive() -> None:
    original = {"spec": {"ports": [{"port": 80}, {"port": 443}]}}
    modified = {"spec": {"ports": [{"port": 80}]}}
    live = {"spec": {"ports": [{"port": 80, "protocol": "TCP"}, {"port": 443, "protocol": "TCP"}]}}
    patch = three_way_patch(original, modified, live, SERVICE)
    assert {"port": 443, "$patch": "delete"} in patch["spec"]["ports"]


def test_the_annotation_round_trips_without_itself() -> None:
    obj = {"kind": "Service", "metadata": {"name": "web", "annotations": {LAST_APPLIED: "old"}}}
    applied = with_last_applied(obj)
    # kubectl leaves the emptied annotations map in the stored configuration.
    assert last_applied(applied) == {"kind": "Service", "metadata": {"annotations": {}, "name": "web"}}
    assert applied["metadata"]["annotations"][LAST_APPLIED].endswith("\n")


def test_manifests_from_folders_multi_documents_and_lists(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "a.yaml").write_text("apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\n"
                                     "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n"
                                     "  kind: ConfigMap\n  metadata: {name: c}\n")
    (tmp_path / "sub" / "b.json").write_text(
        '{"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"}}')
    (tmp_path / "notes.txt").write_text("ignored")
    loaded = load([tmp_path])
    assert [m.name for m in loaded] == ["a", "c", "s"]
    assert "a.yaml" in loaded[0].source


@pytest.mark.parametrize(("text", "message"), [
    ("kind: Service\nmetadata: {name: x}\n", r"document 1\): the object has no apiVersion"),
    ("apiVersion: v1\nkind: Service\n", "no metadata.name"),
    ("- a\n- b\n", "expected an object"),
    ("a: [\n", "not valid YAML"),
])
def test_bad_manifests_name_the_file_and_document(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "bad.yaml").write_text(text)
    with pytest.raises(ManifestError, match=message):
        load([tmp_path / "bad.yaml"])
