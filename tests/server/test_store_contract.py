"""One contract, two stores: every test runs over MemoryStore and over a real Redis."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator

import msgspec
import pytest
import redis.asyncio as aioredis

from server.store import (
    DeviceLinkRecord,
    EventIdInvalid,
    MemoryStore,
    PresenceRecord,
    RecordInvalid,
    RedisStore,
    RevocationRecord,
    RoomRecord,
    Store,
    StoreUnavailable,
    StoredEvent,
    StreamMoved,
    event_id_key,
    open_store,
    redact_url,
)
from server.store.nodes import NodeRecord


class FakeClock:
    """A clock that moves only when told to."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


async def _delete_keys(url: str, prefix: str) -> None:
    client = aioredis.Redis.from_url(url)
    try:
        keys = [key async for key in client.scan_iter(match=f"{prefix}*", count=500)]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def store(
    request: pytest.FixtureRequest, clock: FakeClock, redis_url: str
) -> AsyncIterator[Store]:
    if request.param == "memory":
        memory = MemoryStore(node_id="node-a", clock=clock)
        await memory.start()
        yield memory
        await memory.close()
        return
    prefix = f"test:{uuid.uuid4().hex}:"
    redis_store = RedisStore(redis_url, node_id="node-a", clock=clock, key_prefix=prefix)
    unreachable = ""
    try:
        await redis_store.start()
    except StoreUnavailable as exc:
        unreachable = str(exc)
    if unreachable:
        await redis_store.close()
        pytest.fail(f"{unreachable}; run scripts/ensure-redis.sh (or set REDIS_URL)", pytrace=False)
    try:
        yield redis_store
    finally:
        await redis_store.close()
        await _delete_keys(redis_url, prefix)


def room(room_id: str, **changes: object) -> RoomRecord:
    record = RoomRecord(
        id=room_id, name_zh=f"会商室{room_id}", name_en=f"Room {room_id}", created_at=1_700_000_000.5
    )
    return msgspec.structs.replace(record, **changes)


def presence(identity: str, joined_at: float, room_id: str = "mayor") -> PresenceRecord:
    return PresenceRecord(
        room=room_id,
        identity=identity,
        site=f"site-{identity}",
        name=f"值班员 {identity}",
        node="node-a",
        session_id=f"sess-{identity}",
        joined_at=joined_at,
    )


# Rooms


async def test_a_room_that_was_put_is_returned_by_get_room(store: Store) -> None:
    record = room("mayor", locked=True, configured=False)
    await store.put_room(record)
    assert await store.get_room("mayor") == record


async def test_get_room_of_an_unknown_id_returns_none(store: Store) -> None:
    assert await store.get_room("nowhere") is None


async def test_putting_a_room_again_replaces_it(store: Store) -> None:
    await store.put_room(room("mayor"))
    await store.put_room(room("mayor", name_en="Mayor's room", locked=True))
    assert await store.get_room("mayor") == room("mayor", name_en="Mayor's room", locked=True)
    assert len(await store.list_rooms()) == 1


async def test_rooms_are_listed_sorted_by_id(store: Store) -> None:
    for room_id in ["c", "a", "b10", "b2"]:
        await store.put_room(room(room_id))
    assert [r.id for r in await store.list_rooms()] == ["a", "b10", "b2", "c"]


async def test_no_rooms_lists_as_empty(store: Store) -> None:
    assert await store.list_rooms() == []


async def test_a_deleted_room_is_gone_and_deleting_again_is_harmless(store: Store) -> None:
    await store.put_room(room("a"))
    await store.put_room(room("b"))
    await store.delete_room("a")
    await store.delete_room("a")
    assert await store.get_room("a") is None
    assert [r.id for r in await store.list_rooms()] == ["b"]


# Placement (the claims themselves: tests/server/test_store_nodes.py)


async def test_rooms_are_placed_independently(store: Store) -> None:
    await store.heartbeat_node(node("node-a"), ttl=60)
    await store.heartbeat_node(node("node-b"), ttl=60)
    assert await store.claim_room("r1", "node-a", ttl=10) == "node-a"
    assert await store.claim_room("r2", "node-b", ttl=10) == "node-b"


async def test_deleting_a_room_releases_its_placement(store: Store) -> None:
    await store.heartbeat_node(node("node-a"), ttl=60)
    await store.put_room(room("mayor"))
    await store.claim_room("mayor", "node-a", ttl=10)
    await store.delete_room("mayor")
    assert await store.claim_room("mayor", "node-b", ttl=10) == "node-b"


