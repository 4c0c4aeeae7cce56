"""The apiserver's PKI, bearer tokens, authorizer and admin kubeconfig."""

from __future__ import annotations

import base64
import datetime as dt
import shutil
import ssl
import stat
import subprocess
from pathlib import Path

import aiohttp
import pytest
import yaml
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from control.apiserver.auth import (
    Authenticator,
    User,
    authorize,
    ensure_tokens,
    parse_token_file,
    write_kubeconfig,
)
from control.apiserver.certs import ensure_pki, server_ssl_context


def _load(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def _sans(cert: x509.Certificate) -> tuple[set[str], set[str]]:
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return ({str(i) for i in san.get_values_for_type(x509.IPAddress)},
            set(san.get_values_for_type(x509.DNSName)))


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_first_start_makes_a_ca_and_a_serving_cert_that_chains_to_it(tmp_path: Path) -> None:
    pki = ensure_pki(tmp_path, ["10.96.0.1"], ["api.example"])
    ca, serving = _load(pki.ca_cert), _load(pki.serving_cert)
    assert ca.subject.rfc4514_string() == "CN=netplane-ca"
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert ca.not_valid_after_utc - dt.datetime.now(dt.UTC) > dt.timedelta(days=3600)
    serving.verify_directly_issued_by(ca)
    ips, dns = _sans(serving)
    assert {"127.0.0.1", "::1", "10.96.0.1"} <= ips
    assert {"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
            "kubernetes.default.svc.cluster.local", "api.example"} <= dns
    eku = serving.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.SERVER_AUTH in eku
    assert pki.ca_pem == pki.ca_cert.read_bytes()
    assert _mode(pki.ca_key) == 0o600
    assert _mode(pki.serving_key) == 0o600
    assert isinstance(serving.public_key(), ec.EllipticCurvePublicKey)


def test_a_second_start_reuses_the_ca_and_serving_cert(tmp_path: Path) -> None:
    first = ensure_pki(tmp_path, ["10.96.0.1"], [])
    before = (first.ca_cert.read_bytes(), first.serving_cert.read_bytes())
    second = ensure_pki(tmp_path, ["10.96.0.1"], [])
    assert (second.ca_cert.read_bytes(), second.serving_cert.read_bytes()) == before


def test_a_new_san_reissues_the_serving_cert_but_keeps_the_ca(tmp_path: Path) -> None:
    first = ensure_pki(tmp_path, ["10.96.0.1"], [])
    ca_before, serving_before = first.ca_pem, first.serving_cert.read_bytes()
    second = ensure_pki(tmp_path, ["10.96.0.1", "192.168.7.7"], ["new.example"])
    assert second.ca_pem == ca_before
    assert second.serving_cert.read_bytes() != serving_before
    ips, dns = _sans(_load(second.serving_cert))
    assert "192.168.7.7" in ips
    assert "new.example" in dns
    _load(second.serving_cert).verify_directly_issued_by(_load(second.ca_cert))


def test_a_wildcard_bind_address_is_not_put_in_the_certificate(tmp_path: Path) -> None:
    pki = ensure_pki(tmp_path, ["0.0.0.0", "::"], [])
    ips, _ = _sans(_load(pki.serving_cert))
    assert ips == {"127.0.0.1", "::1"}


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1"])
async def test_tls_round_trip_succeeds_for_a_client_trusting_only_the_ca(
        tmp_path: Path, host: str) -> None:
    pki = ensure_pki(tmp_path, [], [])
    app = web.Application()
    async def healthz(_: web.Request) -> web.Response:
        return web.Response(text="ok")

    app.router.add_get("/healthz", healthz)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_ssl_context(pki))
    await site.start()
    try:
        port = runner.addresses[0][1]
        client_ctx = ssl.create_default_context(cadata=pki.ca_pem.decode())
        async with aiohttp.ClientSession() as session, session.get(
                f"https://{host}:{port}/healthz", ssl=client_ctx) as resp:
            assert await resp.text() == "ok"
        # A client with only the system roots must refuse the netplane CA's certificate.
        async with aiohttp.ClientSession() as session:
            with pytest.raises(aiohttp.ClientConnectorCertificateError):
                await session.get(f"https://{host}:{port}/healthz",
                                  ssl=ssl.create_default_context())
    finally:
        await runner.cleanup()


# --- tokens ---------------------------------------------------------------------------


def test_first_start_writes_an_admin_token_and_a_restart_keeps_it(tmp_path: Path) -> None:
    path, token = ensure_tokens(tmp_path)
    assert path == tmp_path / "tokens.csv"
    assert _mode(path) == 0o600
    assert len(token) >= 32
    with path.open("a") as f:
        f.write('viewertoken,alice,1001,"netplane:viewers,devs"\n')
    again, token2 = ensure_tokens(tmp_path)
    assert (again, token2) == (path, token)
    users = {user.name: user for _, user in parse_token_file(path.read_text())}
    assert users["alice"].groups == ("netplane:viewers", "devs")
    assert users["admin"].groups == ("system:masters",)


