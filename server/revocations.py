"""Revoked tokens: kept in the store (so every node and every restart sees them), cached here.

Authentication is synchronous and runs on every request, so it asks this cache, never the store.
The cache learns a revocation at once when this node makes it, and from other nodes by `sync()`,
which the server calls every `revocation_poll` seconds: it reads only the revocations numbered
after the last one it saw. A store that lost its revocations (a flushed Redis) numbers from zero
again; the cache then reads them all again rather than wait for the old numbers to come back.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from server.store import RevocationRecord, Store

logger = logging.getLogger(__name__)

# A token issued by a node whose clock runs ahead lives this much longer than its ttl says here.
CLOCK_SKEW = 60.0


class RevocationList:
    """Token ids refused before their expiry; `store` None keeps them in this process only."""

    def __init__(self, store: Store | None = None, *, clock: Callable[[], float] = time.time) -> None:
        self._store = store
        self._clock = clock
        self._expires_at: dict[str, float] = {}
        self._seen = 0  # the store's latest revocation number this cache has read

    def __len__(self) -> int:
        return len(self._expires_at)

    def contains(self, token_id: str) -> bool:
        """Whether the token id was revoked (as far as this node has heard)."""
        return token_id in self._expires_at

    def remember(self, record: RevocationRecord) -> bool:
        """Refuse `record.token_id` from now on in this process; whether it was new here."""
        known = self._expires_at.get(record.token_id)
        self._expires_at[record.token_id] = max(record.expires_at, known or 0.0)
        return known is None

    async def revoke(self, record: RevocationRecord) -> None:
        """Keep the revocation in the store (raises StoreError when it cannot), then refuse it here."""
        if self._store is not None:
            await self._store.revoke_token(record)
        self.remember(record)
        logger.info("token revoked token_id=%s identity=%s kind=%s by=%s reason=%s",
                    record.token_id, record.identity or "-", record.kind or "-", record.by or "-", record.reason or "-")

    async def sync(self) -> list[RevocationRecord]:
        """Read the revocations made since the last sync (by any node); return those new to this node."""
        if self._store is None:
            return []
        records, latest = await self._store.revocations_after(self._seen)
        if latest < self._seen:
            logger.warning("the store's revocations were renumbered (seen=%d latest=%d): reading them all again", self._seen, latest)
            records, latest = await self._store.revocations_after(0)
        self._seen = latest
        self._forget_expired()
        return [record for record in records if self.remember(record)]

    def _forget_expired(self) -> None:
        """Drop revocations of tokens that have expired anyway (they are refused for that)."""
        now = self._clock()
        for token_id in [t for t, expires_at in self._expires_at.items() if expires_at <= now]:
            del self._expires_at[token_id]


def keep_until(known_expiry: float | None, longest_ttl: int, now: float) -> float:
    """Until when to keep a revocation: the token's expiry if known, else as long as any token can still live."""
    if known_expiry is not None:
        return known_expiry
    return now + longest_ttl + CLOCK_SKEW
