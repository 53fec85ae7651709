"""The DTLS side of a peer connection: which peers it accepts, and why a handshake failed, in words.

aiortc (1.16) as DTLS client offers only ECDHE-ECDSA cipher suites, so a server with an RSA
certificate (GStreamer's webrtcbin makes RSA-2048) has none it can use and refuses with alert 40.
`DtlsDiagnosis.install(pc)` gives the connection's DTLS contexts the ECDHE-RSA suites as well and
an OpenSSL info callback that remembers the alerts sent and received, with OpenSSL's own reason
for an alert we send ("wrong curve", "no shared cipher"), so a failure can be told to the
operator: "DTLS: peer certificate curve refused (P-224 ...)" rather than nothing.

P-224: FFmpeg built on GnuTLS (the one inside PyAV's wheel) makes its DTLS certificate on P-224.
The OpenSSL in this virtualenv (4.x, through cryptography) has the curves RFC 8422 deprecates
compiled out of TLS: it cannot offer or accept P-224 at all (SSL_CTX_set1_curves_list refuses
the name), so such a peer cannot connect; the failure says so and what to do (a P-256 certificate).
"""

from __future__ import annotations

import logging
from typing import Any

from aiortc import RTCPeerConnection
from aiortc.rtcdtlstransport import RTCCertificate, RTCDtlsTransport, SRTPProtectionProfile
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from OpenSSL import SSL
from OpenSSL import _util as openssl_util

logger = logging.getLogger(__name__)

# aiortc's four ECDHE-ECDSA suites, each followed by its ECDHE-RSA twin.
DTLS_CIPHERS = b":".join(
    (
        b"ECDHE-ECDSA-AES128-GCM-SHA256",
        b"ECDHE-RSA-AES128-GCM-SHA256",
        b"ECDHE-ECDSA-CHACHA20-POLY1305",
        b"ECDHE-RSA-CHACHA20-POLY1305",
        b"ECDHE-ECDSA-AES128-SHA",
        b"ECDHE-RSA-AES128-SHA",
        b"ECDHE-ECDSA-AES256-SHA",
        b"ECDHE-RSA-AES256-SHA",
    )
)

