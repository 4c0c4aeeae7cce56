"""The real gateway routes by host and path to the right endpoints, answers 404/503/502/504
as it should, retries refused connections elsewhere, and takes configuration changes
without a restart or a dropped request."""

from __future__ import annotations

import json
import threading

import pytest

from tests.integration.ingress.conftest import (
    BACKENDS,
    Env,
    endpoints,
    eventually,
    host_rule,
    ingress,
    service,
    to,
)

pytestmark = pytest.mark.root


def serving(env: Env, host: str, path: str = "/", status: int = 200) -> bool:
    return env.request(host, path).status == status


def test_requests_reach_the_service_of_their_host_and_path(env: Env) -> None:
    ns = env.namespace()
    for name, ip in (("api", BACKENDS[0]), ("web", BACKENDS[1]), ("wild", BACKENDS[2])):
        env.create(service(name, ns))
        env.create(endpoints(name, ns, [ip]))
    env.create(ingress("site", ns, [host_rule(f"{ns}.test", ("Prefix", "/api", "api"), ("Exact", "/", "web")),
                                    host_rule(f"*.{ns}.test", ("Prefix", "/", "wild"))]))
    eventually(lambda: serving(env, f"{ns}.test", "/"), "the Ingress to be served")
    assert env.request(f"{ns}.test", "/api/users?x=1").json()["name"] == "b0"
    assert env.request(f"{ns}.test", "/").json()["name"] == "b1"
    assert env.request(f"a.{ns}.test", "/anything").json()["name"] == "b2"
    assert env.request(f"a.b.{ns}.test", "/").status == 404  # a wildcard is one label
    assert env.request(f"{ns}.test", "/other").status == 404
    assert env.request(f"{ns}.test:8080", "/api").json()["path"] == "/api"  # the port is not part of the host


def test_the_upstream_request_carries_forwarding_headers_and_no_hop_by_hop_ones(env: Env) -> None:
    ns = env.namespace()
    env.create(service("echo", ns))
    env.create(endpoints("echo", ns, [BACKENDS[0]]))
    env.create(ingress("echo", ns, [host_rule(f"{ns}.test", ("Prefix", "/", "echo"))]))
    eventually(lambda: serving(env, f"{ns}.test"), "the Ingress")
    resp = env.request(f"{ns}.test", "/h", headers={
        "X-Forwarded-For": "192.0.2.7", "X-Forwarded-Proto": "https", "Keep-Alive": "timeout=5",
        "Connection": "keep-alive, X-Drop-Me", "X-Drop-Me": "1", "Proxy-Authorization": "secret",
        "TE": "trailers", "X-Custom": "kept", "X-Request-ID": "req-42"})
    seen = {k.lower(): v for k, v in resp.json()["headers"].items()}
    assert seen["x-forwarded-for"] == "192.0.2.7, 10.0.0.1"
    assert seen["x-forwarded-proto"] == "http"  # set by the gateway, not by the client
    assert seen["x-forwarded-host"] == f"{ns}.test" and seen["host"] == f"{ns}.test"
    assert seen["x-real-ip"] == "10.0.0.1"
    assert seen["x-request-id"] == "req-42"  # a client's id is kept
    assert seen["x-custom"] == "kept"
    for hop in ("keep-alive", "proxy-authorization", "te"):
        assert hop not in seen
    fresh = env.request(f"{ns}.test", "/").json()["headers"]
    assert len(fresh["X-Request-ID"]) == 32  # else one is made


def test_no_endpoints_answers_503_and_new_endpoints_are_used_without_a_restart(env: Env) -> None:
    ns = env.namespace()
    env.create(service("late", ns))
    env.create(ingress("late", ns, [host_rule(f"{ns}.test", ("Prefix", "/", "late"))]))
    eventually(lambda: serving(env, f"{ns}.test", status=503), "503 without endpoints")
    gateway_pid = env.gateway.pid if env.gateway else 0
    env.create(endpoints("late", ns, [BACKENDS[2]]))
    eventually(lambda: serving(env, f"{ns}.test"), "the new endpoint to be used")
    assert env.gateway is not None and env.gateway.pid == gateway_pid and env.gateway.poll() is None
    assert env.metric("netplane_ingress_requests_total", namespace=ns, status="503") >= 1