def node(node_id: str, **load: int) -> NodeRecord:
    """A live node's record, as its heartbeat writes it."""
    return NodeRecord(node_id=node_id, url=f"http://{node_id}:8080", public_url=f"https://{node_id}.example", started_at=1.0, **load)


# Presence


async def test_presences_are_listed_by_join_time(store: Store) -> None:
    await store.set_presence(presence("late", joined_at=30.0), ttl=10)
    await store.set_presence(presence("early", joined_at=10.0), ttl=10)
    await store.set_presence(presence("middle", joined_at=20.0), ttl=10)
    assert [p.identity for p in await store.list_presence("mayor")] == ["early", "middle", "late"]


async def test_a_presence_is_returned_as_it_was_set(store: Store) -> None:
    record = PresenceRecord(
        room="mayor",
        identity="u1",
        site="county-3",
        name="张三",
        node="node-b",
        session_id="s-9",
        joined_at=12.5,
        role="moderator",
    )
    await store.set_presence(record, ttl=10)
    assert await store.list_presence("mayor") == [record]


async def test_setting_a_presence_again_replaces_it(store: Store) -> None:
    await store.set_presence(presence("u1", joined_at=1.0), ttl=10)
    moved = msgspec.structs.replace(presence("u1", joined_at=1.0), node="node-b")
    await store.set_presence(moved, ttl=10)
    assert await store.list_presence("mayor") == [moved]


async def test_a_removed_presence_is_no_longer_listed(store: Store) -> None:
    await store.set_presence(presence("u1", joined_at=1.0), ttl=10)
    await store.set_presence(presence("u2", joined_at=2.0), ttl=10)
    await store.remove_presence("mayor", "u1")
    await store.remove_presence("mayor", "u1")
    await store.remove_presence("empty-room", "nobody")
    assert [p.identity for p in await store.list_presence("mayor")] == ["u2"]


async def test_presences_of_different_rooms_are_kept_apart(store: Store) -> None:
    await store.set_presence(presence("u1", joined_at=1.0, room_id="r1"), ttl=10)
    await store.set_presence(presence("u2", joined_at=1.0, room_id="r2"), ttl=10)
    assert [p.identity for p in await store.list_presence("r1")] == ["u1"]
    assert [p.identity for p in await store.list_presence("r2")] == ["u2"]
    assert await store.list_presence("r3") == []


async def test_a_presence_expires_when_the_clock_passes_its_ttl(
    store: Store, clock: FakeClock
) -> None:
    await store.set_presence(presence("short", joined_at=1.0), ttl=5)
    await store.set_presence(presence("long", joined_at=2.0), ttl=30)
    clock.advance(4.9)
    assert [p.identity for p in await store.list_presence("mayor")] == ["short", "long"]
    clock.advance(0.1)
    assert [p.identity for p in await store.list_presence("mayor")] == ["long"]
    clock.advance(25)
    assert await store.list_presence("mayor") == []


async def test_refreshing_a_presence_keeps_it_alive(store: Store, clock: FakeClock) -> None:
    await store.set_presence(presence("u1", joined_at=1.0), ttl=5)
    clock.advance(4)
    await store.set_presence(presence("u1", joined_at=1.0), ttl=5)
    clock.advance(4)
    assert [p.identity for p in await store.list_presence("mayor")] == ["u1"]


async def test_an_expired_presence_comes_back_when_set_again(
    store: Store, clock: FakeClock
) -> None:
    await store.set_presence(presence("u1", joined_at=1.0), ttl=5)
    clock.advance(6)
    assert await store.list_presence("mayor") == []
    await store.set_presence(presence("u1", joined_at=7.0), ttl=5)
    assert [p.joined_at for p in await store.list_presence("mayor")] == [7.0]


# Events


async def test_an_appended_event_carries_who_what_and_when(
    store: Store, clock: FakeClock
) -> None:
    event = await store.append_event(
        "directives", actor="centre:li", kind="directive.issued", data={"to": ["a", "b"], "n": 1}
    )
    assert event.stream == "directives"
    assert event.actor == "centre:li"
    assert event.kind == "directive.issued"
    assert event.at == clock.now
    assert event.data == {"to": ["a", "b"], "n": 1}
    assert await store.read_events("directives") == [event]


async def test_events_are_read_back_in_the_order_they_were_appended(store: Store) -> None:
    appended = [
        await store.append_event("log", actor="a", kind="k", data={"i": i}) for i in range(20)
    ]
    read = await store.read_events("log")
    assert read == appended
    keys = [event_id_key(e.id) for e in read]
    assert keys == sorted(set(keys))


