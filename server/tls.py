"""TLS for the server: configured certificate files, or a self-signed one kept under the data directory."""

from __future__ import annotations

import datetime
import ipaddress
import logging
import os
import socket
import ssl
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from server.config import ServerSettings

logger = logging.getLogger(__name__)

CERT_FILE: Final[str] = "self-signed.crt"
KEY_FILE: Final[str] = "self-signed.key"
VALID_DAYS: Final[int] = 365
# Regenerate a little before expiry so a running server is not caught out mid-session.
RENEW_BEFORE: Final[datetime.timedelta] = datetime.timedelta(days=7)

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class TlsError(Exception):
    """TLS cannot be set up: missing or unusable certificate or key."""


def ensure_self_signed(data_dir: Path, hostnames: Sequence[str]) -> tuple[Path, Path]:
    """Return (cert, key) under `<data_dir>/tls/`, reusing a valid certificate or writing a new one."""
    tls_dir = data_dir / "tls"
    cert_path, key_path = tls_dir / CERT_FILE, tls_dir / KEY_FILE
    wanted = [*hostnames, "localhost", "127.0.0.1", "::1"]
    # The machine's own addresses go in too, but a changed DHCP address alone does not force a new cert.
    if _reusable(cert_path, key_path, *_split(wanted)):
        return cert_path, key_path
    names, ips = _split([*wanted, *_local_ipv4()])
    tls_dir.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
    alt_names: list[x509.GeneralName] = [x509.DNSName(n) for n in names]
    alt_names += [x509.IPAddress(ip) for ip in ips]
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=VALID_DAYS))
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    _write(key_path, key_pem, 0o600)
    _write(cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    logger.info("generated self-signed certificate path=%s names=%s ips=%s", cert_path, names, [str(i) for i in ips])
    return cert_path, key_path


def server_ssl_context(settings: ServerSettings, data_dir: Path) -> ssl.SSLContext | None:
    """Return the server's SSL context from configured files, a self-signed certificate, or None for plain HTTP."""
    if settings.tls_cert is not None and settings.tls_key is not None:
        cert_path, key_path = Path(settings.tls_cert), Path(settings.tls_key)
        for label, path in (("tls_cert", cert_path), ("tls_key", key_path)):
            if not path.is_file():
                raise TlsError(f"server.{label}: file not found: {path}")
    elif settings.self_signed_tls:
        hostnames = [h for h in (settings.public_host, settings.host) if h and h not in ("0.0.0.0", "::")]
        cert_path, key_path = ensure_self_signed(data_dir, hostnames)
    else:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(cert_path, key_path)
    except (ssl.SSLError, OSError) as exc:
        raise TlsError(f"cannot load certificate {cert_path} with key {key_path}: {exc}") from None
    return context


def _split(entries: Sequence[str]) -> tuple[list[str], list[IpAddress]]:
    """Split host entries into DNS names and IP addresses, dropping duplicates and keeping order."""
    names: list[str] = []
    ips: list[IpAddress] = []
    for entry in entries:
        try:
            ip = ipaddress.ip_address(entry)
        except ValueError:
            if entry and entry not in names:
                names.append(entry)
        else:
            if ip not in ips:
                ips.append(ip)
    return names, ips


def _local_ipv4() -> list[str]:
    """This machine's non-loopback IPv4 addresses as the resolver knows them; sends nothing."""
    try:
        _, _, addresses = socket.gethostbyname_ex(socket.gethostname())
    except OSError:
        return []
    return [a for a in addresses if not ipaddress.ip_address(a).is_loopback]


def _reusable(cert_path: Path, key_path: Path, names: list[str], ips: list[IpAddress]) -> bool:
    """Whether an existing certificate is still valid and covers every wanted name and address."""
    if not (cert_path.is_file() and key_path.is_file()):
        return False
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (ValueError, OSError, x509.ExtensionNotFound):
        return False
    now = datetime.datetime.now(datetime.timezone.utc)
    if cert.not_valid_after_utc - RENEW_BEFORE <= now:
        return False
    have_names = set(san.get_values_for_type(x509.DNSName))
    have_ips = set(san.get_values_for_type(x509.IPAddress))
    return set(names) <= have_names and set(ips) <= have_ips


def _write(path: Path, data: bytes, mode: int) -> None:
    """Write a file atomically with the given permissions."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    os.fchmod(fd, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)
