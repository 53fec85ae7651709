"""Is the peer still there? Consent freshness (RFC 7675) and silence detection for one peer connection.

Every peer connection of the relay (publisher, subscriber, WHEP player) gets a `PeerHealth`. It
replaces aioice's consent loop, which sends one binding request every ~5 s with a single 0.5 s
try and closes the pair after six misses: a satellite link (~600 ms RTT or more) loses its
consent although every answer arrives, and FFmpeg's WHIP muxer, which answers only the first
binding request but keeps sending authenticated SRTP, is dropped after ~30 s.

Here, anything authenticated from the peer counts as hearing from it: SRTP or SRTCP that
unprotects, a STUN request or response with valid message integrity. When the peer has been
quiet for `probe_after`, a consent check goes out and is retransmitted within the check; an
answer however late counts. Quiet for `stalled_after` makes the peer "stalled" (the owner shows
"reconnecting"); hearing from it again makes it "alive". Quiet for `consent_expiry` (RFC 7675:
30 s) ends consent: the ICE connection is closed and the peer "failed". ICE or DTLS failure and
a connection that never comes up within `connect_timeout` also make it "failed", with the reason
in words for the operator's log.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from typing import Literal

from aioice.ice import Connection as IceConnection
from aiortc import RTCPeerConnection
from aiortc.rtcdtlstransport import RTCDtlsTransport

from media import consent as _consent, dtls as _dtls
from media.consent import IceConsent, now_ms, unwatch_dtls, watch_dtls
from media.dtls import DtlsDiagnosis

logger = logging.getLogger(__name__)

PeerState = Literal["connecting", "alive", "stalled", "failed"]

_STALLED_POLL = 0.25  # a stalled peer is looked at this often, to be "alive" soon after it is heard
_MIN_SLEEP = 0.005


def hook_problems() -> list[str]:
    """What is missing of the aiortc/aioice/OpenSSL internals liveness relies on (empty: all there)."""
    problems = _consent.hook_problems() + _dtls.hook_problems()
    if not callable(getattr(RTCPeerConnection, "_RTCPeerConnection__connect", None)):
        problems.append("RTCPeerConnection.__connect is gone")
    for method in (RTCPeerConnection.setLocalDescription, RTCPeerConnection.setRemoteDescription):
        if "_RTCPeerConnection__connect" not in method.__code__.co_names:
            problems.append(f"RTCPeerConnection.{method.__name__} no longer schedules __connect")
    return problems


@dataclass(frozen=True)
class LivenessSettings:
    """How quickly a quiet peer is probed, called stalled, and given up."""

    probe_after: float = 1.5
    stalled_after: float = 4.0
    consent_expiry: float = 30.0
    connect_timeout: float = 20.0

    def __post_init__(self) -> None:
        for name in ("probe_after", "stalled_after", "consent_expiry", "connect_timeout"):
            if not getattr(self, name) > 0:
                raise ValueError(f"LivenessSettings.{name} must be positive")


@dataclass(frozen=True)
class Failure:
    """Why a peer connection failed: a short code (a metrics label) and the reason in words."""

    code: str  # "ice_failed", "dtls_failed", "consent_expired", "never_connected", "closed_by_peer"
    detail: str  # e.g. "DTLS: peer certificate curve refused"


StateCallback = Callable[[PeerState, Failure | None], None]


class PeerHealth:
    """Liveness of one peer connection; tells its owner when it becomes alive, stalled or failed.

    One task per connection ("peer-health:<label>"), asleep until the next thing can happen: the
    peer quiet long enough to probe, to call stalled or to give up. Hearing from the peer is a
    timestamp the receive paths store (see media/consent.py), read when the task wakes.
    """

    def __init__(
        self,
        pc: RTCPeerConnection,
        *,
        settings: LivenessSettings,
        on_change: StateCallback,
        label: str = "",
    ) -> None:
        self.pc = pc
        self.settings = settings
        self.state: PeerState = "connecting"
        self.failure: Failure | None = None
        self.label = label
        self._on_change = on_change
        self._diagnosis = DtlsDiagnosis()
        self._consents: dict[IceConnection, IceConsent] = {}
        self._dtls: list[RTCDtlsTransport] = []
        self._task: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()
        self._wake = asyncio.Event()
        self._connect_hook: Callable[[], object] | None = None
        self._address: str | None = None
        self._heard = 0.0  # loop time the peer was last heard from
        self._looked = 0.0  # loop time the marks were last read
        self._mark = 0  # the newest mark seen then
        self._started = False
        self._closed = False
        self._expiring = False

    @property
    def remote_address(self) -> str | None:
        """The peer's address on the nominated ICE pair ("ip:port"), once there is one."""
        self._remember_address()
        return self._address

    def _remember_address(self) -> None:
        # Kept once seen: closing the ICE connection forgets its pairs, the operator's log should not.
        for consent in self._consents.values():
            pair = consent.pair
            if pair is not None:
                host, port = pair.remote_addr
                self._address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    @property
    def quiet_for(self) -> float:
        """Seconds since the peer was last heard from, as of the watch's last look (0 until connected)."""
        if not self._connected.is_set() or self._task is None:
            return 0.0
        return max(0.0, asyncio.get_running_loop().time() - self._heard)

    def start(self) -> None:
        """Watch the connection (call right after creating it, before any description is applied)."""
        if self._started or self._closed:
            return
        self._started = True
        self.pc.on("connectionstatechange", self._pc_changed)
        self.pc.on("iceconnectionstatechange", self._ice_changed)
        self._diagnosis.install(self.pc)
        # ICE and DTLS transports come with descriptions and transceivers; aiortc starts them in
        # its private __connect(), which every description applied schedules: adopt them there.
        original = getattr(self.pc, "_RTCPeerConnection__connect")

        def connect() -> object:
            self._guarded(self._adopt)
            return original()

        setattr(self.pc, "_RTCPeerConnection__connect", connect)
        self._connect_hook = connect
        self._adopt()
        self._task = asyncio.get_running_loop().create_task(self._run(), name=f"peer-health:{self.label}")

    async def close(self) -> None:
        """Stop watching (idempotent); no task outlives this."""
        if self._closed:
            return
        self._closed = True
        self._diagnosis.stop()
        for event, handler in (("connectionstatechange", self._pc_changed), ("iceconnectionstatechange", self._ice_changed)):
            with suppress(KeyError):  # aiortc drops every listener when the connection closes
                self.pc.remove_listener(event, handler)
        for dtls in self._dtls:
            with suppress(KeyError):
                dtls.remove_listener("statechange", self._dtls_changed)
            unwatch_dtls(dtls)
        for consent in self._consents.values():
            consent.release()
        if self._connect_hook is not None and vars(self.pc).get("_RTCPeerConnection__connect") is self._connect_hook:
            delattr(self.pc, "_RTCPeerConnection__connect")
        task, self._task = self._task, None
        if task is not None:
            if not self._expiring:
                # Not while it closes the ICE connection: a cancelled aioice close() leaves a
                # cancelled future behind that fails the peer connection's own close later.
                task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    # --- transports -------------------------------------------------------------------------------

    def _transports(self) -> list[RTCDtlsTransport]:
        # A transceiver of an offer aiortc could not bundle has no transport (the offer is refused).
        found = [t.receiver.transport for t in self.pc.getTransceivers() if t.receiver.transport is not None]
        if self.pc.sctp is not None:
            found.append(self.pc.sctp.transport)
        return list(dict.fromkeys(found))

    def _adopt(self) -> None:
        if self._closed:
            return
        for dtls in self._transports():
            if dtls in self._dtls:
                continue
            self._dtls.append(dtls)
            dtls.on("statechange", self._dtls_changed)
            watch_dtls(dtls)
            connection = dtls.transport._connection
            if connection not in self._consents:
                self._consents[connection] = IceConsent(
                    connection, on_heard=self._wake.set, lifetime=self.settings.consent_expiry
                )

    def _closing_locally(self) -> bool:
        return self._closed or self.pc.signalingState == "closed"

    def _guarded(self, handler: Callable[[], None]) -> None:
        # aiortc calls these from its own loops and state setters: an exception must not reach them.
        try:
            handler()
        except Exception:  # noqa: BLE001
            logger.exception("peer health handler failed label=%s", self.label)

    def _pc_changed(self) -> None:
        if self.pc.connectionState == "connected" and not self._connected.is_set():
            self._connected.set()

    def _ice_changed(self) -> None:
        self._guarded(self._check_ice)

    def _check_ice(self) -> None:
        if self.pc.iceConnectionState == "failed" and not self._closing_locally():
            self._fail(Failure("ice_failed", self._ice_detail()))

    def _dtls_changed(self) -> None:
        self._guarded(self._check_dtls)

    def _check_dtls(self) -> None:
        if self._closing_locally():
            return
        for dtls in self._dtls:
            if dtls.state == "failed":
                self._fail(Failure("dtls_failed", self._diagnosis.describe(dtls)))
            elif dtls.state == "closed":
                if self._diagnosis.closed_by_peer:
                    self._fail(Failure("closed_by_peer", "DTLS: the peer closed the connection (close_notify)"))
                else:
                    self._fail(Failure("ice_failed", "ICE: the connection's socket went away"))

    def _ice_detail(self) -> str:
        if self._connected.is_set():
            return "ICE failed: the connection to the peer was lost"
        candidates = [f"{c.host}:{c.port}" for consent in self._consents.values() for c in consent.connection.remote_candidates]
        listed = ", ".join(candidates[:4]) + (", ..." if len(candidates) > 4 else "")
        return f"ICE failed: no connectivity check answered (remote candidates: {listed or 'none'})"

    # --- the watch --------------------------------------------------------------------------------

    async def _run(self) -> None:
        try:
            await self._watch()
        except Exception:  # noqa: BLE001 - logged here: nothing awaits this task but close()
            logger.exception("peer health watch failed label=%s", self.label)

    async def _watch(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.settings.connect_timeout):
                await self._connected.wait()
        except TimeoutError:
            if not self._closing_locally():
                self._fail(Failure("never_connected", self._never_connected_detail()))
            return
        self._heard = self._looked = loop.time()
        self._mark = self._newest_mark()
        self._remember_address()
        self._set_state("alive")
        while self.failure is None and not self._closing_locally():
            now = loop.time()
            quiet = now - self._refresh_heard(now)
            if quiet >= self.settings.consent_expiry:
                await self._expire()
                return
            self._set_state("stalled" if quiet >= self.settings.stalled_after else "alive")
            self._wake.clear()
            await self._sleep(self._next_wake(now, quiet) - now)

    def _next_wake(self, now: float, quiet: float) -> float:
        settings, heard = self.settings, self._heard
        times = [heard + settings.probe_after, heard + settings.stalled_after, heard + settings.consent_expiry]
        if quiet >= min(settings.probe_after, settings.stalled_after):
            times += [t for c in self._consents.values() if (t := c.probe(now)) is not None]
        if self.state == "stalled":
            times.append(now + _STALLED_POLL)
        return min((t for t in times if t > now), default=now + _STALLED_POLL)

    async def _sleep(self, delay: float) -> None:
        try:
            async with asyncio.timeout(max(delay, _MIN_SLEEP)):
                await self._wake.wait()
        except TimeoutError:
            pass

    def _newest_mark(self) -> int:
        return max((consent.heard for consent in self._consents.values()), default=0)

    def _refresh_heard(self, now: float) -> float:
        """When the peer was last heard from, in loop time.

        The receive paths store aiortc's wall clock (ms) per datagram; a changed mark means the
        peer was heard since the last look, so its converted time is clamped to that interval
        (a wall clock that steps cannot make a peer look silent or fresh beyond it).
        """
        mark = self._newest_mark()
        if mark != self._mark:
            self._mark = mark
            estimate = now - (now_ms() - mark) / 1000
            self._heard = min(now, max(estimate, self._looked, self._heard))
        self._looked = now
        return self._heard

    async def _expire(self) -> None:
        expiry = self.settings.consent_expiry
        self._fail(Failure("consent_expired", f"consent expired: nothing heard from the peer for {expiry:g} s"))
        self._expiring = True
        for consent in list(self._consents.values()):
            await consent.close_connection()  # RFC 7675: stop sending to a peer that has not consented

    def _never_connected_detail(self) -> str:
        dtls = ", ".join(d.state for d in self._dtls) or "none"
        return f"not connected within {self.settings.connect_timeout:g} s (ICE {self.pc.iceConnectionState}, DTLS {dtls})"

    # --- reporting --------------------------------------------------------------------------------

    def _set_state(self, state: PeerState) -> None:
        if state == self.state or self.failure is not None:
            return
        self.state = state
        logger.info("peer %s label=%s address=%s", state, self.label, self.remote_address)
        self._notify(state, None)

    def _fail(self, failure: Failure) -> None:
        if self.failure is not None or self._closed:
            return  # every failure is reported once
        self.failure = failure
        self.state = "failed"
        logger.info("peer failed label=%s code=%s detail=%s", self.label, failure.code, failure.detail)
        self._notify("failed", failure)
        task = self._task
        if task is not None and task is not asyncio.current_task():
            task.cancel()

    def _notify(self, state: PeerState, failure: Failure | None) -> None:
        try:
            self._on_change(state, failure)
        except Exception:  # noqa: BLE001 - the owner's callback must not stop the watch
            logger.exception("peer health callback failed label=%s", self.label)
