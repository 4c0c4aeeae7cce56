"""Kubeconfig loading: the format kubectl reads, and errors that name the file."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
import yaml

from netplane.client.kubeconfig import KubeconfigError, load_kubeconfig


def _write(path: Path, *, server: str = "https://127.0.0.1:6443", token: str = "t0k",
           current: str = "main", namespace: str | None = None, **cluster: object) -> Path:
    ctx: dict[str, object] = {"cluster": "c", "user": "u"}
    if namespace:
        ctx["namespace"] = namespace
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": current,
        "clusters": [{"name": "c", "cluster": {"server": server, **cluster}}],
        "users": [{"name": "u", "user": {"token": token}}],
        "contexts": [{"name": "main", "context": ctx}],
    }))
    return path


def test_server_token_namespace_and_inline_ca_are_read(tmp_path: Path) -> None:
    ca = b"-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----\n"
    cfg = load_kubeconfig(_write(tmp_path / "kc", namespace="team",
                                 **{"certificate-authority-data": base64.b64encode(ca).decode()}))
    assert (cfg.server, cfg.token, cfg.namespace) == ("https://127.0.0.1:6443", "t0k", "team")
    assert cfg.ca_data == ca


def test_a_relative_ca_file_is_relative_to_the_kubeconfig(tmp_path: Path) -> None:
    (tmp_path / "ca.crt").write_bytes(b"pem")
    cfg = load_kubeconfig(_write(tmp_path / "kc", **{"certificate-authority": "ca.crt"}))
    assert cfg.ca_data == b"pem"
    assert cfg.namespace == "default"


def test_kubeconfig_env_lists_are_merged_first_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    a = _write(tmp_path / "a", token="first")
    b = _write(tmp_path / "b", token="second")
    monkeypatch.setenv("KUBECONFIG", f"{tmp_path / 'missing'}:{a}:{b}")
    assert load_kubeconfig().token == "first"


def test_errors_name_the_file_and_the_problem(tmp_path: Path) -> None:
    with pytest.raises(KubeconfigError, match=r"no kubeconfig at .*nope"):
        load_kubeconfig(tmp_path / "nope")
    with pytest.raises(KubeconfigError, match="no context named 'other'"):
        load_kubeconfig(_write(tmp_path / "kc"), context="other")
    (tmp_path / "bad").write_text("- just\n- a list\n")
    with pytest.raises(KubeconfigError, match="not a kubeconfig"):
        load_kubeconfig(tmp_path / "bad")


def test_plain_http_needs_no_tls(tmp_path: Path) -> None:
    assert load_kubeconfig(_write(tmp_path / "kc", server="http://127.0.0.1:8080")).ssl_context() is None
