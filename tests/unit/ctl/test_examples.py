"""Every manifest in examples/ is one `kubectl apply -f` would accept, and every container in
it has a command: this runtime runs commands on the node's own filesystem and only records
`image`, so a container without one would wait forever."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from control.apiserver.resources import by_kind
from control.cluster.layout import ClusterRecord, Layout, plan_nodes
from control.cluster.up import next_steps
from netplane.ctl.manifests import SUFFIXES, Manifest, parse
from netplane.model import apply_defaults, decode_object, summarize, validate

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
FILES = sorted(p for p in EXAMPLES.rglob("*") if p.suffix in SUFFIXES)


def _objects(path: Path) -> list[Manifest]:
    return parse(path.read_text(), str(path.relative_to(EXAMPLES.parent)), as_json=path.suffix == ".json")


def _pod_specs(obj: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The pod specs an object carries: a Pod's own, a workload's template's."""
    spec = obj.get("spec") or {}
    if obj["kind"] == "Pod":
        yield spec
    elif isinstance((spec.get("template") or {}).get("spec"), dict):
        yield spec["template"]["spec"]


def test_there_are_examples() -> None:
    assert FILES, f"no manifests under {EXAMPLES}"


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_every_example_parses_and_validates_as_the_apiserver_would(path: Path) -> None:
    objects = _objects(path)
    assert objects
    for m in objects:
        obj = copy.deepcopy(m.obj)
        resource = by_kind(obj["apiVersion"], obj["kind"])
        assert resource is not None, f"{m.source}: the apiserver serves no {obj['apiVersion']} {obj['kind']}"
        if resource.namespaced:  # as apply does: the namespace comes from the request
            obj["metadata"].setdefault("namespace", "default")
        apply_defaults(obj)
        errors = validate(obj)
        assert not errors, f"{m.source}: {summarize(obj['kind'], m.name, errors)}"
        decode_object(obj)


def _without_command(path: Path) -> list[str]:
    containers = [(m.source, c) for m in _objects(path) for spec in _pod_specs(m.obj)
                  for c in [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]]
    return [f"{source}: container {c.get('name')}" for source, c in containers
            if not (c.get("command") or [""])[0]]


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_every_container_in_the_examples_has_a_command(path: Path) -> None:
    assert _without_command(path) == []


@pytest.mark.parametrize("cwd", [EXAMPLES.parent, EXAMPLES.parent.parent], ids=["checkout", "elsewhere"])
def test_the_example_netplane_up_suggests_exists_and_runs_commands(
        cwd: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(cwd)
    record = ClusterRecord(cluster_id="abc123", api_port=6443, proxy_mode="iptables",
                           nodes=plan_nodes("abc123", 2))
    hints = next_steps(Layout(Path("/tmp/state")), record).splitlines()
    applied = [line.split("kubectl apply -f ", 1)[1].split()[0]
               for line in hints if "kubectl apply -f " in line]
    assert applied, "netplane up suggests no example"
    for shown in applied:
        path = (cwd / shown).resolve()
        assert path in FILES, f"{shown} is not one of the examples"
        assert _without_command(path) == []