_ALERTS = {
    0: "close notify", 10: "unexpected message", 20: "bad record mac", 22: "record overflow",
    40: "handshake failure", 42: "bad certificate", 43: "unsupported certificate", 44: "certificate revoked",
    45: "certificate expired", 46: "certificate unknown", 47: "illegal parameter", 48: "unknown CA",
    49: "access denied", 50: "decode error", 51: "decrypt error", 70: "protocol version",
    71: "insufficient security", 80: "internal error", 86: "inappropriate fallback", 90: "user canceled",
    109: "missing extension", 110: "unsupported extension", 116: "certificate required",
}
_CURVES = {"secp224r1": "P-224", "secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}
_CLOSE_NOTIFY = 0
_PEER_REFUSED = {
    40: "the peer refused the handshake (alert 40 handshake failure: no cipher suite or certificate it accepts)",
    42: "the peer refused our certificate (alert 42 bad certificate)",
    43: "the peer refused our certificate type (alert 43 unsupported certificate)",
    47: "the peer refused a handshake parameter (alert 47 illegal parameter: our certificate's curve?)",
    70: "no DTLS version in common with the peer (alert 70 protocol version)",
}


def _openssl_lib() -> Any:
    return getattr(openssl_util, "lib")


def _openssl_ffi() -> Any:
    return getattr(openssl_util, "ffi")


def hook_problems() -> list[str]:
    """What is missing of the aiortc/pyOpenSSL internals this module relies on (empty: all there)."""
    problems = []
    create = getattr(RTCCertificate, "_create_ssl_context", None)
    if not callable(create) or "set_cipher_list" not in create.__code__.co_names:
        problems.append("RTCCertificate._create_ssl_context (sets the cipher list) is gone")
    if "_create_ssl_context" not in RTCDtlsTransport.start.__code__.co_names:
        problems.append("RTCDtlsTransport.start no longer calls _create_ssl_context")
    if "_RTCPeerConnection__certificates" not in RTCPeerConnection.__init__.__code__.co_names:
        problems.append("RTCPeerConnection.__init__ no longer sets __certificates")
    for name in ("_ssl", "encrypted"):
        if name not in RTCDtlsTransport.__init__.__code__.co_names:
            problems.append(f"RTCDtlsTransport.__init__ no longer sets {name}")
    lib = _openssl_lib()
    for function in ("ERR_peek_error", "ERR_reason_error_string"):
        if not hasattr(lib, function):
            problems.append(f"OpenSSL binding has no {function}")
    if not hasattr(SSL.Context, "set_info_callback") or not hasattr(SSL, "SSL_CB_ALERT"):
        problems.append("pyOpenSSL has no info callback")
    return problems


def curve_label(name: str) -> str:
    """"P-224" for "secp224r1", and so on; other names as they are."""
    return _CURVES.get(name, name)


def openssl_version() -> str:
    """The OpenSSL aiortc's DTLS runs on, e.g. "OpenSSL 4.0.3"."""
    text = SSL.OpenSSL_version(SSL.OPENSSL_VERSION).decode(errors="replace")
    return " ".join(text.split()[:2])


class DtlsDiagnosis:
    """The alerts of one peer connection's DTLS handshakes, kept to tell why one failed."""

    def __init__(self) -> None:
        self.alert_sent: int | None = None
        self.alert_received: int | None = None
        self.reason: str | None = None  # OpenSSL's reason for the alert we sent
        self.peer_key: str | None = None  # "P-224", "RSA-2048", ... when we refused the peer's certificate
        self.closed_by_peer = False
        self._active = True
        self._certificates: list[RTCCertificate] = []

    def install(self, pc: RTCPeerConnection) -> None:
        """Offer ECDHE-RSA suites too on `pc`'s DTLS, and watch its alerts (before any transport starts)."""
        for certificate in getattr(pc, "_RTCPeerConnection__certificates"):
            if "_create_ssl_context" in vars(certificate):
                continue
            self._certificates.append(certificate)
            original = certificate._create_ssl_context

            def create(srtp_profiles: list[SRTPProtectionProfile], _original: Any = original) -> SSL.Context:
                context: SSL.Context = _original(srtp_profiles=srtp_profiles)
                context.set_cipher_list(DTLS_CIPHERS)
                context.set_info_callback(self._info)
                return context

            setattr(certificate, "_create_ssl_context", create)

    def stop(self) -> None:
        """Record nothing more, and make no more contexts (those made live on with their connections)."""
        self._active = False
        for certificate in self._certificates:
            vars(certificate).pop("_create_ssl_context", None)
        self._certificates.clear()

    def _info(self, connection: SSL.Connection, where: int, value: int) -> None:
        # Called by OpenSSL inside aiortc's handshake: an exception here would break it.
        if not self._active or not where & SSL.SSL_CB_ALERT:
            return
        try:
            alert = value & 0xFF
            if where & SSL.SSL_CB_READ:
                if alert == _CLOSE_NOTIFY:
                    self.closed_by_peer = True
                elif self.alert_received is None:
                    self.alert_received = alert
            elif alert != _CLOSE_NOTIFY and self.alert_sent is None:
                self.alert_sent = alert
                self.reason = self._openssl_reason()
                self.peer_key = _key_label(connection)
        except Exception:  # noqa: BLE001 - must never escape into OpenSSL's handshake
            logger.exception("dtls info callback failed")

    @staticmethod
    def _openssl_reason() -> str | None:
        lib, ffi = _openssl_lib(), _openssl_ffi()
        code = lib.ERR_peek_error()  # peek: pyOpenSSL still raises it to aiortc as usual
        text = lib.ERR_reason_error_string(code) if code else ffi.NULL
        return None if text == ffi.NULL else str(ffi.string(text).decode(errors="replace"))

    def describe(self, dtls: RTCDtlsTransport | None) -> str:
        """Why the handshake failed, in words, starting "DTLS: "."""
        if self.alert_sent is not None:
            return "DTLS: " + self._we_refused()
        if self.alert_received is not None:
            name = _ALERTS.get(self.alert_received, "unknown")
            return "DTLS: " + _PEER_REFUSED.get(self.alert_received, f"the peer sent alert {self.alert_received} ({name})")
        ssl = getattr(dtls, "_ssl", None)
        if dtls is not None and getattr(dtls, "encrypted", False) and ssl is not None:
            if not ssl.get_selected_srtp_profile():
                return "DTLS: no SRTP protection profile in common with the peer"
            return "DTLS: the peer's certificate does not match the fingerprint in its SDP"
        return "DTLS: handshake failed (the connection went away during it)"

    def _we_refused(self) -> str:
        alert = self.alert_sent
        name = _ALERTS.get(alert or 0, "unknown")
        reason = self.reason or name
        if reason == "wrong curve":
            key = self.peer_key or "a curve other than P-256, P-384, P-521"
            return (
                f"peer certificate curve refused ({key}): {openssl_version()} accepts P-256, P-384 and P-521"
                " only; give the peer a P-256 certificate (FFmpeg on GnuTLS: whip cert_file/key_file)"
            )
        if reason == "no shared cipher":
            return f"no shared cipher suite (alert {alert} {name} sent)"
        return f"{reason} (alert {alert} {name} sent)"


def _key_label(connection: SSL.Connection) -> str | None:
    certificate = connection.get_peer_certificate(as_cryptography=True)
    if certificate is None:
        return None
    key = certificate.public_key()
    if isinstance(key, ec.EllipticCurvePublicKey):
        return curve_label(key.curve.name)
    if isinstance(key, rsa.RSAPublicKey):
        return f"RSA-{key.key_size}"
    return type(key).__name__
