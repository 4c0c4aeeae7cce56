"""Client-side apply's three-way patch, and reading manifests."""

from __future__ import annotations

from pathlib import Path

import pytest

from netplane.ctl.manifests import ManifestError, load
from netplane.ctl.threeway import LAST_APPLIED, last_applied, three_way_patch, with_last_applied


def test_server_defaults_are_not_differences() -> None:
    config = {"spec": {"ports": [{"port": 80}]}}
    live = {"spec": {"ports": [{"port": 80, "protocol": "TCP"}], "clusterIP": "10.96.0.9"}}
    assert three_way_patch(config, config, live) == {}


def test_changed_values_are_set_and_dropped_fields_are_deleted() -> None:
    original = {"metadata": {"labels": {"a": "1", "b": "2"}}, "spec": {"x": 1}}
    modified = {"metadata": {"labels": {"a": "9"}}, "spec": {"x": 1}}
    live = {"metadata": {"labels": {"a": "1", "b": "2", "other": "kept"}}, "spec": {"x": 1, "y": 2}}
    assert three_way_patch(original, modified, live) == {"metadata": {"labels": {"a": "9", "b": None}}}


def test_a_changed_list_is_replaced_whole() -> None:
    live = {"ports": [{"port": 80, "protocol": "TCP"}]}
    assert three_way_patch(None, {"ports": [{"port": 81}]}, live) == {"ports": [{"port": 81}]}


def test_the_annotation_round_trips_without_itself() -> None:
    obj = {"kind": "Service", "metadata": {"name": "web", "annotations": {LAST_APPLIED: "old"}}}
    applied = with_last_applied(obj)
    assert last_applied(applied) == {"kind": "Service", "metadata": {"name": "web"}}


def test_manifests_from_folders_multi_documents_and_lists(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "a.yaml").write_text("apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\n"
                                     "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n"
                                     "  kind: ConfigMap\n  metadata: {name: c}\n")
    (tmp_path / "sub" / "b.json").write_text(
        '{"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"}}')
    (tmp_path / "notes.txt").write_text("ignored")
    assert [o["metadata"]["name"] for o in load([tmp_path])] == ["a", "c", "s"]


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