def test_a_refused_connection_is_retried_on_another_endpoint_and_the_endpoint_ejected(env: Env) -> None:
    ns = env.namespace()
    env.create(service("flaky", ns))
    # 10.0.0.4:9 refuses: nothing listens there.
    env.create({**endpoints("flaky", ns, [BACKENDS[0], BACKENDS[2]], port=8080),
                "endpoints": [{"addresses": [BACKENDS[0]], "conditions": {"ready": True}}]})
    env.create({**endpoints("flaky", ns, [BACKENDS[2]], port=9), "metadata": {
        "name": "flaky-dead", "namespace": ns, "labels": {"kubernetes.io/service-name": "flaky"}}})
    env.create(ingress("flaky", ns, [host_rule(f"{ns}.test", ("Prefix", "/", "flaky"))]))
    eventually(lambda: serving(env, f"{ns}.test"), "the Ingress")
    before = env.metric("netplane_ingress_upstream_retries_total")
    statuses = [env.request(f"{ns}.test", "/").status for _ in range(12)]
    assert statuses == [200] * 12
    assert env.metric("netplane_ingress_upstream_retries_total") > before
    assert env.metric("netplane_ingress_ejections_total") >= 1


def test_an_endpoint_that_refuses_alone_answers_502(env: Env) -> None:
    ns = env.namespace()
    env.create(service("dead", ns))
    env.create(endpoints("dead", ns, [BACKENDS[1]], port=9))
    env.create(ingress("dead", ns, [host_rule(f"{ns}.test", ("Prefix", "/", "dead"))]))
    eventually(lambda: serving(env, f"{ns}.test", status=502), "502 from a refusing endpoint")


def test_a_slow_upstream_answers_504_after_the_read_timeout(env: Env) -> None:
    ns = env.namespace()
    env.create(service("slow", ns))
    env.create(endpoints("slow", ns, [BACKENDS[1]]))
    env.create(ingress("slow", ns, [host_rule(f"{ns}.test", ("Prefix", "/", "slow"))],
                       annotations={"nginx.ingress.kubernetes.io/proxy-read-timeout": "1"}))
    eventually(lambda: serving(env, f"{ns}.test"), "the Ingress")
    assert env.request(f"{ns}.test", "/sleep?s=4").status == 504
    assert env.request(f"{ns}.test", "/sleep?s=0.1").status == 200


def test_a_request_in_flight_finishes_across_configuration_changes(env: Env) -> None:
    ns = env.namespace()
    env.create(service("long", ns))
    env.create(endpoints("long", ns, [BACKENDS[0]]))
    env.create(ingress("long", ns, [host_rule(f"{ns}.test", ("Prefix", "/", "long"))]))
    eventually(lambda: serving(env, f"{ns}.test"), "the Ingress")
    result: list[int] = []
    slow = threading.Thread(target=lambda: result.append(env.request(f"{ns}.test", "/sleep?s=2").status))
    slow.start()
    before = env.metric("netplane_ingress_config_updates_total")
    for i in range(3):  # unrelated changes while it runs
        env.create(ingress(f"other-{i}", ns, [host_rule(f"o{i}.{ns}.test", ("Prefix", "/", "long"))]))
    eventually(lambda: env.metric("netplane_ingress_config_updates_total") > before, "a new configuration")
    slow.join(timeout=15)
    assert result == [200]


def test_default_backend_answers_what_no_rule_matches(env: Env) -> None:
    ns = env.namespace()
    env.create(service("fallback", ns))
    env.create(endpoints("fallback", ns, [BACKENDS[2]]))
    env.create(service("main", ns))
    env.create(endpoints("main", ns, [BACKENDS[0]]))
    env.create(ingress("d", ns, [host_rule(f"{ns}.test", ("Exact", "/main", "main"))],
                       default=to("fallback")))
    try:
        eventually(lambda: serving(env, f"{ns}.test", "/main"), "the Ingress")
        assert env.request(f"{ns}.test", "/main").json()["name"] == "b0"
        assert env.request(f"{ns}.test", "/main/sub").json()["name"] == "b2"
        assert env.request(f"elsewhere.{ns}.test", "/").json()["name"] == "b2"  # the catch-all
    finally:
        env.delete_ingress(ns, "d")  # a catch-all would answer every other test's unknown hosts
    eventually(lambda: serving(env, f"elsewhere.{ns}.test", status=404), "the catch-all to go")