def _authn() -> Authenticator:
    return Authenticator([("s3cret-admin", User("admin", "0", ("system:masters",))),
                          ("viewer-token", User("alice", "1001", ("netplane:viewers",)))])


def test_a_known_bearer_token_authenticates_its_user() -> None:
    user = _authn().authenticate("Bearer s3cret-admin")
    assert user is not None
    assert user.name == "admin"
    assert set(user.groups) == {"system:masters", "system:authenticated"}
    alice = _authn().authenticate("bearer viewer-token")
    assert alice is not None
    assert alice.name == "alice"


@pytest.mark.parametrize("header", [
    None, "", "Bearer", "Bearer ", "Bearer wrong", "Basic s3cret-admin", "s3cret-admin",
    "Bearer s3cret-admin extra", "Bearer s3cret-admi", "Bearer s3cret-admin\x00",
    "Bearer \udcff", "Token s3cret-admin",
])
def test_missing_wrong_or_malformed_authorization_headers_are_rejected(header: str | None) -> None:
    assert _authn().authenticate(header) is None


def test_a_malformed_token_file_line_is_reported_with_its_number() -> None:
    with pytest.raises(ValueError, match="line 2"):
        parse_token_file("t,u,1\nonlytoken\n")


# --- authorizer -----------------------------------------------------------------------


@pytest.mark.parametrize(("groups", "verb", "allowed"), [
    (("system:masters",), "delete", True),
    (("netplane:viewers",), "get", True),
    (("netplane:viewers",), "list", True),
    (("netplane:viewers",), "watch", True),
    (("netplane:viewers",), "create", False),
    (("netplane:viewers",), "patch", False),
    (("netplane:viewers",), "delete", False),
    (("netplane:viewers", "system:masters"), "delete", True),
    (("devs",), "delete", True),
    ((), "update", True),
])
def test_the_authorizer_lets_viewers_only_read(groups: tuple[str, ...], verb: str,
                                                allowed: bool) -> None:
    ok, reason = authorize(User("u", "1", groups), verb, "pods")
    assert ok is allowed
    assert reason


# --- kubeconfig -----------------------------------------------------------------------


def _kubeconfig(tmp_path: Path) -> tuple[Path, bytes]:
    pki = ensure_pki(tmp_path, [], [])
    path = tmp_path / "admin.kubeconfig"
    write_kubeconfig(path, "https://127.0.0.1:6443", pki.ca_pem, "tok-123")
    return path, pki.ca_pem


def test_the_kubeconfig_loads_in_the_kubernetes_python_client(tmp_path: Path) -> None:
    from kubernetes import client, config

    path, _ = _kubeconfig(tmp_path)
    assert _mode(path) == 0o600
    cfg = client.Configuration()
    config.load_kube_config(config_file=str(path), client_configuration=cfg)
    assert cfg.host == "https://127.0.0.1:6443"
    assert cfg.get_api_key_with_prefix("BearerToken") == "Bearer tok-123"
    assert cfg.ssl_ca_cert
    assert Path(cfg.ssl_ca_cert).read_bytes().strip() == _kubeconfig_ca(path).strip()


def _kubeconfig_ca(path: Path) -> bytes:
    doc = yaml.safe_load(path.read_text())
    return base64.b64decode(doc["clusters"][0]["cluster"]["certificate-authority-data"])


@pytest.mark.kubectl
@pytest.mark.skipif(shutil.which("kubectl") is None, reason="needs the kubectl binary")
def test_the_kubeconfig_loads_in_kubectl(tmp_path: Path) -> None:
    path, ca_pem = _kubeconfig(tmp_path)
    out = subprocess.run(["kubectl", "--kubeconfig", str(path), "config", "view", "--raw",
                          "-o", "yaml"], capture_output=True, text=True, check=True, timeout=30)
    view = yaml.safe_load(out.stdout)
    assert view["current-context"] == "admin@netplane"
    assert view["clusters"][0]["cluster"]["server"] == "https://127.0.0.1:6443"
    assert view["users"][0]["user"]["token"] == "tok-123"
    assert _kubeconfig_ca(path) == ca_pem


def test_a_serving_cert_expiring_within_30_days_is_reissued(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import control.apiserver.certs as certs

    monkeypatch.setattr(certs, "SERVING_VALIDITY", dt.timedelta(days=10))
    first = ensure_pki(tmp_path, [], [])
    short_lived = first.serving_cert.read_bytes()
    monkeypatch.setattr(certs, "SERVING_VALIDITY", dt.timedelta(days=365))
    second = ensure_pki(tmp_path, [], [])
    assert second.serving_cert.read_bytes() != short_lived
    assert second.ca_pem == first.ca_pem
    remaining = _load(second.serving_cert).not_valid_after_utc - dt.datetime.now(dt.UTC)
    assert remaining > dt.timedelta(days=300)
