"""TLS termination: one server context whose SNI callback hands each connection the context
of the certificate for its server name (exact host, then the "*." wildcard one label up),
else a self-signed default certificate, as ingress-nginx's "Fake Certificate"."""

from __future__ import annotations

import contextlib
import datetime
import logging
import os
import ssl
import tempfile
from collections.abc import Mapping

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from netplane.ingress.config import Certificate
from netplane.ingress.paths import normalize_host

log = logging.getLogger(__name__)

DEFAULT_CN = "netplane ingress default certificate"


def self_signed(common_name: str = DEFAULT_CN, days: int = 365) -> tuple[bytes, bytes]:
    """A self-signed certificate and its key, PEM."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    return (cert.public_bytes(serialization.Encoding.PEM),
            key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()))


def server_context(cert_pem: bytes, key_pem: bytes) -> ssl.SSLContext:
    """A server context for one certificate. ssl only loads certificates from files: they
    are written to a private temporary directory and removed at once."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_alpn_protocols(["http/1.1"])
    with tempfile.TemporaryDirectory(prefix="netplane-tls-") as tmp:
        cert_path, key_path = os.path.join(tmp, "tls.crt"), os.path.join(tmp, "tls.key")
        for path, data in ((cert_path, cert_pem), (key_path, key_pem)):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
        ctx.load_cert_chain(cert_path, key_path)
    return ctx


class TlsContexts:
    """The listener's context plus one context per certificate, swapped with the config."""

    def __init__(self) -> None:
        cert, key = self_signed()
        self.default = server_context(cert, key)
        self.default.sni_callback = self._sni
        self._by_host: dict[str, ssl.SSLContext] = {}
        self._by_fingerprint: dict[str, ssl.SSLContext] = {}

    @property
    def context(self) -> ssl.SSLContext:
        return self.default

    def update(self, certificates: Mapping[str, Certificate]) -> list[str]:
        """Installs the certificates (host pattern -> certificate); returns problems. A
        certificate that does not load leaves its hosts on the default certificate."""
        problems = []
        by_fp: dict[str, ssl.SSLContext] = {}
        by_host: dict[str, ssl.SSLContext] = {}
        for host, cert in certificates.items():
            fp = cert.fingerprint
            ctx = by_fp.get(fp) or self._by_fingerprint.get(fp)
            if ctx is None:
                try:
                    ctx = server_context(cert.cert_pem, cert.key_pem)
                except (ssl.SSLError, OSError, ValueError) as exc:
                    problems.append(f"TLS secret {cert.namespace}/{cert.name} for {host}: {exc}")
                    continue
            by_fp[fp] = ctx
            by_host[host] = ctx
        self._by_fingerprint, self._by_host = by_fp, by_host  # one assignment each: atomic
        return problems

    def for_name(self, server_name: str | None) -> ssl.SSLContext | None:
        if not server_name:
            return None
        host = normalize_host(server_name)
        ctx = self._by_host.get(host)
        if ctx is None:
            dot = host.find(".")
            if dot > 0:
                ctx = self._by_host.get("*" + host[dot:])
        return ctx

    def _sni(self, sslobj: ssl.SSLObject, server_name: str | None, _ctx: ssl.SSLContext) -> None:
        ctx = self.for_name(server_name)
        if ctx is not None:
            with contextlib.suppress(ssl.SSLError):
                sslobj.context = ctx
