"""The apiserver's PKI: a cluster CA and a serving certificate it signs, kept in the data dir.

Made on first start and reused afterwards, like kubeadm's `pki/` directory. The CA is
never replaced (clients' kubeconfigs trust it); the serving certificate is re-issued
when it lacks a requested name or is close to expiry.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_VALIDITY = dt.timedelta(days=3650)
SERVING_VALIDITY = dt.timedelta(days=365)
RENEW_BEFORE = dt.timedelta(days=30)

# The names in-cluster clients and kubectl use for the apiserver (kubeadm's defaults).
DEFAULT_DNS = ("localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
               "kubernetes.default.svc.cluster.local")
DEFAULT_IPS = ("127.0.0.1", "::1")


@dataclass(frozen=True)
class Pki:
    """Where the PKI files live, and the CA certificate that clients must trust."""

    ca_cert: Path
    ca_key: Path
    serving_cert: Path
    serving_key: Path
    ca_pem: bytes


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _write(path: Path, data: bytes, *, secret: bool) -> None:
    # Written beside and renamed over: a crash never leaves a half-written key, and
    # O_CREAT with 0o600 means a private key is never readable by others, even briefly.
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if secret else 0o644)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _new_ca() -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "netplane-ca")])
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + CA_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
            key_encipherment=False, data_encipherment=False, key_agreement=False,
            encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def _new_serving(ca: x509.Certificate, ca_key: ec.EllipticCurvePrivateKey, ips: list[str],
                 dns: list[str]) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = _now()
    sans: list[x509.GeneralName] = [x509.DNSName(n) for n in dns]
    sans += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-apiserver")]))
        .issuer_name(ca.subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + SERVING_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=True, key_encipherment=False, key_cert_sign=False, crl_sign=False,
            content_commitment=False, data_encipherment=False, key_agreement=False,
            encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                       critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return cert, key


def _wanted_names(extra_ips: list[str], extra_dns: list[str]) -> tuple[list[str], list[str]]:
    ips: list[str] = []
    for ip in (*DEFAULT_IPS, *extra_ips):
        # Normalised so "::0001" and "::1" count as one name; wildcard binds are no name.
        addr = ipaddress.ip_address(ip)
        if not addr.is_unspecified and str(addr) not in ips:
            ips.append(str(addr))
    dns = list(dict.fromkeys([*DEFAULT_DNS, *(d.lower() for d in extra_dns)]))
    return ips, dns


def _serving_is_fresh(path: Path, key_path: Path, ca: x509.Certificate, ips: list[str],
                      dns: list[str]) -> bool:
    if not path.exists() or not key_path.exists():
        return False
    try:
        cert = x509.load_pem_x509_certificate(path.read_bytes())
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (ValueError, x509.ExtensionNotFound):
        return False
    have_ips = {str(ip) for ip in san.get_values_for_type(x509.IPAddress)}
    have_dns = {d.lower() for d in san.get_values_for_type(x509.DNSName)}
    return (cert.issuer == ca.subject
            and cert.not_valid_after_utc - _now() > RENEW_BEFORE
            and set(ips) <= have_ips and set(dns) <= have_dns)


def ensure_pki(data_dir: Path, extra_ips: list[str], extra_dns: list[str]) -> Pki:
    """Creates or reuses `<data_dir>/pki`; re-issues the serving cert if names or time run out."""
    pki_dir = data_dir / "pki"
    pki_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    pki = Pki(pki_dir / "ca.crt", pki_dir / "ca.key", pki_dir / "apiserver.crt",
              pki_dir / "apiserver.key", b"")
    if pki.ca_cert.exists() and pki.ca_key.exists():
        ca = x509.load_pem_x509_certificate(pki.ca_cert.read_bytes())
        ca_key = serialization.load_pem_private_key(pki.ca_key.read_bytes(), password=None)
        if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
            raise ValueError(f"{pki.ca_key}: expected an EC private key")
    else:
        ca, ca_key = _new_ca()
        _write(pki.ca_key, _key_pem(ca_key), secret=True)
        _write(pki.ca_cert, ca.public_bytes(serialization.Encoding.PEM), secret=False)
    ips, dns = _wanted_names(extra_ips, extra_dns)
    if not _serving_is_fresh(pki.serving_cert, pki.serving_key, ca, ips, dns):
        cert, key = _new_serving(ca, ca_key, ips, dns)
        _write(pki.serving_key, _key_pem(key), secret=True)
        _write(pki.serving_cert, cert.public_bytes(serialization.Encoding.PEM), secret=False)
    return Pki(pki.ca_cert, pki.ca_key, pki.serving_cert, pki.serving_key, pki.ca_cert.read_bytes())


def server_ssl_context(pki: Pki) -> ssl.SSLContext:
    """A TLS 1.2+ server context presenting the serving certificate."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(pki.serving_cert, pki.serving_key)
    # kubectl negotiates HTTP/2 when offered; aiohttp serves HTTP/1.1 only.
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx
