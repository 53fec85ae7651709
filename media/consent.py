"""Consent freshness (RFC 7675) on one aioice connection, in place of aioice's own consent loop.

aioice 0.13 checks consent from a task `Connection.connect()` starts: one binding request every
~5 s, a single 0.5 s try, and the connection closed after six misses. `IceConsent` disables that
loop and instead:

- hears the peer: a binding request from it with valid message integrity, a success response to
  one of our checks, and (through `watch_dtls`) SRTP/SRTCP that aiortc unprotected. The relay's
  lean receive path (media/aiortc/receive.py) marks the SRTP it unprotects itself;
- sends consent checks when asked: binding requests on the nominated pair, each retransmitted
  within the check (0.5, 1.5, 3.5 s after it) and kept open for `lifetime`, so that an answer
  however late still counts.

Hearing is a mark on the connection (`HEARD`: aiortc's clock in ms, the lean path's arrival time),
stored per datagram and read by `PeerHealth` when it wakes: nothing more on the hot path.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from types import CodeType
from typing import Any

from aioice import stun
from aioice.ice import CandidatePair, StunProtocol
from aioice.ice import Connection as IceConnection
from aiortc.rtcdtlstransport import RTCDtlsTransport

from media.packets import NTP_EPOCH_MS

logger = logging.getLogger(__name__)

HEARD = "_relay_heard"  # the attribute the lean receive path writes too
RETRANSMISSIONS = (0.5, 1.0, 2.0)  # gaps between a check's sends (RFC 8489's RTO, doubling)


def hook_problems() -> list[str]:
    """What is missing of the aioice/aiortc internals this module relies on (empty: all there)."""
    problems = []
    methods: tuple[tuple[type, tuple[str, ...]], ...] = (
        (IceConnection, ("build_request", "request_received", "query_consent", "close", "_valid_username")),
        (StunProtocol, ("send_stun", "datagram_received")),
        (stun.Message, ("add_message_integrity", "check_message_integrity")),
        (RTCDtlsTransport, ("_handle_rtp_data", "_handle_rtcp_data", "_recv_next")),
    )
    for cls, names in methods:
        problems += [f"{cls.__name__}.{n} is gone" for n in names if not callable(getattr(cls, n, None))]
    uses: tuple[tuple[CodeType, tuple[str, ...]], ...] = (
        (IceConnection.__init__.__code__, ("_nominated", "_query_consent_task", "remote_password", "_local_password")),
        (IceConnection.connect.__code__, ("query_consent", "_query_consent_task")),
        (StunProtocol.__init__.__code__, ("transactions",)),
        (StunProtocol.datagram_received.__code__, ("transactions", "response_received", "request_received")),
        (RTCDtlsTransport._recv_next.__code__, ("_handle_rtp_data", "_handle_rtcp_data", "unprotect")),
        (CandidatePair.__init__.__code__, ("protocol",)),
    )
    for code, names in uses:
        missing = [n for n in names if n not in code.co_names]
        if missing:
            problems.append(f"{code.co_qualname} no longer uses {missing}")
    return problems


def now_ms() -> int:
    """aiortc's clock (its `current_ms()`) in ms, computed as cheaply as the lean receive path does."""
    return int(time.time() * 1000) + NTP_EPOCH_MS


def heard_now(connection: IceConnection) -> None:
    """Mark that the peer on `connection` was heard from just now."""
    setattr(connection, HEARD, now_ms())


class _MarkHeard:
    """A DTLS transport's handler of unprotected packets, wrapped: mark the connection heard, then handle."""

    __slots__ = ("connection", "handler", "previous")

    def __init__(self, connection: IceConnection, handler: Callable[..., Any], previous: object) -> None:
        self.connection = connection
        self.handler = handler
        self.previous = previous  # what the instance had before (None: the class's method)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        setattr(self.connection, HEARD, now_ms())
        return self.handler(*args, **kwargs)


_UNPROTECTED_HANDLERS = ("_handle_rtp_data", "_handle_rtcp_data")  # aiortc calls them with what unprotected


def watch_dtls(dtls: RTCDtlsTransport) -> None:
    """Mark the ICE connection under `dtls` whenever aiortc unprotects an SRTP or SRTCP packet on it."""
    for name in _UNPROTECTED_HANDLERS:
        current = getattr(dtls, name)
        if not isinstance(current, _MarkHeard):
            setattr(dtls, name, _MarkHeard(dtls.transport._connection, current, vars(dtls).get(name)))


def unwatch_dtls(dtls: RTCDtlsTransport) -> None:
    """Undo `watch_dtls`."""
    for name in _UNPROTECTED_HANDLERS:
        current = vars(dtls).get(name)
        if isinstance(current, _MarkHeard):
            if current.previous is None:
                delattr(dtls, name)
            else:
                setattr(dtls, name, current.previous)


async def no_consent_loop() -> None:
    """aioice's consent loop, disabled: `IceConsent` does the job."""


