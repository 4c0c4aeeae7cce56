"""Who is calling, and may they: static bearer tokens, a two-rule authorizer, kubeconfigs.

Authentication follows kube-apiserver's `--token-auth-file` (CSV rows of
`token,user,uid,"group1,group2"`). Authorization is deliberately minimal, since RBAC
is out of scope:

- `system:masters` may do everything (as in Kubernetes, where RBAC cannot deny it);
- `netplane:viewers` may only get, list and watch;
- every other authenticated user may do everything. Tokens are handed out by whoever
  owns the data dir, so holding one is treated as being trusted.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import hmac
import io
import logging
import os
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import yaml

log = logging.getLogger(__name__)

MASTERS = "system:masters"
VIEWERS = "netplane:viewers"
READ_VERBS = frozenset({"get", "list", "watch"})
TOKENS_FILE = "tokens.csv"


@dataclass(frozen=True)
class User:
    """An authenticated caller; `groups` always includes `system:authenticated`."""

    name: str
    uid: str
    groups: tuple[str, ...] = field(default_factory=tuple)


def _write_private(path: Path, data: bytes) -> None:
    # Created 0600 from the start and renamed into place: a token is never world-readable.
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def parse_token_file(text: str) -> list[tuple[str, User]]:
    """Rows of a token auth file; raises ValueError naming the first bad line."""
    rows = []
    for lineno, row in enumerate(csv.reader(io.StringIO(text)), start=1):
        if not row or not "".join(row).strip() or row[0].lstrip().startswith("#"):
            continue
        if len(row) < 3 or not row[0] or not row[1]:
            raise ValueError(f"token file line {lineno}: want token,user,uid[,\"groups\"]")
        groups = tuple(g.strip() for g in row[3].split(",") if g.strip()) if len(row) > 3 else ()
        rows.append((row[0], User(row[1], row[2], groups)))
    return rows


def _format_rows(rows: Iterable[tuple[str, User]]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    for token, user in rows:
        writer.writerow([token, user.name, user.uid, ",".join(user.groups)])
    return out.getvalue().encode()


def ensure_tokens(data_dir: Path) -> tuple[Path, str]:
    """Makes sure `<data_dir>/tokens.csv` holds an admin token; returns the file and that token.

    Existing rows are kept, so tokens handed out earlier keep working after a restart.
    """
    path = data_dir / TOKENS_FILE
    rows = parse_token_file(path.read_text()) if path.exists() else []
    for token, user in rows:
        if user.name == "admin" and MASTERS in user.groups:
            return path, token
    token = secrets.token_urlsafe(32)
    rows.append((token, User("admin", "admin", (MASTERS,))))
    _write_private(path, _format_rows(rows))
    return path, token


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


class Authenticator:
    """Bearer-token authentication against a table of tokens.

    Built from a file, the table follows the file: an edit takes effect within a second,
    without the restart kube-apiserver's --token-auth-file needs. A file that no longer
    parses keeps the last good table (and says so once in the log).
    """

    RELOAD_CHECK_SECONDS = 1.0

    def __init__(self, rows: Iterable[tuple[str, User]], path: Path | None = None) -> None:
        self._set(rows)
        self._path = path
        self._mtime = self._stat()
        self._next_check = time.monotonic() + self.RELOAD_CHECK_SECONDS

    def _set(self, rows: Iterable[tuple[str, User]]) -> None:
        # Digests are compared, so every comparison is over 32 bytes whatever the token.
        self._table = [(_digest(token), user) for token, user in rows]

    def _stat(self) -> int:
        if self._path is None:
            return 0
        try:
            return self._path.stat().st_mtime_ns
        except OSError:
            return 0

    def _maybe_reload(self) -> None:
        now = time.monotonic()
        if self._path is None or now < self._next_check:
            return
        self._next_check = now + self.RELOAD_CHECK_SECONDS
        mtime = self._stat()
        if mtime == self._mtime:
            return
        self._mtime = mtime
        try:
            self._set(parse_token_file(self._path.read_text()))
        except (OSError, ValueError) as exc:
            log.error("keeping the previous tokens: cannot reload %s: %s", self._path, exc)

    @classmethod
    def from_file(cls, path: Path) -> Authenticator:
        return cls(parse_token_file(path.read_text()), path)

    def authenticate(self, authorization_header: str | None) -> User | None:
        """The user an `Authorization: Bearer <token>` header names, or None."""
        if not authorization_header:
            return None
        self._maybe_reload()
        parts = authorization_header.strip().split()
        # The scheme is case-insensitive (RFC 7235), as in Kubernetes' bearer authenticator.
        if len(parts) != 2 or parts[0].lower() != "bearer":
            return None
        offered = _digest(parts[1])
        found: User | None = None
        for digest, user in self._table:
            # No early exit: the time taken does not depend on which row matched.
            if hmac.compare_digest(digest, offered) and found is None:
                found = user
        if found is None:
            return None
        groups = found.groups
        if "system:authenticated" not in groups:
            groups = (*groups, "system:authenticated")
        return User(found.name, found.uid, groups)


def authorize(user: User, verb: str, resource: str) -> tuple[bool, str]:
    """Whether `user` may `verb` the `resource` (e.g. "pods", "pods/status"), and why."""
    if MASTERS in user.groups:
        return True, f"{MASTERS} may do everything"
    if VIEWERS in user.groups:
        if verb in READ_VERBS:
            return True, f"{VIEWERS} may get, list and watch"
        return False, f"{VIEWERS} may only get, list and watch"
    return True, "authenticated users may do everything (no RBAC in netplane)"


def write_kubeconfig(path: Path, server_url: str, ca_pem: bytes, token: str,
                     cluster_name: str = "netplane", user: str = "admin") -> None:
    """Writes a standard kubeconfig (mode 0600) that kubectl and client libraries load as is."""
    context = f"{user}@{cluster_name}"
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": cluster_name, "cluster": {
            "server": server_url,
            "certificate-authority-data": base64.b64encode(ca_pem).decode("ascii"),
        }}],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": context, "context": {"cluster": cluster_name, "user": user}}],
        "current-context": context,
        "preferences": {},
    }
    _write_private(path, yaml.safe_dump(config, sort_keys=False).encode())
