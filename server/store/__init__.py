"""State shared by the server: one `Store` protocol, a memory and a Redis implementation."""

from __future__ import annotations

import time
from collections.abc import Callable

from .base import (
    DeviceLinkRecord,
    EventIdInvalid,
    PresenceRecord,
    RecordInvalid,
    RevocationRecord,
    RoomRecord,
    Store,
    StoredEvent,
    StoreError,
    StoreUnavailable,
    StreamMoved,
    event_id_key,
    redact_url,
)
from .memory import MemoryStore
from .redis_store import RedisStore

__all__ = [
    "DeviceLinkRecord",
    "EventIdInvalid",
    "MemoryStore",
    "PresenceRecord",
    "RecordInvalid",
    "RedisStore",
    "RevocationRecord",
    "RoomRecord",
    "Store",
    "StoreError",
    "StoreUnavailable",
    "StoredEvent",
    "StreamMoved",
    "event_id_key",
    "open_store",
    "redact_url",
]


def open_store(
    redis_url: str | None, *, node_id: str, clock: Callable[[], float] = time.time
) -> Store:
    """Return a RedisStore when a URL is given, else the embedded MemoryStore; call `start()` next."""
    if redis_url:
        return RedisStore(redis_url, node_id=node_id, clock=clock)
    return MemoryStore(node_id=node_id, clock=clock)
