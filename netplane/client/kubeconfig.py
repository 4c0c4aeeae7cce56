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
        where = self.source or "kubeconfig"
        try:
            if self.insecure_skip_tls_verify:
                ctx = ssl.create_default_context()
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
            elif self.ca_data:
                ctx = ssl.create_default_context(cadata=self.ca_data.decode(errors="replace"))
            else:
                ctx = ssl.create_default_context()
        except ssl.SSLError as exc:
            raise KubeconfigError(f"{where}: certificate-authority is not a PEM certificate: "
                                  f"{exc.reason or exc}") from exc
        if self.client_cert_data and self.client_key_data:
            # load_cert_chain only reads files; the PEMs live in a private (0700) temporary
            # directory only for the duration of the call.
            with tempfile.TemporaryDirectory() as tmp:
                cert, key = Path(tmp, "c.pem"), Path(tmp, "k.pem")
                cert.write_bytes(self.client_cert_data)
                key.write_bytes(self.client_key_data)
                try:
                    ctx.load_cert_chain(cert, key)
                except ssl.SSLError as exc:
                    raise KubeconfigError(f"{where}: client-certificate / client-key do not form "
                                          f"a usable pair: {exc.reason or exc}") from exc
        elif self.client_cert_data or self.client_key_data:
            raise KubeconfigError(f"{where}: client-certificate and client-key must be given together")
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
        except IsADirectoryError as exc:
            raise KubeconfigError(f"{p}: is a directory, not a kubeconfig file") from exc
        except OSError as exc:
            raise KubeconfigError(f"{p}: cannot read: {exc.strerror}") from exc
        except yaml.YAMLError as exc:
            # PyYAML's messages span lines; the first line plus the position is enough.
            mark = getattr(exc, "problem_mark", None)
            at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
            raise KubeconfigError(f"{p}: not valid YAML{at}: {problem}") from exc
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


def _mapping(entry: dict[str, Any], field: str, file: Path) -> dict[str, Any]:
    """The body of a named entry (`{name: x, cluster: {...}}`), checked to be a mapping."""
    body = entry.get(field) or {}
    if not isinstance(body, dict):
        raise KubeconfigError(f"{file}: {field} {entry.get('name')!r} is not a mapping")
    return body


def _relative_to(name: str, base_dir: Path) -> Path:
    file = Path(name).expanduser()
    return file if file.is_absolute() else base_dir / file


def _data(section: dict[str, Any], key: str, base_dir: Path, where: str) -> bytes | None:
    if section.get(f"{key}-data"):
        try:
            return base64.b64decode(section[f"{key}-data"])
        except ValueError as exc:
            raise KubeconfigError(f"{where}: {key}-data is not base64") from exc
    if section.get(key):
        file = _relative_to(section[key], base_dir)
        try:
            return file.read_bytes()
        except OSError as exc:
            raise KubeconfigError(f"{where}: cannot read {key} {file}: {exc.strerror}") from exc
    return None


def load_kubeconfig(path: str | Path | None = None, context: str | None = None) -> ClusterConfig:
    """The cluster, user and namespace of `context` (default: the current context) from
    `path`, else $KUBECONFIG (a list, merged as kubectl does), else DEFAULT_PATH."""
    if path and not Path(path).expanduser().exists():
        raise KubeconfigError(f"no kubeconfig at {path}: no such file")
    merged, first = _merge(_candidates(path))
    name = context or merged["current-context"]
    if not name:
        raise KubeconfigError(f"{first}: no current-context; pass a context name")
    if name not in merged["contexts"]:
        raise KubeconfigError(f"{first}: no context named {name!r}")
    ctx_entry, ctx_file = merged["contexts"][name]
    ctx = _mapping(ctx_entry, "context", ctx_file)
    cluster_name, user_name = ctx.get("cluster"), ctx.get("user")
    if cluster_name not in merged["clusters"]:
        raise KubeconfigError(f"{ctx_file}: context {name!r} names no known cluster ({cluster_name!r})")
    cl_entry, cl_file = merged["clusters"][cluster_name]
    cluster = _mapping(cl_entry, "cluster", cl_file)
    server = cluster.get("server")
    if not server:
        raise KubeconfigError(f"{cl_file}: cluster {cluster_name!r} has no server")
    if not str(server).startswith(("https://", "http://")):
        raise KubeconfigError(f"{cl_file}: cluster {cluster_name!r} server {server!r} is not an "
                              "http:// or https:// URL")
    user: dict[str, Any] = {}
    user_file = cl_file
    if user_name:
        if user_name not in merged["users"]:
            raise KubeconfigError(f"{ctx_file}: context {name!r} names no known user ({user_name!r})")
        u_entry, user_file = merged["users"][user_name]
        user = _mapping(u_entry, "user", user_file)
    token = user.get("token")
    if not token and user.get("tokenFile"):
        # kubectl resolves relative paths in a kubeconfig against the file's own directory.
        token_file = _relative_to(user["tokenFile"], user_file.parent)
        try:
            token = token_file.read_text().strip()
        except OSError as exc:
            raise KubeconfigError(f"{user_file}: cannot read tokenFile {token_file}: "
                                  f"{exc.strerror}") from exc
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