async def test_event_ids_increase_even_when_the_clock_stands_still(store: Store) -> None:
    events = [await store.append_event("log", actor="a", kind="k", data={}) for _ in range(5)]
    keys = [event_id_key(e.id) for e in events]
    assert keys == sorted(set(keys))


async def test_reading_after_an_id_resumes_strictly_after_it(store: Store) -> None:
    events = [await store.append_event("log", actor="a", kind="k", data={"i": i}) for i in range(6)]
    assert await store.read_events("log", after=events[2].id) == events[3:]
    assert await store.read_events("log", after=events[-1].id) == []
    later = await store.append_event("log", actor="a", kind="k", data={"i": 6})
    assert await store.read_events("log", after=events[-1].id) == [later]


async def test_reading_pages_through_a_stream_with_limit_and_after(store: Store) -> None:
    events = [await store.append_event("log", actor="a", kind="k", data={"i": i}) for i in range(7)]
    pages: list[list[str]] = []
    after: str | None = None
    while page := await store.read_events("log", after=after, limit=3):
        pages.append([e.id for e in page])
        after = page[-1].id
    assert pages == [[e.id for e in events[i : i + 3]] for i in (0, 3, 6)]


async def test_reading_after_an_id_older_than_the_stream_returns_everything(store: Store) -> None:
    events = [await store.append_event("log", actor="a", kind="k", data={}) for _ in range(3)]
    assert await store.read_events("log", after="0-0") == events


async def test_an_unknown_stream_reads_as_empty(store: Store) -> None:
    assert await store.read_events("never-written") == []
    assert await store.read_events("never-written", after="5-0") == []


async def test_streams_are_kept_apart(store: Store) -> None:
    a = await store.append_event("a", actor="x", kind="k", data={})
    b = await store.append_event("b", actor="x", kind="k", data={})
    assert await store.read_events("a") == [a]
    assert await store.read_events("b") == [b]


async def test_a_malformed_resume_id_is_refused(store: Store) -> None:
    with pytest.raises(EventIdInvalid):
        await store.read_events("log", after="not-an-id")


async def test_a_limit_below_one_is_refused(store: Store) -> None:
    with pytest.raises(ValueError):
        await store.read_events("log", limit=0)


async def test_event_data_that_json_cannot_hold_is_refused(store: Store) -> None:
    with pytest.raises(RecordInvalid):
        await store.append_event("log", actor="a", kind="k", data={"when": object()})
    assert await store.read_events("log") == []


async def test_changing_the_data_after_appending_does_not_change_the_log(store: Store) -> None:
    data: dict[str, object] = {"sites": ["a"]}
    await store.append_event("log", actor="a", kind="k", data=data)
    data["sites"] = ["a", "b"]
    assert [e.data for e in await store.read_events("log")] == [{"sites": ["a"]}]


async def test_concurrent_appends_get_distinct_ids_in_one_order(store: Store) -> None:
    appended = await asyncio.gather(
        *(store.append_event("busy", actor="a", kind="k", data={"i": i}) for i in range(200))
    )
    read = await store.read_events("busy")
    assert len({e.id for e in appended}) == 200
    assert {e.id for e in read} == {e.id for e in appended}
    keys = [event_id_key(e.id) for e in read]
    assert keys == sorted(keys)
    assert sorted(e.data["i"] for e in read) == list(range(200))  # type: ignore[type-var]


# Conditional appends and waiting for events: how nodes agree on one log


async def _one(store: Store, stream: str, last: str | None, actor: str, data: dict[str, object]) -> StoredEvent:
    (event,) = await store.append_events_at(stream, last, [(actor, "k", data)])
    return event


async def test_an_append_at_the_stream_end_is_stored(store: Store) -> None:
    first = await _one(store, "agreed", None, "a", {"i": 1})
    second = await _one(store, "agreed", first.id, "a", {"i": 2})
    assert [e.id for e in await store.read_events("agreed")] == [first.id, second.id]


async def test_an_append_behind_the_stream_end_is_refused_with_where_the_stream_is(store: Store) -> None:
    first = await store.append_event("agreed", actor="node-1", kind="k", data={"i": 1})
    with pytest.raises(StreamMoved) as refused:
        await _one(store, "agreed", None, "node-2", {"i": 2})
    assert (refused.value.expected, refused.value.last) == (None, first.id)
    second = await store.append_event("agreed", actor="node-1", kind="k", data={"i": 3})
    with pytest.raises(StreamMoved) as refused:
        await _one(store, "agreed", first.id, "node-2", {"i": 4})
    assert refused.value.last == second.id
    assert [e.data["i"] for e in await store.read_events("agreed")] == [1, 3]


