"""PeerHealth between two real aiortc peers in memory: consent, silence, slow links, DTLS refusals.

The watched peer has a `PeerHealth`; the other ("remote") is a plain aiortc peer whose sends are
shaped at its sockets (`inject_send_delay`): delayed, or dropped by kind (STUN requests, STUN
answers, media), as FFmpeg (answers one binding request, ever), a black hole or a satellite link
would. Liveness settings are shortened so that expiries happen in seconds.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import pytest
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import AudioStreamTrack
from aiortc.rtcdtlstransport import RTCCertificate
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from media.aiortc.client import inject_send_delay
from media.aiortc.guard import HookMismatch, check_hooks
from media.aiortc.ice import close_peer_connection
from media.counters import RelayCounters
from media.dtls import DtlsDiagnosis
from media.liveness import Failure, LivenessSettings, PeerHealth, PeerState
from media.publication import Publication
from media.router import RoomRouter
from tests.certificates import self_signed

FAST = LivenessSettings(probe_after=0.5, stalled_after=1.0, consent_expiry=2.0, connect_timeout=15.0)


def kind_of(datagram: bytes) -> str:
    """What a datagram on an ICE socket is (RFC 7983 demultiplexing; STUN by message type)."""
    first = datagram[0]
    if first < 2:
        return {0x0001: "stun-request", 0x0101: "stun-answer"}.get(int.from_bytes(datagram[:2], "big"), "stun-other")
    if 19 < first < 64:
        return "dtls"
    if 127 < first < 192:
        return "rtcp" if 191 < datagram[1] < 224 else "media"
    return "other"


@dataclass
class Shaper:
    """Which kinds of datagram a peer's sockets drop, changed by the test as it goes; counts what was sent."""

    blocked: set[str] = field(default_factory=set)
    sent: dict[str, int] = field(default_factory=dict)

    def drop(self, datagram: bytes) -> bool:
        kind = kind_of(datagram)
        self.sent[kind] = self.sent.get(kind, 0) + 1
        return kind in self.blocked


class Recorder:
    """Collects a PeerHealth's changes with their times; waits for one."""

    def __init__(self) -> None:
        self.changes: list[tuple[float, PeerState, Failure | None]] = []
        self._changed = asyncio.Condition()

    def record(self, state: PeerState, failure: Failure | None) -> None:
        self.changes.append((time.monotonic(), state, failure))
        asyncio.get_running_loop().create_task(self._notify())

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    def states(self) -> list[PeerState]:
        return [state for _, state, _ in self.changes]

    async def wait_for(self, state: PeerState, timeout: float, *, after: float = 0.0) -> float:
        """The time `state` was reached (after `after`); TimeoutError if not within `timeout`."""

        def reached() -> float | None:
            return next((t for t, s, _ in self.changes if s == state and t >= after), None)

        async with asyncio.timeout(timeout):
            async with self._changed:
                await self._changed.wait_for(lambda: reached() is not None)
        at = reached()
        assert at is not None
        return at

    async def nothing_for(self, seconds: float) -> None:
        """Assert that no change comes within `seconds` (waiting on the change itself)."""
        count = len(self.changes)
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(seconds):
                async with self._changed:
                    await self._changed.wait_for(lambda: len(self.changes) > count)


@dataclass
class Pair:
    watched: RTCPeerConnection
    remote: RTCPeerConnection
    health: PeerHealth
    recorder: Recorder
    shaper: Shaper


PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


def certificate(key: PrivateKey) -> RTCCertificate:
    """A self-signed DTLS certificate on `key` (aiortc only makes P-256 ones)."""
    return RTCCertificate(key=key, cert=self_signed(key, "peer"))  # type: ignore[arg-type]  # aiortc types ECDSA keys only


def new_pc() -> RTCPeerConnection:
    # No STUN server: host candidates only (a default config would ask Google's).
    return RTCPeerConnection(RTCConfiguration(iceServers=[]))


async def negotiate(offerer: RTCPeerConnection, answerer: RTCPeerConnection) -> None:
    await offerer.setLocalDescription(await offerer.createOffer())
    await answerer.setRemoteDescription(offerer.localDescription)
    await answerer.setLocalDescription(await answerer.createAnswer())
    await offerer.setRemoteDescription(answerer.localDescription)


