"""Rate limits on joins, directives and WHIP/WHEP offers: token buckets per identity and per address.

A request takes one token from its identity's bucket and one from its address's; when either is
empty it is refused with `rate_limited` (on the wire, with the request's id) or HTTP 429, both
saying how many seconds to wait. The address bucket is asked first, before the token is even
looked at, so a stream of bad tokens is limited too; the identity bucket bounds one credential
however many addresses it comes from. Addresses are generous: a command centre's seats share one.
"""

from __future__ import annotations

import logging
import math
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING, Final, Literal

from server.config import Bucket, RateLimitSettings
from server.errors import RateLimited
from signaling.messages import ServerMessage

if TYPE_CHECKING:  # services hold the limits: only their types are needed here
    from server.services import ClientSession, Services

logger = logging.getLogger(__name__)

What = Literal["join", "issue", "whip", "whep"]
WHATS: Final[tuple[What, ...]] = ("join", "issue", "whip", "whep")
# Buckets that are full again carry no information: past this many keys they are dropped first.
MAX_BUCKETS: Final[int] = 10_000


class _Buckets:
    """The buckets of one kind of request and one scope (identity or address), by key."""

    def __init__(self, bucket: Bucket, clock: Callable[[], float]) -> None:
        self._capacity = float(bucket.burst)
        self._rate = bucket.per_minute / 60.0
        self._clock = clock
        self._levels: OrderedDict[str, tuple[float, float]] = OrderedDict()  # key -> (tokens, at)

    def wait(self, key: str) -> float:
        """Seconds until `key` has a token (0 when it has one now)."""
        tokens = self._level(key)
        return 0.0 if tokens >= 1.0 else (1.0 - tokens) / self._rate

    def take(self, key: str) -> None:
        """Take one token from `key` (after `wait` said there is one)."""
        self._levels[key] = (self._level(key) - 1.0, self._clock())
        self._levels.move_to_end(key)
        while len(self._levels) > MAX_BUCKETS:
            self._levels.popitem(last=False)

    def _level(self, key: str) -> float:
        tokens, at = self._levels.get(key, (self._capacity, self._clock()))
        return min(self._capacity, tokens + (self._clock() - at) * self._rate)


class RateLimits:
    """The server's buckets for joins, directives and WHIP/WHEP offers, and what they refused."""

    def __init__(self, settings: RateLimitSettings | None = None, *, clock: Callable[[], float] = time.monotonic) -> None:
        settings = settings or RateLimitSettings()
        self.enabled = settings.enabled
        self._buckets: dict[tuple[What, str], _Buckets] = {
            (what, scope): _Buckets(getattr(settings, f"{what}_{scope}"), clock) for what in WHATS for scope in ("identity", "address")
        }
        self.refused: dict[str, int] = dict.fromkeys(WHATS, 0)

    def check(self, what: What, *, identity: str | None = None, address: str | None = None) -> None:
        """Take a token from the identity's and the address's bucket, or raise RateLimited taking none."""
        if not self.enabled:
            return
        keyed = [(self._buckets[(what, scope)], key) for scope, key in (("identity", identity), ("address", address)) if key]
        wait = max((buckets.wait(key) for buckets, key in keyed), default=0.0)
        if wait > 0:
            self.refused[what] += 1
            seconds = max(1, math.ceil(wait))
            logger.info("rate limited what=%s identity=%s address=%s retry_after=%d", what, identity or "-", address or "-", seconds)
            raise RateLimited(what, seconds)
        for buckets, key in keyed:
            buckets.take(key)


def install(services: Services) -> None:
    """Limit directives per identity and address at the one dispatch point (after the command channel registered)."""
    # The issue handler is wrapped, so a refused directive is answered `rate_limited` with its
    # request id on `/ws` and `/command/ws` alike.
    from signaling.command import DirectiveIssue

    inner = services.handlers[DirectiveIssue]
    limits = services.rate_limits

    async def issue(session: ClientSession, message: DirectiveIssue) -> ServerMessage | None:
        participant = session.participant
        limits.check("issue", identity=participant.identity.identity if participant is not None else None, address=session.remote)
        return await inner(session, message)

    services.handlers[DirectiveIssue] = issue