async def test_of_concurrent_appends_at_the_same_end_exactly_one_is_stored(store: Store) -> None:
    base = await store.append_event("race", actor="a", kind="k", data={})
    results = await asyncio.gather(
        *(_one(store, "race", base.id, "a", {"i": i}) for i in range(20)),
        return_exceptions=True,
    )
    stored = [r for r in results if not isinstance(r, BaseException)]
    assert len(stored) == 1
    assert all(isinstance(r, StreamMoved) for r in results if isinstance(r, BaseException))
    assert len(await store.read_events("race")) == 2


async def test_several_events_are_appended_at_the_end_together_or_not_at_all(store: Store) -> None:
    first = await store.append_event("batch", actor="a", kind="k", data={"i": 0})
    stored = await store.append_events_at("batch", first.id, [("a", "k", {"i": 1}), ("b", "j", {"i": 2})])
    assert [(e.actor, e.kind, e.data) for e in stored] == [("a", "k", {"i": 1}), ("b", "j", {"i": 2})]
    assert [e.id for e in await store.read_events("batch")] == [first.id, *(e.id for e in stored)]
    with pytest.raises(StreamMoved):
        await store.append_events_at("batch", first.id, [("a", "k", {"i": 3}), ("a", "k", {"i": 4})])
    with pytest.raises(RecordInvalid):
        await store.append_events_at("batch", stored[-1].id, [("a", "k", {"i": 5}), ("a", "k", {"bad": object()})])
    assert len(await store.read_events("batch")) == 3


async def test_waiting_returns_what_is_there_at_once_stream_by_stream(store: Store) -> None:
    a1 = await store.append_event("wa", actor="x", kind="k", data={})
    b1 = await store.append_event("wb", actor="x", kind="k", data={})
    a2 = await store.append_event("wa", actor="x", kind="k", data={})
    found = await store.wait_events({"wa": a1.id, "wb": None, "wc": None}, block=5)
    assert sorted((e.stream, e.id) for e in found) == sorted([("wa", a2.id), ("wb", b1.id)])


async def test_waiting_wakes_when_an_event_is_appended(store: Store) -> None:
    async def later() -> None:
        await asyncio.sleep(0.2)
        await store.append_event("wake", actor="x", kind="k", data={"n": 1})

    task = asyncio.create_task(later())
    started = asyncio.get_running_loop().time()
    found = await store.wait_events({"wake": None}, block=5)
    took = asyncio.get_running_loop().time() - started
    await task
    assert [e.data for e in found] == [{"n": 1}]
    assert 0.1 < took < 2


async def test_waiting_with_nothing_new_returns_empty_after_the_block(store: Store) -> None:
    last = await store.append_event("still", actor="x", kind="k", data={})
    assert await store.wait_events({"still": last.id}, block=0.2) == []


async def test_a_claim_is_won_once_until_it_lapses(store: Store, clock: FakeClock) -> None:
    results = await asyncio.gather(*(store.claim_once("schedule:s1:1800000000", ttl=60) for _ in range(10)))
    assert results.count(True) == 1
    assert await store.claim_once("schedule:s1:1800000600", ttl=60), "another occurrence is another claim"
    if isinstance(store, MemoryStore):  # Redis expires claims by its own clock
        clock.advance(61)
        assert await store.claim_once("schedule:s1:1800000000", ttl=60)


# Revocations and device links


def revocation(token_id: str, expires_in: float, now: float = 1_700_000_000.0, **changes: object) -> RevocationRecord:
    record = RevocationRecord(token_id=token_id, expires_at=now + expires_in, revoked_at=now, identity="mayor", kind="user",
                              by="mayor", reason="logout")
    return msgspec.structs.replace(record, **changes)


def device_link(token_id: str, issued_at: float, expires_in: float = 3600.0) -> DeviceLinkRecord:
    return DeviceLinkRecord(token_id=token_id, identity=f"phone-{token_id}", name="临江县 手机", site="linjiang",
                            room="consultation", grants=("publish", "subscribe"), issued_at=issued_at,
                            expires_at=issued_at + expires_in, issued_by="cli")


async def test_a_revocation_is_read_back_as_it_was_kept_with_its_number(store: Store) -> None:
    seq = await store.revoke_token(revocation("t1", 600))
    records, latest = await store.revocations_after(0)
    assert records == [revocation("t1", 600, seq=seq)]
    assert latest == seq >= 1


async def test_revocations_are_read_in_order_after_a_number(store: Store) -> None:
    first = await store.revoke_token(revocation("t1", 600))
    second = await store.revoke_token(revocation("t2", 600))
    third = await store.revoke_token(revocation("t3", 600))
    assert first < second < third
    records, latest = await store.revocations_after(first)
    assert [(r.token_id, r.seq) for r in records] == [("t2", second), ("t3", third)]
    assert latest == third
    assert await store.revocations_after(third) == ([], third)


