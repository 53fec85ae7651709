"""The node registry and placement across nodes, over both stores (the contract suite's fixtures)."""

from __future__ import annotations

from server.store import Store
from server.store.nodes import MemberRecord, PartPublication, RoomPart, room_parts_stream
from tests.server.test_store_contract import FakeClock, clock, node, store  # noqa: F401 - fixtures

__all__ = ["clock", "store"]


async def test_a_node_is_listed_while_its_heartbeat_lasts(store: Store, clock: FakeClock) -> None:
    await store.heartbeat_node(node("node-b", participants=3), ttl=4)
    await store.heartbeat_node(node("node-a"), ttl=4)
    assert [n.node_id for n in await store.list_nodes()] == ["node-a", "node-b"]
    assert (await store.list_nodes())[1].participants == 3
    clock.advance(3)
    await store.heartbeat_node(node("node-a", rooms=1), ttl=4)
    clock.advance(1.5)
    assert await store.list_nodes() == [node("node-a", rooms=1)]


async def test_a_forgotten_node_is_gone_at_once(store: Store) -> None:
    await store.heartbeat_node(node("node-a"), ttl=4)
    await store.forget_node("node-a")
    await store.forget_node("node-a")  # twice is not an error
    assert await store.list_nodes() == []


async def test_the_first_claim_wins_and_others_obey_it(store: Store) -> None:
    for name in ("node-a", "node-b"):
        await store.heartbeat_node(node(name), ttl=4)
    assert await store.claim_room("mayor", "node-b", ttl=10) == "node-b"  # placed on behalf of the least loaded
    assert await store.claim_room("mayor", "node-a", ttl=10) == "node-b"
    assert await store.room_owner("mayor") == "node-b"
    assert await store.room_owner("other") is None


async def test_a_placement_on_a_node_that_stopped_beating_is_free(store: Store, clock: FakeClock) -> None:
    await store.heartbeat_node(node("node-a"), ttl=4)
    await store.heartbeat_node(node("node-b"), ttl=4)
    assert await store.claim_room("mayor", "node-a", ttl=30) == "node-a"
    clock.advance(3)
    await store.heartbeat_node(node("node-b"), ttl=4)
    clock.advance(1.5)  # node-a's heartbeat is over, its 30 s lease is not
    assert await store.room_owner("mayor") is None
    assert await store.claim_room("mayor", "node-b", ttl=30) == "node-b"


async def test_a_forgotten_nodes_rooms_are_free_at_once(store: Store) -> None:
    await store.heartbeat_node(node("node-a"), ttl=4)
    await store.claim_room("mayor", "node-a", ttl=30)
    await store.forget_node("node-a")
    assert await store.claim_room("mayor", "node-b", ttl=30) == "node-b"


async def test_an_expired_placement_is_free_even_on_a_live_node(store: Store, clock: FakeClock) -> None:
    await store.heartbeat_node(node("node-a"), ttl=100)
    await store.claim_room("mayor", "node-a", ttl=10)
    clock.advance(10)
    assert await store.room_owner("mayor") is None
    assert await store.claim_room("mayor", "node-b", ttl=10) == "node-b"


async def test_the_holder_refreshing_never_shortens_its_lease(store: Store, clock: FakeClock) -> None:
    await store.heartbeat_node(node("node-a"), ttl=100)
    await store.claim_room("mayor", "node-a", ttl=30)
    assert await store.claim_room("mayor", "node-a", ttl=5) == "node-a"
    clock.advance(20)
    assert await store.room_owner("mayor") == "node-a"
    assert await store.claim_room("mayor", "node-b", ttl=30) == "node-a"


def part(node_id: str, *members: str) -> RoomPart:
    return RoomPart(room_id="mayor", node_id=node_id, url=f"http://{node_id}",
                    members=tuple(MemberRecord(m, "county", m, "participant") for m in members),
                    publications=tuple(PartPublication(f"p-{m}", m, "video", "camera", "VP8") for m in members))


async def test_a_rooms_parts_are_read_back_while_their_nodes_refresh_them(store: Store, clock: FakeClock) -> None:
    await store.put_room_part(part("node-b", "county02"), ttl=4)
    await store.put_room_part(part("node-a", "county01", "mayor"), ttl=4)
    assert await store.room_parts("mayor") == [part("node-a", "county01", "mayor"), part("node-b", "county02")]
    assert await store.room_parts("other") == []
    clock.advance(3)
    await store.put_room_part(part("node-a", "county01"), ttl=4)
    clock.advance(1.5)
    assert await store.room_parts("mayor") == [part("node-a", "county01")]


async def test_every_change_to_a_rooms_parts_is_noted_on_its_stream(store: Store) -> None:
    await store.put_room_part(part("node-a", "county01"), ttl=4)
    await store.drop_room_part("mayor", "node-a")
    await store.drop_room_part("mayor", "node-b")  # not there: harmless, still a notice
    assert await store.room_parts("mayor") == []
    notices = await store.read_events(room_parts_stream("mayor"))
    assert [(e.actor, e.kind) for e in notices] == [("node-a", "part"), ("node-a", "part_dropped"), ("node-b", "part_dropped")]