@pytest.fixture
async def make_pair() -> AsyncIterator[Callable[..., Pair]]:
    """Build a watched peer and a remote peer (not yet negotiated); everything is closed after the test."""
    pairs: list[Pair] = []

    def make(
        settings: LivenessSettings = FAST,
        *,
        delay: float = 0.0,
        remote_sends_audio: bool = True,
        watched_key: PrivateKey | None = None,
        remote_key: PrivateKey | None = None,
    ) -> Pair:
        watched, remote = new_pc(), new_pc()
        for pc, key in ((watched, watched_key), (remote, remote_key)):
            if key is not None:  # before PeerHealth.start(), which hooks the certificate's DTLS context
                setattr(pc, "_RTCPeerConnection__certificates", [certificate(key)])
        recorder, shaper = Recorder(), Shaper()
        health = PeerHealth(watched, settings=settings, on_change=recorder.record, label="watched")
        health.start()
        if remote_sends_audio:
            remote.addTransceiver(AudioStreamTrack(), direction="sendonly")
        else:
            remote.addTransceiver("audio", direction="recvonly")
        inject_send_delay(remote, delay, drop=shaper.drop)
        pair = Pair(watched, remote, health, recorder, shaper)
        pairs.append(pair)
        return pair

    yield make
    for pair in pairs:
        await pair.health.close()
        await close_peer_connection(pair.watched)
        await close_peer_connection(pair.remote)
    assert [t.get_name() for t in asyncio.all_tasks() if t.get_name().startswith("peer-health:")] == []


async def test_a_peer_that_answers_no_consent_checks_but_sends_media_keeps_consent(make_pair) -> None:
    pair = make_pair()
    await negotiate(pair.remote, pair.watched)
    await pair.recorder.wait_for("alive", 10)
    # Like FFmpeg after its first answer; RTCP dropped too, so that RTP alone keeps consent.
    pair.shaper.blocked = {"stun-request", "stun-answer", "rtcp"}
    await pair.recorder.nothing_for(2.5 * FAST.consent_expiry)
    assert pair.health.state == "alive" and pair.recorder.states() == ["alive"]

    stopped = time.monotonic()
    pair.shaper.blocked |= {"media", "dtls"}  # and now the media stops too
    failed = await pair.recorder.wait_for("failed", FAST.consent_expiry + 2)
    assert pair.health.failure == Failure("consent_expired", "consent expired: nothing heard from the peer for 2 s")
    assert pair.recorder.states() == ["alive", "stalled", "failed"]
    assert FAST.consent_expiry - 0.1 <= failed - stopped <= FAST.consent_expiry + 0.5
    assert pair.health.remote_address is not None


async def test_a_publisher_on_the_relay_lean_receive_path_keeps_consent_with_media_alone() -> None:
    router = RoomRouter("lean", counters=RelayCounters(), liveness=FAST)
    recorder, shaper = Recorder(), Shaper()
    client = new_pc()
    client.addTransceiver(AudioStreamTrack(), direction="sendonly")
    inject_send_delay(client, 0.0, drop=shaper.drop)
    publications: list[Publication] = []
    peer = router.new_publisher("county01", on_publication=publications.append, on_health=recorder.record)
    try:
        await client.setLocalDescription(await client.createOffer())
        answer = await peer.answer(client.localDescription.sdp, {})
        await client.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
        await recorder.wait_for("alive", 10)
        shaper.blocked = {"stun-request", "stun-answer", "rtcp"}  # RTP alone, which the lean path unprotects
        await recorder.nothing_for(2.5 * FAST.consent_expiry)
        assert peer.health.state == "alive"
        assert publications and publications[0].kind == "audio"
    finally:
        await router.close()
        await close_peer_connection(client)
    assert peer.closed


async def test_a_black_holed_peer_is_stalled_within_stalled_after_then_failed(make_pair) -> None:
    settings = LivenessSettings(probe_after=0.5, stalled_after=1.5, consent_expiry=3.0, connect_timeout=15.0)
    pair = make_pair(settings)
    probes = Shaper()  # counts what the watched peer sends
    inject_send_delay(pair.watched, 0.0, drop=probes.drop)
    closed = asyncio.Event()
    pair.watched.on("connectionstatechange", lambda: closed.set() if pair.watched.connectionState == "closed" else None)
    await negotiate(pair.remote, pair.watched)
    await pair.recorder.wait_for("alive", 10)
    checks_before = probes.sent.get("stun-request", 0)

    holed = time.monotonic()
    pair.shaper.blocked = {"stun-request", "stun-answer", "media", "rtcp", "dtls"}
    stalled = await pair.recorder.wait_for("stalled", settings.stalled_after + 1)
    assert stalled - holed <= settings.stalled_after + 0.4  # a small margin for a busy event loop
    failed = await pair.recorder.wait_for("failed", settings.consent_expiry)
    assert pair.health.failure is not None and pair.health.failure.code == "consent_expired"
    assert failed - holed <= settings.consent_expiry + 0.4
    print(f"black hole: stalled after {stalled - holed:.2f} s, failed after {failed - holed:.2f} s")
    # Quiet from 0.5 s on: a check and its retransmissions (0.5, 1.5 s after it) before expiry.
    assert probes.sent.get("stun-request", 0) - checks_before >= 3
    await asyncio.wait_for(closed.wait(), 5)  # consent gone: the ICE connection was closed


