"""RedisStore: durable, multi-node state in Redis (records as msgspec JSON, events in Streams).

The URL names one Redis (`redis://`, `rediss://`) or a primary watched by Sentinel:
`redis+sentinel://[:password@]host:26379[,host2:26379...]/<primary name>[/<db>]`, where the client
asks the sentinels for the primary on every new connection, so a failover is followed by itself.
`?wait_replicas=N` (either form) makes every event and revocation wait until N replicas hold it
(`WAIT`) before it is confirmed: a confirmed record survives the primary's loss and a replica's
promotion. A write the replicas do not take within `wait_timeout` is refused as unavailable.
"""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager
from functools import cached_property
from typing import Any
from urllib.parse import parse_qs, unquote, urlencode, urlsplit, urlunsplit

import msgspec
import redis.asyncio as aioredis
import redis.asyncio.sentinel
import redis.exceptions
from redis.commands.core import AsyncScript
from msgspec import Struct

from .base import (
    DeviceLinkRecord,
    PresenceRecord,
    RevocationRecord,
    RoomRecord,
    StoredEvent,
    StoreError,
    StoreUnavailable,
    StreamMoved,
    encode_event_data,
    event_id_key,
    redact_url,
)
from .nodes import NodeRecord, RoomPart, room_parts_stream

__all__ = ["RedisStore"]

log = logging.getLogger(__name__)

# Records with an expiry (presences, device links): KEYS[1] a sorted set id -> expiry (by the
# caller's clock), KEYS[2] a hash id -> record. Expired entries are dropped here, at read time,
# atomically so that a concurrent refresh is never half-deleted; the live ones come back by expiry.
_LIVE_RECORDS = """
local dead = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
for _, identity in ipairs(dead) do
  redis.call('HDEL', KEYS[2], identity)
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
local out = {}
for _, identity in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. ARGV[1], '+inf')) do
  local record = redis.call('HGET', KEYS[2], identity)
  if record then
    table.insert(out, record)
  end
end
return out
"""

# Revocations: KEYS[1] a hash token id -> record, KEYS[2] a sorted set token id -> expiry, KEYS[3]
# a sorted set token id -> sequence number, KEYS[4] the counter. Numbering and storing in one
# script means a reader that has seen number N has seen every revocation up to N.
_REVOKE = """
local seq = redis.call('INCR', KEYS[4])
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
redis.call('ZADD', KEYS[3], seq, ARGV[1])
return seq
"""

# Expired revocations are dropped here, at read time, as presences are; then those numbered
# above ARGV[2] are returned as (number, record) pairs after the latest number.
_REVOCATIONS_AFTER = """
local dead = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[1])
for _, token_id in ipairs(dead) do
  redis.call('HDEL', KEYS[1], token_id)
  redis.call('ZREM', KEYS[3], token_id)
end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[1])
local out = {redis.call('GET', KEYS[4]) or '0'}
local found = redis.call('ZRANGEBYSCORE', KEYS[3], '(' .. ARGV[2], '+inf', 'WITHSCORES')
for i = 1, #found, 2 do
  local record = redis.call('HGET', KEYS[1], found[i])
  if record then
    table.insert(out, found[i + 1])
    table.insert(out, record)
  end
end
return out
"""

# Compare-and-append: XADD every entry (ARGV[2..]) only if the stream's last entry is ARGV[1]
# ('' for an empty stream); else return the id it is at, so the writer catches up and checks again.
_APPEND_AT = """
local last = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
local current = ''
if last[1] then current = last[1][1] end
if current ~= ARGV[1] then
  return {0, current}
end
local ids = {1}
for i = 2, #ARGV do
  table.insert(ids, redis.call('XADD', KEYS[1], '*', 'e', ARGV[i]))
end
return ids
"""

_EVENT_FIELD = b"e"
# Notices of a room's parts changing are only a wake-up for the nodes that follow them: keep a few.
PARTS_NOTICES = 256
UNDECODABLE_KIND = "undecodable"  # what an entry we cannot read becomes: no fold knows the kind, all skip it


def _wait_replicas(url: str) -> tuple[str, int]:
    """The URL without `wait_replicas`, and its value (0 when absent)."""
    parts = urlsplit(url)
    query = parse_qs(parts.query, keep_blank_values=True)
    raw = query.pop("wait_replicas", ["0"])[-1]
    try:
        replicas = int(raw)
    except ValueError:
        raise StoreError(f"wait_replicas must be a whole number, got {raw!r}") from None
    if replicas < 0:
        raise StoreError(f"wait_replicas must be 0 or more, got {replicas}")
    return urlunsplit(parts._replace(query=urlencode(query, doseq=True))), replicas


