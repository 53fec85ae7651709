"""Self-signed certificates for test peers (DTLS), on whatever key a test needs."""

from __future__ import annotations

import datetime

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa


def self_signed(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey, name: str, *, days: int = 1) -> x509.Certificate:
    """A certificate for `key`, signed by it, valid from a day ago for `days` days."""
    subject = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    return (
        x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=days)).sign(key, hashes.SHA256())
    )