async def test_no_revocations_read_as_empty_at_number_zero(store: Store) -> None:
    assert await store.revocations_after(0) == ([], 0)


async def test_revoking_a_token_again_renumbers_its_one_record(store: Store) -> None:
    first = await store.revoke_token(revocation("t1", 600))
    await store.revoke_token(revocation("t2", 600))
    again = await store.revoke_token(revocation("t1", 900, reason="lost"))
    records, _ = await store.revocations_after(first - 1)
    assert [(r.token_id, r.seq, r.reason) for r in records][-1] == ("t1", again, "lost")
    assert [r.token_id for r in records].count("t1") == 1


async def test_a_revocation_is_dropped_once_the_token_would_have_expired(store: Store, clock: FakeClock) -> None:
    await store.revoke_token(revocation("short", 60))
    await store.revoke_token(revocation("long", 600))
    clock.advance(61)
    records, latest = await store.revocations_after(0)
    assert [r.token_id for r in records] == ["long"]
    assert latest == 2


async def test_device_links_are_listed_newest_first(store: Store) -> None:
    await store.put_device_link(device_link("a", 1_700_000_000.0))
    await store.put_device_link(device_link("b", 1_700_000_100.0))
    assert [r.token_id for r in await store.list_device_links()] == ["b", "a"]
    assert await store.get_device_link("a") == device_link("a", 1_700_000_000.0)
    assert await store.get_device_link("nobody") is None


async def test_a_device_link_is_gone_once_its_token_expires(store: Store, clock: FakeClock) -> None:
    await store.put_device_link(device_link("short", clock.now, expires_in=60))
    await store.put_device_link(device_link("long", clock.now, expires_in=600))
    clock.advance(60)
    assert await store.get_device_link("short") is None
    assert [r.token_id for r in await store.list_device_links()] == ["long"]


# The store itself


async def test_a_store_answers_ping_and_names_its_node(store: Store) -> None:
    assert await store.ping() is True
    assert store.node_id == "node-a"
    assert store.durable is isinstance(store, RedisStore)


async def test_closing_a_store_twice_is_harmless(store: Store) -> None:
    await store.close()
    await store.close()


# Beyond the contract: choosing a store and failing clearly


async def test_an_unreachable_redis_is_reported_with_its_url_but_not_its_password() -> None:
    unreachable = RedisStore(
        "redis://ops:s3cret-pw@127.0.0.1:1/0", node_id="n", connect_timeout=0.5
    )
    try:
        with pytest.raises(StoreUnavailable) as caught:
            await unreachable.start()
        assert await unreachable.ping() is False
    finally:
        await unreachable.close()
    assert "redis://ops@127.0.0.1:1/0" in str(caught.value)
    assert "s3cret-pw" not in str(caught.value)


async def test_the_memory_store_warns_at_start_that_records_die_with_the_process(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="server.store.memory"):
        await MemoryStore(node_id="n").start()
    assert any("only as long as this process" in r.getMessage() for r in caplog.records)


async def test_open_store_chooses_redis_only_when_a_url_is_given(redis_url: str) -> None:
    memory = open_store(None, node_id="n")
    also_memory = open_store("", node_id="n")
    remote = open_store(redis_url, node_id="n")
    try:
        assert isinstance(memory, MemoryStore) and memory.durable is False
        assert isinstance(also_memory, MemoryStore)
        assert isinstance(remote, RedisStore) and remote.durable is True
        assert remote.node_id == "n"
    finally:
        await remote.close()


def test_event_ids_compare_by_number_not_by_text() -> None:
    assert event_id_key("9-5") < event_id_key("10-0") < event_id_key("10-1")
    with pytest.raises(EventIdInvalid):
        event_id_key("10")


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
        ("redis://:pw@host:6379/1", "redis://host:6379/1"),
        ("rediss://user:pw@[::1]:6380/0?x=1", "rediss://user@[::1]:6380/0?x=1"),
    ],
)
def test_a_redacted_url_keeps_everything_but_the_password(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_a_refused_append_says_whether_the_stream_ends_before_what_the_writer_folded() -> None:
    assert StreamMoved("s", "5-0", "7-0").behind("5-0") is False  # another writer went on: catch up
    assert StreamMoved("s", "9-0", "7-0").behind("9-0") is True  # the store lost 9-0 (a failover)
    assert StreamMoved("s", "9-0", None).behind("9-0") is True
    assert StreamMoved("s", None, "7-0").behind(None) is False