def test_canary_by_header_and_cookie_affinity(env: Env) -> None:
    ns = env.namespace()
    for name, ips in (("stable", [BACKENDS[0], BACKENDS[1]]), ("next", [BACKENDS[2]])):
        env.create(service(name, ns))
        env.create(endpoints(name, ns, ips))
    nginx = "nginx.ingress.kubernetes.io/"
    env.create(ingress("main", ns, [host_rule(f"{ns}.test", ("Prefix", "/", "stable"))],
                       annotations={f"{nginx}affinity": "cookie"}))
    env.create(ingress("canary", ns, [host_rule(f"{ns}.test", ("Prefix", "/", "next"))],
                       annotations={f"{nginx}canary": "true", f"{nginx}canary-by-header": "X-Canary"}))
    eventually(lambda: env.request(f"{ns}.test", "/", headers={"X-Canary": "always"}).json()["name"] == "b2"
               and "set-cookie" in env.request(f"{ns}.test", "/").headers, "the canary")
    assert env.request(f"{ns}.test", "/", headers={"X-Canary": "never"}).json()["name"] in ("b0", "b1")
    first = env.request(f"{ns}.test", "/")
    cookie = first.headers["set-cookie"].split(";")[0]
    assert cookie.startswith("INGRESSCOOKIE=")
    names = {env.request(f"{ns}.test", "/", headers={"Cookie": cookie}).json()["name"] for _ in range(6)}
    assert names == {first.json()["name"]}
    assert {env.request(f"{ns}.test", "/").json()["name"] for _ in range(6)} == {"b0", "b1"}


def test_httproutes_match_headers_split_by_weight_and_apply_filters(env: Env) -> None:
    ns = env.namespace()
    for name, ip in (("v1", BACKENDS[0]), ("v2", BACKENDS[1])):
        env.create(service(name, ns))
        env.create(endpoints(name, ns, [ip]))
    env.create({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
                "metadata": {"name": "r", "namespace": ns},
                "spec": {"parentRefs": [{"name": "netplane"}], "hostnames": [f"gw.{ns}.test"], "rules": [
                    {"matches": [{"path": {"type": "PathPrefix", "value": "/"},
                                  "headers": [{"name": "X-Version", "value": "2"}]}],
                     "filters": [{"type": "RequestHeaderModifier",
                                  "requestHeaderModifier": {"set": [{"name": "X-Env", "value": "blue"}]}},
                                 {"type": "URLRewrite", "urlRewrite": {"path": {
                                     "type": "ReplacePrefixMatch", "replacePrefixMatch": "/v2"}}}],
                     "backendRefs": [{"name": "v2", "port": 80}]},
                    {"matches": [{"path": {"type": "PathPrefix", "value": "/old"}}],
                     "filters": [{"type": "RequestRedirect", "requestRedirect": {"hostname": "new.test",
                                                                                 "statusCode": 301}}]},
                    {"backendRefs": [{"name": "v1", "port": 80, "weight": 3}, {"name": "v2", "port": 80,
                                                                               "weight": 1}]},
                ]}})
    host = f"gw.{ns}.test"
    eventually(lambda: serving(env, host, "/old", status=301), "the HTTPRoute")
    v2 = env.request(host, "/items", headers={"X-Version": "2"}).json()
    assert v2["name"] == "b1" and v2["path"] == "/v2/items" and v2["headers"]["X-Env"] == "blue"
    moved = env.request(host, "/old/page?q=1")
    assert moved.status == 301 and moved.headers["location"] == "http://new.test/old/page?q=1"
    names = [env.request(host, "/").json()["name"] for _ in range(8)]
    assert names.count("b0") == 6 and names.count("b1") == 2


def test_metrics_and_the_access_log_record_every_request(env: Env) -> None:
    ns = env.namespace()
    env.create(service("m", ns))
    env.create(endpoints("m", ns, [BACKENDS[0]]))
    env.create(ingress("m", ns, [host_rule(f"{ns}.test", ("Prefix", "/", "m"))]))
    eventually(lambda: serving(env, f"{ns}.test"), "the Ingress")
    for _ in range(3):
        env.request(f"{ns}.test", "/counted", headers={"X-Request-ID": f"log-{ns}"})
    assert env.metric("netplane_ingress_requests_total", namespace=ns, name="m", host=f"{ns}.test",
                      status="200") >= 3
    assert env.metric("netplane_ingress_upstream_latency_seconds_count", namespace=ns, service="m") >= 3

    def logged() -> list[dict[str, object]]:
        lines = (env.tmp / "access.log").read_text().splitlines()
        return [e for e in map(json.loads, lines) if e["request_id"] == f"log-{ns}"]
    entries = eventually(lambda: len(logged()) == 3 and logged(), "three access log lines")
    assert entries[0]["status"] == 200 and entries[0]["route"] == f"Ingress {ns}/m"
    assert entries[0]["upstream"] == f"{BACKENDS[0]}:8080" and entries[0]["path"] == "/counted"