class _Check:
    """One consent check: a binding request, registered with the socket so its answer reaches us."""

    __slots__ = ("owner", "request", "protocol", "address", "sent", "sends")

    def __init__(self, owner: IceConsent, request: stun.Message, pair: CandidatePair, now: float) -> None:
        self.owner = owner
        self.request = request
        self.protocol: StunProtocol = pair.protocol
        self.address = pair.remote_addr
        self.sent = now
        self.sends = 0

    def next_send(self) -> float | None:
        """When this check is next (re)transmitted, or None when it has been sent enough."""
        if self.sends > len(RETRANSMISSIONS):
            return None
        return self.sent + sum(RETRANSMISSIONS[: self.sends])

    def send(self) -> None:
        self.sends += 1
        try:
            self.protocol.send_stun(self.request, self.address)
        except OSError as exc:  # as a lost datagram: the next send or check may pass
            logger.info("consent check not sent address=%s error=%s", self.address, exc)

    def response_received(self, message: stun.Message, addr: tuple[str, int]) -> None:
        """aioice's datagram callback hands us the answers to our transaction id: must never raise."""
        try:
            if addr == self.address:  # RFC 7675 section 5.1: from the address the check went to
                self.owner.answered(self, message)
        except Exception:  # noqa: BLE001 - runs in asyncio's datagram callback
            logger.exception("consent answer handling failed")


class IceConsent:
    """Consent on one aioice connection: aioice's loop disabled, the peer heard, checks sent on demand."""

    def __init__(self, connection: IceConnection, *, on_heard: Callable[[], None], lifetime: float) -> None:
        self.connection = connection
        self._on_heard = on_heard
        self._lifetime = lifetime
        self._checks: list[_Check] = []
        self._request_received: Callable[..., None] | None = None
        self._previous_request_received = vars(connection).get("request_received")
        connection.query_consent = no_consent_loop  # type: ignore[method-assign]
        task = connection._query_consent_task
        if task is not None and not task.done():
            task.cancel()  # started before we were here: ours replaces it
        self._hear_requests()

    @property
    def heard(self) -> int:
        """When the peer was last heard from (aiortc's clock, ms; 0: never)."""
        mark: int = getattr(self.connection, HEARD, 0)
        return mark

    @property
    def pair(self) -> CandidatePair | None:
        """The nominated pair of component 1, once ICE has completed."""
        return self.connection._nominated.get(1)

    def _hear_requests(self) -> None:
        connection = self.connection
        original = connection.request_received
        password = connection.local_password.encode()

        def request_received(message: stun.Message, addr: tuple[str, int], protocol: StunProtocol) -> None:
            original(message, addr, protocol)
            try:
                username = message.attributes.get("USERNAME")
                if (
                    message.message_method == stun.Method.BINDING
                    and isinstance(username, str)
                    and "MESSAGE-INTEGRITY" in message.attributes
                    and connection._valid_username(username)
                    and message.check_message_integrity(password)
                ):
                    heard_now(connection)
                    self._on_heard()
            except Exception:  # noqa: BLE001 - runs in asyncio's datagram callback
                logger.exception("consent request handling failed")

        connection.request_received = request_received  # type: ignore[method-assign]
        self._request_received = request_received

    def probe(self, now: float) -> float | None:
        """Send a new check unless one is still being retransmitted, and the retransmissions due;
        when to call again (None: no nominated pair to check on).

        On a quiet peer that answers, that is one check per quiet spell and round trip; on one
        that does not, one every 3.5 s (four sends each), each still open to a late answer.
        """
        self._drop_old(now)
        if not any(c.next_send() is not None for c in self._checks) and not self._start_check(now):
            return None
        due = []
        for check in self._checks:
            when = check.next_send()
            while when is not None and when <= now:
                check.send()
                when = check.next_send()
            if when is not None:
                due.append(when)
        return min(due, default=None)

    def _start_check(self, now: float) -> bool:
        pair, password = self.pair, self.connection.remote_password
        if pair is None or password is None:
            return False
        request = self.connection.build_request(pair, nominate=False)  # a fresh transaction id
        request.add_message_integrity(password.encode())
        check = _Check(self, request, pair, now)
        pair.protocol.transactions[request.transaction_id] = check  # type: ignore[assignment]
        self._checks.append(check)
        return True

    def answered(self, check: _Check, message: stun.Message) -> None:
        """A response to one of our checks: it counts if it is a success with the right integrity."""
        password = self.connection.remote_password
        if (
            message.message_class != stun.Class.RESPONSE
            or password is None
            or not message.check_message_integrity(password.encode())
        ):
            return
        self._forget(check)
        heard_now(self.connection)
        self._on_heard()

    def _drop_old(self, now: float) -> None:
        for check in [c for c in self._checks if now - c.sent > self._lifetime]:
            self._forget(check)

    def _forget(self, check: _Check) -> None:
        if check in self._checks:
            self._checks.remove(check)
        if check.protocol.transactions.get(check.request.transaction_id) is check:  # type: ignore[comparison-overlap]
            del check.protocol.transactions[check.request.transaction_id]

    async def close_connection(self) -> None:
        """Close the ICE connection: consent is gone, nothing more may be sent to the peer."""
        await self.connection.close()

    def release(self) -> None:
        """Forget every open check and stop hearing STUN requests (aioice's consent loop stays off)."""
        for check in list(self._checks):
            self._forget(check)
        if vars(self.connection).get("request_received") is self._request_received:
            if self._previous_request_received is None:
                del self.connection.request_received
            else:
                self.connection.request_received = self._previous_request_received  # type: ignore[method-assign]
        self._request_received = None
