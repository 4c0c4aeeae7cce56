"""Pure parts of the apiserver: path grammar, Table printing, Status bodies."""

from __future__ import annotations

import pytest
from multidict import MultiDict

from control.apiserver import errors, tables
from control.apiserver.handlers import RequestInfo, parse_path
from control.apiserver.resources import RESOURCES, lookup


def _parse(path: str, method: str = "GET", **query: str) -> RequestInfo:
    return parse_path(path, method, MultiDict(query))


@pytest.mark.parametrize(("path", "method", "query", "want"), [
    ("/api/v1/namespaces", "GET", {}, ("list", "namespaces", None, None, None)),
    ("/api/v1/namespaces/default", "GET", {}, ("get", "namespaces", None, "default", None)),
    ("/api/v1/namespaces/default/status", "PUT", {},
     ("update", "namespaces", None, "default", "status")),
    ("/api/v1/namespaces/default/finalize", "PUT", {},
     ("update", "namespaces", None, "default", "finalize")),
    ("/api/v1/namespaces/default/pods", "GET", {}, ("list", "pods", "default", None, None)),
    ("/api/v1/namespaces/default/pods", "GET", {"watch": "true"},
     ("watch", "pods", "default", None, None)),
    ("/api/v1/pods", "GET", {"watch": "1"}, ("watch", "pods", None, None, None)),
    ("/api/v1/namespaces/ns/pods/p/binding", "POST", {},
     ("create", "pods", "ns", "p", "binding")),
    ("/api/v1/namespaces/ns/pods/p/status", "PATCH", {}, ("patch", "pods", "ns", "p", "status")),
    ("/api/v1/nodes/n1/status", "PUT", {}, ("update", "nodes", None, "n1", "status")),
    ("/apis/apps/v1/namespaces/ns/deployments/d", "DELETE", {},
     ("delete", "deployments", "ns", "d", None)),
    ("/apis/discovery.k8s.io/v1/endpointslices", "GET", {},
     ("list", "endpointslices", None, None, None)),
    ("/api/v1/namespaces/ns/configmaps", "DELETE", {},
     ("deletecollection", "configmaps", "ns", None, None)),
])
def test_paths_map_to_verb_resource_namespace_name_and_subresource(
        path: str, method: str, query: dict[str, str], want: tuple) -> None:
    info, doc = _parse(path, method, **query)
    assert doc is None
    assert (info.verb, info.res.plural, info.namespace, info.name, info.subresource) == want


@pytest.mark.parametrize(("path", "doc"), [
    ("/api", "api"), ("/apis", "apis"), ("/apis/apps", "group"), ("/api/v1", "resources"),
    ("/apis/apps/v1", "resources"),
])
def test_discovery_paths_are_recognised(path: str, doc: str) -> None:
    assert _parse(path)[1] == doc


@pytest.mark.parametrize("path", [
    "/api/v1/widgets", "/api/v1/namespaces/ns/pods/p/exec-nope",
    "/api/v1/namespaces/ns/nodes/n1", "/apis/apps/v1/namespaces/ns/deployments/d/x/y",
])
def test_unknown_paths_are_404(path: str) -> None:
    with pytest.raises(errors.ApiError) as exc:
        _parse(path)
    assert exc.value.code == 404


def test_a_method_a_resource_does_not_take_is_405() -> None:
    with pytest.raises(errors.ApiError) as exc:
        _parse("/api/v1/namespaces/ns/pods", "PUT")
    assert exc.value.code == 405


@pytest.mark.parametrize(("seconds", "text"), [
    (0, "0s"), (59, "59s"), (119, "119s"), (120, "2m"), (150, "2m30s"), (600, "10m"),
    (10799, "179m"), (3 * 3600 + 20 * 60, "3h20m"), (8 * 3600, "8h"), (47 * 3600, "47h"),
    (2 * 86400, "2d"), (4 * 86400 + 5 * 3600, "4d5h"), (30 * 86400, "30d"),
    (800 * 86400, "2y70d"),
])
def test_ages_print_like_kubectl(seconds: int, text: str) -> None:
    assert tables.human_duration(seconds) == text


def test_every_resource_has_columns_starting_with_its_name() -> None:
    for res in RESOURCES:
        names = [c[0] for c in tables.COLUMNS[res.kind]]
        assert "Name" in names or res.kind == "Event", res.kind


def test_a_service_row_shows_ports_with_node_ports() -> None:
    svc = {"metadata": {"name": "np", "creationTimestamp": "2020-01-01T00:00:00Z"},
           "spec": {"type": "NodePort", "clusterIP": "10.96.0.5",
                    "ports": [{"port": 80, "nodePort": 30080, "protocol": "TCP"},
                              {"port": 53, "protocol": "UDP"}]}}
    row = tables.to_table(lookup("", "v1", "services"), [svc])["rows"][0]["cells"]
    assert row[:5] == ["np", "NodePort", "10.96.0.5", "<none>", "80:30080/TCP,53/UDP"]


def test_a_status_body_has_kubernetes_shape() -> None:
    body = errors.not_found("deployments", "apps", "web").status()
    assert body == {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                    "message": 'deployments.apps "web" not found', "reason": "NotFound",
                    "code": 404, "details": {"name": "web", "group": "apps",
                                             "kind": "deployments"}}
