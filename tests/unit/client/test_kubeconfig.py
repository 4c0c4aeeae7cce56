"""Kubeconfig loading: the format kubectl reads, and errors that name the file."""

from __future__ import annotations

import base64
import datetime
import ssl
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from netplane.client.kubeconfig import ClusterConfig, KubeconfigError, load_kubeconfig


def _write(path: Path, *, server: str = "https://127.0.0.1:6443", current: str | None = "main",
           namespace: str | None = None, user: dict[str, Any] | None = None, **cluster: object) -> Path:
    ctx: dict[str, object] = {"cluster": "c", "user": "u"}
    if namespace:
        ctx["namespace"] = namespace
    doc: dict[str, Any] = {
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "c", "cluster": {"server": server, **cluster}}],
        "users": [{"name": "u", "user": user if user is not None else {"token": "t0k"}}],
        "contexts": [{"name": "main", "context": ctx}],
    }
    if current:
        doc["current-context"] = current
    path.write_text(yaml.safe_dump(doc))
    return path


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _self_signed(cn: str = "test-ca") -> tuple[bytes, bytes]:
    """A self-signed certificate and its key, both PEM."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now)
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def test_server_token_namespace_and_inline_ca_are_read(tmp_path: Path) -> None:
    ca = b"-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----\n"
    cfg = load_kubeconfig(_write(tmp_path / "kc", namespace="team",
                                 **{"certificate-authority-data": _b64(ca)}))
    assert (cfg.server, cfg.token, cfg.namespace) == ("https://127.0.0.1:6443", "t0k", "team")
    assert cfg.ca_data == ca
    assert cfg.source == str(tmp_path / "kc")


def test_a_relative_ca_file_is_relative_to_the_kubeconfig(tmp_path: Path) -> None:
    (tmp_path / "ca.crt").write_bytes(b"pem")
    cfg = load_kubeconfig(_write(tmp_path / "kc", **{"certificate-authority": "ca.crt"}))
    assert cfg.ca_data == b"pem"
    assert cfg.namespace == "default"


def test_a_token_file_is_read_relative_to_the_kubeconfig_and_stripped(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("s3cret\n")
    cfg = load_kubeconfig(_write(tmp_path / "kc", user={"tokenFile": "token"}))
    assert cfg.token == "s3cret"


def test_an_inline_token_wins_over_a_token_file(tmp_path: Path) -> None:
    cfg = load_kubeconfig(_write(tmp_path / "kc", user={"token": "inline", "tokenFile": "missing"}))
    assert cfg.token == "inline"


def test_a_context_other_than_the_current_one_can_be_chosen(tmp_path: Path) -> None:
    path = _write(tmp_path / "kc")
    doc = yaml.safe_load(path.read_text())
    doc["clusters"].append({"name": "c2", "cluster": {"server": "http://10.0.0.1:8080/"}})
    doc["contexts"].append({"name": "other", "context": {"cluster": "c2", "namespace": "ops"}})
    path.write_text(yaml.safe_dump(doc))
    cfg = load_kubeconfig(path, context="other")
    assert (cfg.server, cfg.namespace, cfg.token) == ("http://10.0.0.1:8080", "ops", None)


def test_kubeconfig_env_lists_are_merged_first_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    a = _write(tmp_path / "a", user={"token": "first"})
    b = _write(tmp_path / "b", user={"token": "second"})
    monkeypatch.setenv("KUBECONFIG", f"{tmp_path / 'missing'}:{a}:{b}")
    assert load_kubeconfig().token == "first"


def test_the_current_context_may_come_from_a_later_file_of_the_list(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    a = _write(tmp_path / "a", current=None, user={"token": "from-a"})
    b = tmp_path / "b"
    b.write_text(yaml.safe_dump({"current-context": "main"}))
    monkeypatch.setenv("KUBECONFIG", f"{a}:{b}")
    assert load_kubeconfig().token == "from-a"


def test_without_path_or_env_the_netplane_default_is_used(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / ".netplane").mkdir()
    _write(tmp_path / ".netplane" / "admin.kubeconfig", user={"token": "home"})
    assert load_kubeconfig().token == "home"


def test_errors_name_the_file_and_the_problem(tmp_path: Path) -> None:
    with pytest.raises(KubeconfigError, match=r"no kubeconfig at .*nope: no such file"):
        load_kubeconfig(tmp_path / "nope")
    with pytest.raises(KubeconfigError, match="kc: no context named 'other'"):
        load_kubeconfig(_write(tmp_path / "kc"), context="other")
    with pytest.raises(KubeconfigError, match="nocur: no current-context"):
        load_kubeconfig(_write(tmp_path / "nocur", current=None))
    (tmp_path / "bad").write_text("- just\n- a list\n")
    with pytest.raises(KubeconfigError, match="bad: not a kubeconfig"):
        load_kubeconfig(tmp_path / "bad")
    with pytest.raises(KubeconfigError, match="noserver: cluster 'c' has no server"):
        load_kubeconfig(_write(tmp_path / "noserver", server=""))
    with pytest.raises(KubeconfigError, match="is not an http:// or https:// URL"):
        load_kubeconfig(_write(tmp_path / "scheme", server="127.0.0.1:6443"))
    with pytest.raises(KubeconfigError, match=r"cannot read certificate-authority .*ca\.crt"):
        load_kubeconfig(_write(tmp_path / "noca", **{"certificate-authority": "ca.crt"}))
    with pytest.raises(KubeconfigError, match="cannot read tokenFile"):
        load_kubeconfig(_write(tmp_path / "notok", user={"tokenFile": "gone"}))


def test_invalid_yaml_is_reported_on_one_line_with_its_position(tmp_path: Path) -> None:
    (tmp_path / "kc").write_text("clusters: [\n  {name: c\n")
    with pytest.raises(KubeconfigError, match=r"kc: not valid YAML at line \d+") as info:
        load_kubeconfig(tmp_path / "kc")
    assert "\n" not in str(info.value)


def test_a_context_naming_an_unknown_cluster_or_user_is_an_error(tmp_path: Path) -> None:
    path = _write(tmp_path / "kc")
    doc = yaml.safe_load(path.read_text())
    doc["contexts"][0]["context"]["user"] = "ghost"
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(KubeconfigError, match="names no known user \\('ghost'\\)"):
        load_kubeconfig(path)
    doc["contexts"][0]["context"]["cluster"] = "nowhere"
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(KubeconfigError, match="names no known cluster \\('nowhere'\\)"):
        load_kubeconfig(path)


def test_plain_http_needs_no_tls(tmp_path: Path) -> None:
    assert load_kubeconfig(_write(tmp_path / "kc", server="http://127.0.0.1:8080")).ssl_context() is None


def test_the_ca_verifies_the_server_and_client_certificates_are_loaded(tmp_path: Path) -> None:
    ca, _ = _self_signed()
    cert, key = _self_signed("admin")
    cfg = load_kubeconfig(_write(tmp_path / "kc", user={"client-certificate-data": _b64(cert),
                                                         "client-key-data": _b64(key)},
                                 **{"certificate-authority-data": _b64(ca)}))
    ctx = cfg.ssl_context()
    assert ctx is not None
    assert ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname
    assert [c["subject"] for c in ctx.get_ca_certs()] == [((("commonName", "test-ca"),),)]


def test_client_certificate_files_are_read(tmp_path: Path) -> None:
    cert, key = _self_signed("admin")
    (tmp_path / "admin.crt").write_bytes(cert)
    (tmp_path / "admin.key").write_bytes(key)
    cfg = load_kubeconfig(_write(tmp_path / "kc", user={"client-certificate": "admin.crt",
                                                         "client-key": str(tmp_path / "admin.key")}))
    assert (cfg.client_cert_data, cfg.client_key_data) == (cert, key)
    assert cfg.ssl_context() is not None


def test_insecure_skip_tls_verify_turns_verification_off(tmp_path: Path) -> None:
    ctx = load_kubeconfig(_write(tmp_path / "kc", **{"insecure-skip-tls-verify": True})).ssl_context()
    assert ctx is not None
    assert (ctx.verify_mode, ctx.check_hostname) == (ssl.CERT_NONE, False)


def test_unusable_certificates_are_kubeconfig_errors_naming_the_file() -> None:
    with pytest.raises(KubeconfigError, match="kc: certificate-authority is not a PEM certificate"):
        ClusterConfig("https://x", ca_data=b"garbage", source="kc").ssl_context()
    cert, _ = _self_signed("a")
    _, other_key = _self_signed("b")
    with pytest.raises(KubeconfigError, match="kc: client-certificate / client-key do not form"):
        ClusterConfig("https://x", client_cert_data=cert, client_key_data=other_key,
                      source="kc").ssl_context()
    with pytest.raises(KubeconfigError, match="must be given together"):
        ClusterConfig("https://x", client_cert_data=cert, source="kc").ssl_context()