def _sentinel_client(url: str, max_connections: int, connect_timeout: float, command_timeout: float) -> aioredis.Redis:
    """A client of the primary the sentinels of `redis+sentinel://[:pw@]h:p[,h:p...]/<name>[/<db>]` name."""
    parts = urlsplit(url)
    hosts: list[tuple[str, int]] = []
    for item in parts.netloc.rpartition("@")[2].split(","):
        host, _, port = item.rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"sentinel address {item!r} is not host:port")
        hosts.append((host.strip("[]"), int(port)))
    path = [p for p in parts.path.split("/") if p]
    if not path:
        raise ValueError("name the primary: redis+sentinel://host:26379/<primary name>")
    db = int(path[1]) if len(path) > 1 else 0
    password = unquote(parts.password) if parts.password else None
    sentinel = redis.asyncio.sentinel.Sentinel(  # type: ignore[no-untyped-call]
        hosts, socket_timeout=command_timeout, socket_connect_timeout=connect_timeout,
    )
    client: aioredis.Redis = sentinel.master_for(
        path[0], db=db, password=password, socket_timeout=command_timeout,
        socket_connect_timeout=connect_timeout, max_connections=max_connections,
    )
    return client


def _text(value: object) -> str:
    """Return a Redis reply (bytes with decode_responses off) as text."""
    return value.decode() if isinstance(value, bytes) else str(value)


class _EventBody(Struct, frozen=True):
    """What a stream entry holds; its id and stream come from Redis."""

    at: float
    actor: str
    kind: str
    data: dict[str, object]


# While Redis is unreachable, one call in this many seconds tries it; the others fail at once.
PROBE_EVERY = 1.0


