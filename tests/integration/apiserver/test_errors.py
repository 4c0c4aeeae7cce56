"""Bad input gets the Kubernetes Status a client expects, nothing is stored, and the
server keeps serving."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
import requests

from control.apiserver.process import ApiServerProcess


class Api:
    def __init__(self, server: ApiServerProcess, token: str | None = None) -> None:
        self.base = server.url
        self.s = requests.Session()
        # Without this, $REQUESTS_CA_BUNDLE silently overrides `verify` (requests#3829).
        self.s.trust_env = False
        self.s.verify = str(server.data_dir / "pki" / "ca.crt")
        if token is not None:
            self.s.headers["Authorization"] = f"Bearer {token}"

    def req(self, method: str, path: str, body: Any = None, *, raw: bytes | None = None,
            ctype: str = "application/json") -> requests.Response:
        data = raw if raw is not None else (json.dumps(body) if body is not None else None)
        return self.s.request(method, self.base + path, data=data,
                              headers={"Content-Type": ctype})


@pytest.fixture
def api(apiserver: ApiServerProcess) -> Api:
    return Api(apiserver, apiserver.token())


def _svc(name: str = "web", **spec: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"selector": {"app": "web"}, "ports": [{"port": 80}]}
    base.update(spec)
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name}, "spec": base}


def _status(resp: requests.Response, code: int, reason: str) -> dict[str, Any]:
    assert resp.status_code == code, resp.text
    body = resp.json()
    assert body["kind"] == "Status"
    assert body["status"] == "Failure"
    assert body["code"] == code
    assert body["reason"] == reason, body
    return body


INVALID_SERVICES = [
    pytest.param(_svc("Bad_Name"), "metadata.name", id="bad-name"),
    pytest.param(_svc(ports=[{"port": 0}]), "spec.ports[0].port", id="port-0"),
    pytest.param(_svc(ports=[{"port": 70000}]), "spec.ports[0].port", id="port-70000"),
    pytest.param(_svc(ports=[{"port": 80, "protocol": "ICMP"}]), "spec.ports[0].protocol",
                 id="unknown-protocol"),
    pytest.param(_svc(clusterIP="192.168.1.1"), "spec.clusterIPs[0]", id="ip-out-of-range"),
    pytest.param(_svc(selector={"app": "a b"}), "spec.selector", id="malformed-selector"),
]


@pytest.mark.parametrize(("body", "field"), INVALID_SERVICES)
def test_an_invalid_service_is_422_invalid_with_the_field_and_not_stored(
        api: Api, namespace: str, body: dict[str, Any], field: str) -> None:
    resp = api.req("POST", f"/api/v1/namespaces/{namespace}/services", body)
    status = _status(resp, 422, "Invalid")
    fields = [c["field"] for c in status["details"]["causes"]]
    assert any(f.startswith(field) for f in fields), fields
    assert api.req("GET", f"/api/v1/namespaces/{namespace}/services").json()["items"] == []


def test_a_duplicate_node_port_is_invalid(api: Api, namespace: str) -> None:
    first = _svc("a", type="NodePort", ports=[{"port": 80, "nodePort": 30555}])
    assert api.req("POST", f"/api/v1/namespaces/{namespace}/services", first).status_code == 201
    second = _svc("b", type="NodePort", ports=[{"port": 80, "nodePort": 30555}])
    status = _status(api.req("POST", f"/api/v1/namespaces/{namespace}/services", second),
                     422, "Invalid")
    assert status["details"]["causes"][0]["field"] == "spec.ports[0].nodePort"
    # Freed on delete: the port can be taken again.
    assert api.req("DELETE", f"/api/v1/namespaces/{namespace}/services/a").status_code == 200
    assert api.req("POST", f"/api/v1/namespaces/{namespace}/services", second).status_code == 201


def test_a_malformed_label_selector_query_is_400(api: Api, namespace: str) -> None:
    resp = api.req("GET", f"/api/v1/namespaces/{namespace}/pods?labelSelector=a%20in%20(")
    _status(resp, 400, "BadRequest")


def test_an_unknown_field_selector_is_400(api: Api, namespace: str) -> None:
    resp = api.req("GET", f"/api/v1/namespaces/{namespace}/services?fieldSelector=spec.foo=x")
    _status(resp, 400, "BadRequest")


def test_broken_json_is_400_bad_request(api: Api, namespace: str) -> None:
    resp = api.req("POST", f"/api/v1/namespaces/{namespace}/services", raw=b'{"kind": "Serv')
    _status(resp, 400, "BadRequest")


def test_a_body_over_the_limit_is_413(api: Api, namespace: str) -> None:
    big = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "big"},
           "data": {"x": "a" * (4 * 1024 * 1024)}}
    resp = api.req("POST", f"/api/v1/namespaces/{namespace}/configmaps", big)
    _status(resp, 413, "RequestEntityTooLarge")
    assert api.req("GET", f"/api/v1/namespaces/{namespace}/configmaps/big").status_code == 404


def test_not_found_and_already_exists(api: Api, namespace: str) -> None:
    body = _status(api.req("GET", f"/api/v1/namespaces/{namespace}/services/nope"), 404,
                   "NotFound")
    assert body["message"] == 'services "nope" not found'
    assert body["details"] == {"name": "nope", "kind": "services"}
    assert api.req("POST", f"/api/v1/namespaces/{namespace}/services", _svc()).status_code == 201
    body = _status(api.req("POST", f"/api/v1/namespaces/{namespace}/services", _svc()), 409,
                   "AlreadyExists")
    assert body["message"] == 'services "web" already exists'


def test_creating_in_a_missing_namespace_is_404(api: Api) -> None:
    resp = api.req("POST", "/api/v1/namespaces/no-such-ns/services", _svc())
    body = _status(resp, 404, "NotFound")
    assert body["message"] == 'namespaces "no-such-ns" not found'


def test_no_token_is_401_and_a_wrong_token_too(apiserver: ApiServerProcess) -> None:
    _status(Api(apiserver).req("GET", "/api/v1/namespaces"), 401, "Unauthorized")
    _status(Api(apiserver, "not-a-token").req("GET", "/api/v1/namespaces"), 401, "Unauthorized")


def test_health_endpoints_need_no_token(apiserver: ApiServerProcess) -> None:
    anon = Api(apiserver)
    for path in ("/healthz", "/readyz", "/livez"):
        assert anon.req("GET", path).text == "ok"
    assert anon.req("GET", "/version").json()["major"] == "1"


def test_a_viewer_token_may_read_but_writing_is_403(apiserver: ApiServerProcess) -> None:
    tokens = apiserver.data_dir / "tokens.csv"
    viewer = "viewer-token-for-tests"
    if viewer not in tokens.read_text():
        with tokens.open("a") as f:
            f.write(f'{viewer},viewer,viewer-uid,"netplane:viewers"\n')
    api = Api(apiserver, viewer)
    # The server re-reads tokens.csv when it changes (checked once a second).
    deadline = time.monotonic() + 10
    while (code := api.req("GET", "/api/v1/namespaces").status_code) == 401:
        assert time.monotonic() < deadline, "the appended token was never picked up"
        time.sleep(0.2)
    assert code == 200
    body = _status(api.req("POST", "/api/v1/namespaces",
                           {"metadata": {"name": "viewer-made"}}), 403, "Forbidden")
    assert "viewer" in body["message"]


def test_wrong_kind_in_the_body_is_400(api: Api, namespace: str) -> None:
    body = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x"}}
    _status(api.req("POST", f"/api/v1/namespaces/{namespace}/services", body), 400, "BadRequest")


def test_unknown_paths_are_404_status(api: Api) -> None:
    _status(api.req("GET", "/api/v1/widgets"), 404, "NotFound")
    _status(api.req("GET", "/apis/nope.example.com/v1"), 404, "NotFound")


def test_server_side_apply_is_refused_with_415(api: Api, namespace: str) -> None:
    assert api.req("POST", f"/api/v1/namespaces/{namespace}/services", _svc()).status_code == 201
    resp = api.req("PATCH", f"/api/v1/namespaces/{namespace}/services/web?fieldManager=t",
                   raw=b"{}", ctype="application/apply-patch+yaml")
    _status(resp, 415, "UnsupportedMediaType")


def test_the_server_keeps_serving_after_bad_requests(api: Api, namespace: str) -> None:
    for raw in (b"", b"null", b"[]", b"{", b'{"metadata": 5}', b"\xff\xfe"):
        resp = api.req("POST", f"/api/v1/namespaces/{namespace}/configmaps", raw=raw)
        assert 400 <= resp.status_code < 500, (raw, resp.status_code, resp.text)
    assert api.req("GET", "/readyz").status_code == 200
