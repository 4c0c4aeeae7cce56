"""Loading a standard kubeconfig, so the file kubectl reads works here unchanged."""

from __future__ import annotations

import base64
import os
import ssl
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

DEFAULT_PATH = Path("~/.netplane/admin.kubeconfig")


class KubeconfigError(Exception):
    """A kubeconfig that cannot be used; the message names the file and the problem."""


@dataclass(frozen=True)
class ClusterConfig:
    server: str
    namespace: str = "default"
    token: str | None = None
    ca_data: bytes | None = None
    insecure_skip_tls_verify: bool = False
    client_cert_data: bytes | None = None
    client_key_data: bytes | None = None
    source: str = ""

    def ssl_context(self) -> ssl.SSLContext | None:
        """The TLS context for `server` (None for plain http)."""
        if not self.server.startswith("https://"):
            return None
        if self.insecure_skip_tls_verify:
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        elif self.ca_data:
            ctx = ssl.create_default_context(cadata=self.ca_data.decode())
        else:
            ctx = ssl.create_default_context()
        if self.client_cert_data and self.client_key_data:
            # load_cert_chain only reads files; the PEMs live in private temp files briefly.
            with tempfile.TemporaryDirectory() as tmp:
                cert, key = Path(tmp, "c.pem"), Path(tmp, "k.pem")
                cert.write_bytes(self.client_cert_data)
                key.write_bytes(self.client_key_data)
                ctx.load_cert_chain(cert, key)
        return ctx


def _candidates(path: str | Path | None) -> list[Path]:
    if path:
        return [Path(path).expanduser()]
    env = os.environ.get("KUBECONFIG", "")
    if env:
        return [Path(p).expanduser() for p in env.split(os.pathsep) if p]
    return [DEFAULT_PATH.expanduser()]


def _merge(paths: list[Path]) -> tuple[dict[str, Any], Path]:
    """kubectl's merge of a KUBECONFIG list: the first file to set a name wins."""
    merged: dict[str, Any] = {"clusters": {}, "users": {}, "contexts": {}, "current-context": ""}
    found: list[Path] = []
    for p in paths:
        try:
            doc = yaml.safe_load(p.read_text()) or {}
        except FileNotFoundError:
            continue
        except (OSError, yaml.YAMLError) as exc:
            raise KubeconfigError(f"{p}: cannot read: {exc}") from exc
        if not isinstance(doc, dict):
            raise KubeconfigError(f"{p}: not a kubeconfig (expected a mapping)")
        found.append(p)
        for section in ("clusters", "users", "contexts"):
            for entry in doc.get(section) or []:
                if isinstance(entry, dict) and entry.get("name"):
                    merged[section].setdefault(entry["name"], (entry, p))
        if not merged["current-context"] and doc.get("current-context"):
            merged["current-context"] = doc["current-context"]
    if not found:
        names = ", ".join(str(p) for p in paths)
        raise KubeconfigError(f"no kubeconfig at {names}; pass --kubeconfig or set $KUBECONFIG")
    return merged, found[0]


def _data(section: dict[str, Any], key: str, base_dir: Path, where: str) -> bytes | None:
    if section.get(f"{key}-data"):
        try:
            return base64.b64decode(section[f"{key}-data"])
        except ValueError as exc:
            raise KubeconfigError(f"{where}: {key}-data is not base64") from exc
    if section.get(key):
        file = Path(section[key]).expanduser()
        file = file if file.is_absolute() else base_dir / file
        try:
            return file.read_bytes()
        except OSError as exc:
            raise KubeconfigError(f"{where}: cannot read {key} {file}: {exc.strerror}") from exc
    return None


def load_kubeconfig(path: str | Path | None = None, context: str | None = None) -> ClusterConfig:
    """The cluster, user and namespace of `context` (default: the current context) from
    `path`, else $KUBECONFIG (a list, merged as kubectl does), else DEFAULT_PATH."""
    merged, first = _merge(_candidates(path))
    name = context or merged["current-context"]
    if not name:
        raise KubeconfigError(f"{first}: no current-context; pass a context name")
    if name not in merged["contexts"]:
        raise KubeconfigError(f"{first}: no context named {name!r}")
    ctx_entry, ctx_file = merged["contexts"][name]
    ctx = ctx_entry.get("context") or {}
    cluster_name, user_name = ctx.get("cluster"), ctx.get("user")
    if cluster_name not in merged["clusters"]:
        raise KubeconfigError(f"{ctx_file}: context {name!r} names no known cluster ({cluster_name!r})")
    cl_entry, cl_file = merged["clusters"][cluster_name]
    cluster = cl_entry.get("cluster") or {}
    server = cluster.get("server")
    if not server:
        raise KubeconfigError(f"{cl_file}: cluster {cluster_name!r} has no server")
    user: dict[str, Any] = {}
    user_file = cl_file
    if user_name:
        if user_name not in merged["users"]:
            raise KubeconfigError(f"{ctx_file}: context {name!r} names no known user ({user_name!r})")
        u_entry, user_file = merged["users"][user_name]
        user = u_entry.get("user") or {}
    token = user.get("token")
    if not token and user.get("tokenFile"):
        try:
            token = Path(user["tokenFile"]).expanduser().read_text().strip()
        except OSError as exc:
            raise KubeconfigError(f"{user_file}: cannot read tokenFile: {exc.strerror}") from exc
    return ClusterConfig(
        server=server.rstrip("/"),
        namespace=ctx.get("namespace") or "default",
        token=token,
        ca_data=_data(cluster, "certificate-authority", cl_file.parent, str(cl_file)),
        insecure_skip_tls_verify=bool(cluster.get("insecure-skip-tls-verify")),
        client_cert_data=_data(user, "client-certificate", user_file.parent, str(user_file)),
        client_key_data=_data(user, "client-key", user_file.parent, str(user_file)),
        source=str(first),
    )
