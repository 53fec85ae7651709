"""The revocation cache: what one node revokes, another learns by reading only what is new."""

from __future__ import annotations

from server.revocations import RevocationList, keep_until
from server.store import MemoryStore, RevocationRecord

NOW = 1_800_000_000.0


def record(token_id: str, expires_in: float = 600) -> RevocationRecord:
    return RevocationRecord(token_id=token_id, expires_at=NOW + expires_in, revoked_at=NOW)


async def test_a_revocation_on_one_node_reaches_another_once_and_only_once() -> None:
    store = MemoryStore(node_id="shared", clock=lambda: NOW)
    a, b = RevocationList(store, clock=lambda: NOW), RevocationList(store, clock=lambda: NOW)
    await a.revoke(record("t1"))
    assert a.contains("t1") and not b.contains("t1")
    assert [r.token_id for r in await b.sync()] == ["t1"]
    assert b.contains("t1")
    await a.revoke(record("t2"))
    assert [r.token_id for r in await b.sync()] == ["t2"]
    assert await b.sync() == []
    assert [r.token_id for r in await a.sync()] == []  # its own were known already
    assert len(b) == 2


async def test_a_store_that_lost_its_numbers_is_read_again_from_the_start() -> None:
    first = MemoryStore(node_id="shared", clock=lambda: NOW)
    node = RevocationList(first, clock=lambda: NOW)
    for token_id in ("t1", "t2", "t3"):
        await first.revoke_token(record(token_id))
    await node.sync()
    flushed = MemoryStore(node_id="shared", clock=lambda: NOW)  # a Redis emptied and refilled
    node._store = flushed
    await flushed.revoke_token(record("t4"))
    assert [r.token_id for r in await node.sync()] == ["t4"]


async def test_revocations_of_expired_tokens_are_forgotten() -> None:
    now = [NOW]
    node = RevocationList(MemoryStore(node_id="n", clock=lambda: now[0]), clock=lambda: now[0])
    await node.revoke(record("short", expires_in=60))
    now[0] += 61
    await node.sync()
    assert not node.contains("short") and len(node) == 0


def test_a_revocation_by_id_alone_is_kept_as_long_as_any_token_may_live() -> None:
    assert keep_until(NOW + 5, 86400, NOW) == NOW + 5
    assert keep_until(None, 86400, NOW) == NOW + 86400 + 60