async def test_consent_answers_delayed_by_one_and_a_half_seconds_keep_a_silent_peer_alive(make_pair) -> None:
    """The remote sends no media; every datagram it sends (STUN answers too) leaves 1.5 s late."""
    settings = LivenessSettings(consent_expiry=5.0, connect_timeout=20.0)  # probe 1.5 s, stalled 4 s
    pair = make_pair(settings, delay=1.5, remote_sends_audio=False)
    probes = Shaper()
    inject_send_delay(pair.watched, 0.0, drop=probes.drop)
    await negotiate(pair.remote, pair.watched)
    await pair.recorder.wait_for("alive", 20)
    pair.shaper.blocked = {"media", "rtcp", "dtls", "stun-request"}  # only (late) answers to our checks
    checks_before = probes.sent.get("stun-request", 0)
    await pair.recorder.nothing_for(2 * settings.consent_expiry)
    assert pair.health.state == "alive" and pair.recorder.states() == ["alive"]
    assert probes.sent.get("stun-request", 0) - checks_before >= 4  # it was STUN that kept it


async def test_a_connection_that_never_comes_up_fails_with_never_connected(make_pair) -> None:
    pair = make_pair(LivenessSettings(connect_timeout=1.5))
    await pair.remote.setLocalDescription(await pair.remote.createOffer())
    await pair.watched.setRemoteDescription(pair.remote.localDescription)
    await pair.watched.setLocalDescription(await pair.watched.createAnswer())  # never delivered
    await pair.recorder.wait_for("failed", 3)
    failure = pair.health.failure
    assert failure is not None and failure.code == "never_connected"
    assert failure.detail.startswith("not connected within 1.5 s (ICE ")
    assert pair.recorder.states() == ["failed"]


async def test_a_peer_with_an_rsa_certificate_connects(make_pair) -> None:
    """As GStreamer's webrtcbin: an RSA-2048 certificate, and the DTLS server (it offers actpass)."""
    pair = make_pair(remote_key=rsa.generate_private_key(65537, 2048))
    DtlsDiagnosis().install(pair.remote)  # its OpenSSL server needs an RSA suite to pick, as webrtcbin's has
    await negotiate(pair.remote, pair.watched)
    await pair.recorder.wait_for("alive", 10)
    assert pair.watched.connectionState == "connected"


async def test_a_client_offering_only_ecdsa_suites_to_an_rsa_server_fails_with_the_reason(make_pair) -> None:
    """What aiortc alone did with webrtcbin: here the watched peer is the RSA server, a plain aiortc the client."""
    pair = make_pair(watched_key=rsa.generate_private_key(65537, 2048))
    pair.watched.addTransceiver("audio", direction="recvonly")
    await negotiate(pair.watched, pair.remote)  # the offerer is the DTLS server
    await pair.recorder.wait_for("failed", 10)
    assert pair.health.failure == Failure("dtls_failed", "DTLS: no shared cipher suite (alert 40 handshake failure sent)")


async def test_a_p224_certificate_is_refused_with_the_curve_named(make_pair) -> None:
    """As FFmpeg built on GnuTLS (PyAV's): its DTLS certificate is on P-224, which OpenSSL 4 cannot take."""
    pair = make_pair(remote_key=ec.generate_private_key(ec.SECP224R1()))
    pair.watched.addTransceiver("audio", direction="recvonly")
    await negotiate(pair.watched, pair.remote)  # the watched peer offers: it is the DTLS server
    await pair.recorder.wait_for("failed", 10)
    failure = pair.health.failure
    assert failure is not None and failure.code == "dtls_failed"
    assert failure.detail.startswith("DTLS: peer certificate curve refused (P-224)")
    assert "P-256" in failure.detail


def test_the_hook_check_fails_loudly_when_an_internal_liveness_uses_moves(monkeypatch: pytest.MonkeyPatch) -> None:
    from aiortc.rtcdtlstransport import RTCDtlsTransport

    check_hooks()
    monkeypatch.delattr(RTCDtlsTransport, "_handle_rtcp_data")
    with pytest.raises(HookMismatch, match="_handle_rtcp_data"):
        check_hooks()


async def test_a_peer_that_closes_its_connection_is_reported_closed_by_peer(make_pair) -> None:
    pair = make_pair()
    await negotiate(pair.remote, pair.watched)
    await pair.recorder.wait_for("alive", 10)
    await pair.remote.close()  # DTLS close_notify
    await pair.recorder.wait_for("failed", 5)
    assert pair.health.failure == Failure("closed_by_peer", "DTLS: the peer closed the connection (close_notify)")
    assert pair.recorder.states() == ["alive", "failed"]
