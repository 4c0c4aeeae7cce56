"""TLS termination with the certificate SNI names, HTTP->HTTPS redirects, and WebSockets
through the real gateway, kept open across configuration changes."""

from __future__ import annotations

import base64
import socket
import ssl

import pytest
import websocket
from cryptography import x509
from cryptography.x509.oid import NameOID

from netplane.ingress.tls import DEFAULT_CN, self_signed
from tests.integration.ingress.conftest import (
    BACKENDS,
    GATEWAY,
    HTTP,
    HTTPS,
    Env,
    endpoints,
    eventually,
    host_rule,
    ingress,
    service,
)

pytestmark = pytest.mark.root


def tls_secret(name: str, namespace: str, cn: str) -> dict[str, object]:
    cert, key = self_signed(cn)
    return {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
            "metadata": {"name": name, "namespace": namespace},
            "data": {"tls.crt": base64.b64encode(cert).decode(), "tls.key": base64.b64encode(key).decode()}}


def served_cn(env: Env, server_name: str | None) -> str:
    def handshake() -> str:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        with socket.create_connection((GATEWAY, HTTPS), timeout=5) as raw, \
                ctx.wrap_socket(raw, server_hostname=server_name) as tls:
            der = tls.getpeercert(binary_form=True)
        assert der is not None
        cert = x509.load_der_x509_certificate(der)
        return str(cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value)
    return env.run(handshake)


def test_sni_picks_the_certificate_of_the_host_and_unknown_names_get_the_default(env: Env) -> None:
    ns = env.namespace()
    env.create(service("web", ns))
    env.create(endpoints("web", ns, [BACKENDS[0]]))
    env.create(tls_secret("a-cert", ns, f"a.{ns}.test"))
    env.create(tls_secret("wild-cert", ns, f"*.w.{ns}.test"))
    env.create(ingress("tls", ns, [host_rule(f"a.{ns}.test", ("Prefix", "/", "web")),
                                   host_rule(f"x.w.{ns}.test", ("Prefix", "/", "web"))],
                       tls=[{"hosts": [f"a.{ns}.test"], "secretName": "a-cert"},
                            {"hosts": [f"*.w.{ns}.test"], "secretName": "wild-cert"}]))
    eventually(lambda: served_cn(env, f"a.{ns}.test") == f"a.{ns}.test", "the certificate of a")
    assert served_cn(env, f"x.w.{ns}.test") == f"*.w.{ns}.test"
    assert served_cn(env, f"unknown.{ns}.test") == DEFAULT_CN
    assert served_cn(env, None) == DEFAULT_CN
    resp = env.request(f"a.{ns}.test", "/over-tls", port=HTTPS, tls=True)
    assert resp.status == 200 and resp.json()["headers"]["X-Forwarded-Proto"] == "https"


def test_plain_http_to_a_tls_host_is_redirected_unless_the_ingress_says_not_to(env: Env) -> None:
    ns = env.namespace()
    env.create(service("web", ns))
    env.create(endpoints("web", ns, [BACKENDS[1]]))
    env.create(tls_secret("c", ns, f"r.{ns}.test"))
    env.create(ingress("redirect", ns, [host_rule(f"r.{ns}.test", ("Prefix", "/", "web"))],
                       tls=[{"hosts": [f"r.{ns}.test"], "secretName": "c"}]))
    env.create(ingress("plain", ns, [host_rule(f"p.{ns}.test", ("Prefix", "/", "web"))],
                       tls=[{"hosts": [f"p.{ns}.test"], "secretName": "c"}],
                       annotations={"nginx.ingress.kubernetes.io/ssl-redirect": "false"}))
    resp = eventually(lambda: (r := env.request(f"r.{ns}.test", "/page?x=1")).status == 308 and r,
                      "the redirect")
    assert resp.headers["location"] == f"https://r.{ns}.test:{HTTPS}/page?x=1"
    eventually(lambda: env.request(f"p.{ns}.test", "/").status == 200,
               "no redirect when ssl-redirect is false")


def test_a_websocket_echoes_and_stays_open_while_the_configuration_changes(env: Env) -> None:
    ns = env.namespace()
    env.create(service("ws", ns))
    env.create(endpoints("ws", ns, [BACKENDS[2]]))
    env.create(ingress("ws", ns, [host_rule(f"ws.{ns}.test", ("Prefix", "/", "ws"))]))
    eventually(lambda: env.request(f"ws.{ns}.test", "/").status == 200, "the Ingress")

    def connect() -> websocket.WebSocket:
        return websocket.create_connection(f"ws://{GATEWAY}:{HTTP}/ws", host=f"ws.{ns}.test", timeout=10)
    ws = env.run(connect)
    try:
        ws.send("hello")
        assert ws.recv() == "b2: hello"
        ws.send_binary(bytes(range(256)) * 100)
        assert ws.recv() == bytes(range(256)) * 100
        before = env.metric("netplane_ingress_config_updates_total")
        env.create(ingress("more", ns, [host_rule(f"more.{ns}.test", ("Prefix", "/", "ws"))]))
        eventually(lambda: env.metric("netplane_ingress_config_updates_total") > before,
                   "a configuration swap")
        ws.send("still there")
        assert ws.recv() == "b2: still there"
    finally:
        ws.close()
    assert env.metric("netplane_ingress_requests_total", namespace=ns, status="101") >= 1


def test_a_websocket_over_tls(env: Env) -> None:
    ns = env.namespace()
    env.create(service("ws", ns))
    env.create(endpoints("ws", ns, [BACKENDS[0]]))
    env.create(ingress("ws", ns, [host_rule(f"wss.{ns}.test", ("Prefix", "/", "ws"))]))
    eventually(lambda: env.request(f"wss.{ns}.test", "/", port=HTTPS, tls=True).status == 200, "the Ingress")

    def echo() -> str:
        ws = websocket.create_connection(f"wss://{GATEWAY}:{HTTPS}/ws", host=f"wss.{ns}.test", timeout=10,
                                         sslopt={"cert_reqs": ssl.CERT_NONE, "check_hostname": False})
        try:
            ws.send("secure")
            return str(ws.recv())
        finally:
            ws.close()
    assert env.run(echo) == "b0: secure"