class RedisStore:
    """Store backed by Redis; expiry scores come from the injected clock and are filtered at read."""

    durable = True

    def __init__(
        self,
        url: str,
        *,
        node_id: str,
        clock: Callable[[], float] = time.time,
        key_prefix: str = "cp:",
        max_connections: int = 32,
        connect_timeout: float = 2.0,
        command_timeout: float = 5.0,
        wait_timeout: float = 2.0,
    ) -> None:
        """Prepare a client for url (no connection is made until used); keys start with key_prefix."""
        url, self.wait_replicas = _wait_replicas(url)
        self.wait_timeout = wait_timeout
        self.node_id = node_id
        self.key_prefix = key_prefix
        self.safe_url = redact_url(url)
        self._clock = clock
        self._closed = False
        self._undecodable: set[tuple[str, str]] = set()  # (stream, id) of entries already logged as unreadable
        self._down_since: float | None = None  # monotonic time of the first failed call of an outage
        self._last_try = 0.0
        try:
            if url.startswith("redis+sentinel://"):
                self._redis = _sentinel_client(url, max_connections, connect_timeout, command_timeout)
            else:
                pool = aioredis.BlockingConnectionPool.from_url(
                    url,
                    max_connections=max_connections,
                    timeout=command_timeout,
                    socket_connect_timeout=connect_timeout,
                    socket_timeout=command_timeout,
                )
                self._redis = aioredis.Redis.from_pool(pool)
        except ValueError as exc:
            raise StoreError(f"invalid Redis URL {self.safe_url}: {exc}") from exc
        self._live_records = self._redis.register_script(_LIVE_RECORDS)
        self._revoke = self._redis.register_script(_REVOKE)
        self._append_at = self._redis.register_script(_APPEND_AT)
        self._revocations_after = self._redis.register_script(_REVOCATIONS_AFTER)

    @contextmanager
    def _errors(self) -> Iterator[None]:
        """Translate redis-py exceptions into store exceptions that name the (redacted) URL.

        Once Redis could not be reached, calls fail at once with StoreUnavailable, but for one
        every PROBE_EVERY seconds that tries again: a client hears "unavailable, retry" instead of
        waiting out the command timeout, and the first call that succeeds ends the outage.
        """
        now = time.monotonic()
        if self._down_since is not None and now - self._last_try < PROBE_EVERY:
            raise StoreUnavailable(f"Redis at {self.safe_url} unreachable for {now - self._down_since:.0f} s")
        self._last_try = now
        try:
            yield
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError) as exc:
            self._last_try = time.monotonic()  # a hung try took a timeout: the next one waits from its end
            if self._down_since is None:
                self._down_since = now
                log.warning("store unavailable url=%s error=%s: failing fast, trying again every %.0f s",
                            self.safe_url, exc, PROBE_EVERY)
            raise StoreUnavailable(f"cannot reach Redis at {self.safe_url}: {exc}") from exc
        except redis.exceptions.RedisError as exc:
            raise StoreError(f"Redis at {self.safe_url} failed: {exc}") from exc
        if self._down_since is not None:
            log.warning("store available again url=%s after %.1f s", self.safe_url, time.monotonic() - self._down_since)
            self._down_since = None

    def _key(self, kind: str, name: str = "") -> str:
        """Return the full key for a kind of data (and the room or stream it belongs to)."""
        return f"{self.key_prefix}{kind}:{name}" if name else f"{self.key_prefix}{kind}"

    async def start(self) -> None:
        """Check that Redis answers; raises `StoreUnavailable` otherwise."""
        with self._errors():
            await self._redis.ping()
        log.info("store=redis node=%s url=%s prefix=%s", self.node_id, self.safe_url, self.key_prefix)

    async def close(self) -> None:
        """Close the connection pool; idempotent."""
        if not self._closed:
            self._closed = True
            await self._redis.aclose()

    async def put_room(self, room: RoomRecord) -> None:
        """Insert or replace a room."""
        with self._errors():
            await self._redis.hset(self._key("rooms"), room.id, msgspec.json.encode(room))

    async def get_room(self, room_id: str) -> RoomRecord | None:
        """Return the room or None."""
        with self._errors():
            raw = await self._redis.hget(self._key("rooms"), room_id)
        return None if raw is None else msgspec.json.decode(raw, type=RoomRecord)

    async def list_rooms(self) -> list[RoomRecord]:
        """Return every room, sorted by id."""
        with self._errors():
            raw = await self._redis.hvals(self._key("rooms"))
        rooms = [msgspec.json.decode(item, type=RoomRecord) for item in raw]
        return sorted(rooms, key=lambda room: room.id)

    async def delete_room(self, room_id: str) -> None:
        """Delete a room and its placement."""
        with self._errors():
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.hdel(self._key("rooms"), room_id)
                pipe.delete(self._key("placement", room_id))
                await pipe.execute()

    async def set_presence(self, presence: PresenceRecord, ttl: float) -> None:
        """Insert or refresh a presence until now + ttl (by this store's clock)."""
        expires_at = self._clock() + ttl
        with self._errors():
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.zadd(self._key("presence-exp", presence.room), {presence.identity: expires_at})
                pipe.hset(
                    self._key("presence-rec", presence.room),
                    presence.identity,
                    msgspec.json.encode(presence),
                )
                await pipe.execute()

    async def remove_presence(self, room: str, identity: str) -> None:
        """Remove a presence if present."""
        with self._errors():
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.zrem(self._key("presence-exp", room), identity)
                pipe.hdel(self._key("presence-rec", room), identity)
                await pipe.execute()

    async def list_presence(self, room: str) -> list[PresenceRecord]:
        """Return live presences sorted by joined_at, dropping expired ones."""
        keys = [self._key("presence-exp", room), self._key("presence-rec", room)]
        with self._errors():
            raw = await self._live_records(keys=keys, args=[repr(self._clock())])
        live = [msgspec.json.decode(item, type=PresenceRecord) for item in raw]
        return sorted(live, key=lambda p: (p.joined_at, p.identity))

    async def append_event(
        self, stream: str, *, actor: str, kind: str, data: Mapping[str, object]
    ) -> StoredEvent:
        """XADD the event; returns once Redis has acknowledged it."""
        body = self._body(actor, kind, data)
        with self._errors():
            raw_id = await self._replicated(lambda client: client.xadd(
                self._key("events", stream), {_EVENT_FIELD: msgspec.json.encode(body)}
            ))
        return StoredEvent(id=_text(raw_id), stream=stream, at=body.at, actor=actor, kind=kind, data=body.data)

    async def append_events_at(
        self, stream: str, last: str | None, events: list[tuple[str, str, Mapping[str, object]]]
    ) -> list[StoredEvent]:
        """XADD them all in one script only if the stream's last entry is `last`."""
        bodies = [self._body(actor, kind, data) for actor, kind, data in events]
        with self._errors():
            reply = await self._replicated(lambda client: self._append_at(
                keys=[self._key("events", stream)], args=[last or "", *(msgspec.json.encode(b) for b in bodies)], client=client
            ))
        if not int(reply[0]):
            raise StreamMoved(stream, last, _text(reply[1]) or None)
        return [StoredEvent(id=_text(raw_id), stream=stream, at=body.at, actor=body.actor, kind=body.kind, data=body.data)
                for raw_id, body in zip(reply[1:], bodies)]

    async def _replicated(self, write: Callable[[Any], Awaitable[Any]]) -> Any:
        """Run one write; with `wait_replicas`, on one connection followed by WAIT, and refused
        (StoreUnavailable) unless enough replicas took it in time."""
        if not self.wait_replicas:
            return await write(self._redis)
        async with self._redis.pipeline(transaction=False) as pipe:
            queued = write(pipe)  # queued: the pipeline runs it and the WAIT on one connection, in order
            if inspect.isawaitable(queued):  # a script queues itself once awaited
                await queued
            pipe.wait(self.wait_replicas, max(1, int(self.wait_timeout * 1000)))
            result, replicas = await pipe.execute()
        if int(replicas) < self.wait_replicas:
            log.warning("write not replicated replicas=%s wanted=%d", replicas, self.wait_replicas)
            raise StoreUnavailable(f"only {replicas} of {self.wait_replicas} replicas took the write in "
                                   f"{self.wait_timeout:.0f} s at {self.safe_url}")
        return result

    def _body(self, actor: str, kind: str, data: Mapping[str, object]) -> _EventBody:
        payload = encode_event_data(data)
        return _EventBody(at=self._clock(), actor=actor, kind=kind, data=msgspec.json.decode(payload))

    async def read_events(
        self, stream: str, *, after: str | None = None, limit: int = 1000
    ) -> list[StoredEvent]:
        """XRANGE from just after the given id, oldest first."""
        if limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit}")
        start = "-"
        if after is not None:
            event_id_key(after)  # refuse a malformed id here, as MemoryStore does
            start = f"({after}"
        with self._errors():
            entries = await self._redis.xrange(
                self._key("events", stream), min=start, max="+", count=limit
            )
        return self._events(stream, entries)

    async def wait_events(
        self, positions: Mapping[str, str | None], *, block: float, limit: int = 1000
    ) -> list[StoredEvent]:
        """XREAD BLOCK over every stream asked for (block stays below the command timeout)."""
        if not positions:
            return []
        for after in positions.values():
            if after is not None:
                event_id_key(after)
        streams: dict[Any, Any] = {self._key("events", stream): after or "0-0" for stream, after in positions.items()}
        with self._errors():
            reply = await self._redis.xread(streams, count=limit, block=max(1, int(block * 1000)))
        prefix = f"{self.key_prefix}events:"
        found: list[StoredEvent] = []
        for key, entries in reply or []:  # type: ignore[str-unpack]
            found += self._events(_text(key).removeprefix(prefix), entries)
        return found

    def _events(self, stream: str, entries: Any) -> list[StoredEvent]:
        events: list[StoredEvent] = []
        for raw_id, fields in entries or []:
            if fields is None:  # an entry deleted under us; our streams are never trimmed
                continue
            body = self._decode_entry(stream, _text(raw_id), fields)
            events.append(
                StoredEvent(
                    id=_text(raw_id),
                    stream=stream,
                    at=body.at,
                    actor=body.actor,
                    kind=body.kind,
                    data=body.data,
                )
            )
        return events

    def _decode_entry(self, stream: str, event_id: str, fields: Mapping[bytes | str, bytes | str]) -> _EventBody:
        """The entry's event; one that is not ours (written into Redis by hand) reads as kind `undecodable`.

        Its id stays in the page, so readers page on, and every fold skips the unknown kind.
        """
        try:
            return msgspec.json.decode(fields[_EVENT_FIELD], type=_EventBody)
        except (KeyError, msgspec.DecodeError) as exc:
            if (stream, event_id) not in self._undecodable:
                self._undecodable.add((stream, event_id))
                log.warning("undecodable stream entry stream=%s id=%s error=%s: %s", stream, event_id, type(exc).__name__, exc)
            return _EventBody(at=0.0, actor="", kind=UNDECODABLE_KIND, data={})

    @property
    def undecodable_entries(self) -> int:
        """Stream entries read that were not ours to decode (each counted once), for /metrics."""
        return len(self._undecodable)

    def _revocation_keys(self) -> list[str]:
        return [self._key("revoked"), self._key("revoked-exp"), self._key("revoked-seq"), self._key("revoked-counter")]

    async def revoke_token(self, record: RevocationRecord) -> int:
        """Number and keep the revocation in one script; it expires at the token's own expiry."""
        body = msgspec.json.encode(msgspec.structs.replace(record, seq=0))
        with self._errors():
            seq = await self._replicated(lambda client: self._revoke(
                keys=self._revocation_keys(), args=[record.token_id, body, repr(record.expires_at)], client=client
            ))
        return int(seq)

    async def revocations_after(self, seq: int) -> tuple[list[RevocationRecord], int]:
        """Unexpired revocations numbered above seq, in order, and the latest number."""
        with self._errors():
            raw = await self._revocations_after(keys=self._revocation_keys(), args=[repr(self._clock()), str(seq)])
        latest, pairs = int(_text(raw[0])), raw[1:]
        records = [
            msgspec.structs.replace(msgspec.json.decode(pairs[i + 1], type=RevocationRecord), seq=int(float(_text(pairs[i]))))
            for i in range(0, len(pairs), 2)
        ]
        return records, latest

    async def put_device_link(self, record: DeviceLinkRecord) -> None:
        """Keep the device link until it expires (by this store's clock, filtered at read)."""
        with self._errors():
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.hset(self._key("device-links"), record.token_id, msgspec.json.encode(record))
                pipe.zadd(self._key("device-links-exp"), {record.token_id: record.expires_at})
                await pipe.execute()

    async def get_device_link(self, token_id: str) -> DeviceLinkRecord | None:
        """Return the unexpired device link or None."""
        with self._errors():
            raw = await self._redis.hget(self._key("device-links"), token_id)
        if raw is None:
            return None
        record = msgspec.json.decode(raw, type=DeviceLinkRecord)
        return record if record.expires_at > self._clock() else None

    async def list_device_links(self) -> list[DeviceLinkRecord]:
        """Return the unexpired device links, newest first, dropping expired ones."""
        keys = [self._key("device-links-exp"), self._key("device-links")]
        with self._errors():
            raw = await self._live_records(keys=keys, args=[repr(self._clock())])
        records = [msgspec.json.decode(item, type=DeviceLinkRecord) for item in raw]
        return sorted(records, key=lambda r: (-r.issued_at, r.token_id))

    async def claim_once(self, key: str, ttl: float) -> bool:
        """SET NX with an expiry: the first node to claim the key gets it."""
        with self._errors():
            claimed = await self._redis.set(self._key("once", key), self.node_id, nx=True, px=max(1, int(ttl * 1000)))
        return bool(claimed)

    async def ping(self) -> bool:
        """Return whether Redis answers."""
        try:
            with self._errors():
                return bool(await self._redis.ping())
        except StoreError:
            return False

    # --- nodes and placement across nodes (server/nodes.py) -------------------------------------
    # Node records are kept as presences are: a sorted set id -> expiry by the caller's clock and a
    # hash id -> record, expired ones dropped at read time (the _LIVE_RECORDS script).

    def _node_keys(self) -> list[str]:
        return [self._key("nodes-exp"), self._key("nodes")]

    @cached_property
    def _claim(self) -> AsyncScript:
        return self._redis.register_script(_CLAIM)

    @cached_property
    def _owner(self) -> AsyncScript:
        return self._redis.register_script(_OWNER)

    async def heartbeat_node(self, record: NodeRecord, ttl: float) -> None:
        """Insert or refresh a node's record until now + ttl (by this store's clock)."""
        expires_at = self._clock() + ttl
        with self._errors():
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.zadd(self._key("nodes-exp"), {record.node_id: expires_at})
                pipe.hset(self._key("nodes"), record.node_id, msgspec.json.encode(record))
                await pipe.execute()

    async def list_nodes(self) -> list[NodeRecord]:
        """Return the live nodes sorted by id, dropping expired ones."""
        with self._errors():
            raw = await self._live_records(keys=self._node_keys(), args=[repr(self._clock())])
        nodes = [msgspec.json.decode(item, type=NodeRecord) for item in raw]
        return sorted(nodes, key=lambda node: node.node_id)

    async def forget_node(self, node_id: str) -> None:
        """Remove a node's record: its placements are free at once."""
        with self._errors():
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.zrem(self._key("nodes-exp"), node_id)
                pipe.hdel(self._key("nodes"), node_id)
                await pipe.execute()

    async def claim_room(self, room_id: str, node_id: str, ttl: float) -> str:
        """Place the room on node_id unless another live node holds an unexpired placement; return the owner."""
        now = self._clock()
        with self._errors():
            owner = await self._claim(
                keys=[self._key("placement", room_id), self._key("nodes-exp")],
                args=[node_id, repr(now), repr(now + ttl)],
            )
        return _text(owner)

    async def room_owner(self, room_id: str) -> str | None:
        """The live owner of an unexpired placement, or None."""
        with self._errors():
            owner = await self._owner(
                keys=[self._key("placement", room_id), self._key("nodes-exp")], args=[repr(self._clock())]
            )
        return None if owner is None else _text(owner)


    # --- a room's parts when it spans nodes (server/span.py) -------------------------------------

    def _part_keys(self, room_id: str) -> list[str]:
        return [self._key("parts-exp", room_id), self._key("parts", room_id)]

    async def put_room_part(self, part: RoomPart, ttl: float, *, notify: bool = True) -> None:
        """Write the part with its expiry and note the change on the room's parts stream (trimmed)."""
        expires_at, (exp_key, parts_key) = self._clock() + ttl, self._part_keys(part.room_id)
        notice = msgspec.json.encode(self._body(part.node_id, "part", {}))
        with self._errors():
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.zadd(exp_key, {part.node_id: expires_at})
                pipe.hset(parts_key, part.node_id, msgspec.json.encode(part))
                if notify:
                    pipe.xadd(self._key("events", room_parts_stream(part.room_id)), {_EVENT_FIELD: notice},
                              maxlen=PARTS_NOTICES, approximate=True)
                await pipe.execute()

    async def room_parts(self, room_id: str) -> list[RoomPart]:
        """The unexpired parts of the room, sorted by node id, dropping the expired ones."""
        with self._errors():
            raw = await self._live_records(keys=self._part_keys(room_id), args=[repr(self._clock())])
        return sorted((msgspec.json.decode(item, type=RoomPart) for item in raw), key=lambda p: p.node_id)

    async def drop_room_part(self, room_id: str, node_id: str) -> None:
        """Remove the node's part of the room and note the change."""
        exp_key, parts_key = self._part_keys(room_id)
        notice = msgspec.json.encode(self._body(node_id, "part_dropped", {}))
        with self._errors():
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.zrem(exp_key, node_id)
                pipe.hdel(parts_key, node_id)
                pipe.xadd(self._key("events", room_parts_stream(room_id)), {_EVENT_FIELD: notice},
                          maxlen=PARTS_NOTICES, approximate=True)
                await pipe.execute()


# A claim (KEYS[1] the placement hash {node, expires_at}, KEYS[2] the nodes' expiry set): the
# holder keeps the room while its placement is unexpired and the holder itself is live, so a node
# killed outright frees its rooms within its heartbeat's ttl rather than its placements' lease.
# A refresh by the holder never shortens its lease (another node may claim on its behalf, briefly).
_CLAIM = """
local owner = redis.call('HGET', KEYS[1], 'node')
local expires_at = tonumber(redis.call('HGET', KEYS[1], 'expires_at') or '0')
local now = tonumber(ARGV[2])
if owner and owner ~= ARGV[1] and expires_at > now then
  local alive = tonumber(redis.call('ZSCORE', KEYS[2], owner) or '0')
  if alive > now then
    return owner
  end
end
local until_ = tonumber(ARGV[3])
if owner == ARGV[1] and expires_at > until_ then
  until_ = expires_at
end
redis.call('HSET', KEYS[1], 'node', ARGV[1], 'expires_at', tostring(until_))
return ARGV[1]
"""

_OWNER = """
local owner = redis.call('HGET', KEYS[1], 'node')
local expires_at = tonumber(redis.call('HGET', KEYS[1], 'expires_at') or '0')
local now = tonumber(ARGV[1])
if owner and expires_at > now and tonumber(redis.call('ZSCORE', KEYS[2], owner) or '0') > now then
  return owner
end
return false
"""
