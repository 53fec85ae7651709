"""Pages over several nodes: a wall served by the room's node keeps showing a field unit's camera
after that node is killed with SIGKILL, by reconnecting through another node by itself.

Three `python -m server run` nodes over one redis-server of the test's own. The wall page comes
from node 3 (the room is placed there), the field page from node 1 (its session is relayed to
node 3). Node 3 dies: node 1 cuts the relayed socket, the field page reconnects through node 1, the
wall page (whose own node is gone) through the next node its welcome named, and the room is placed
again on a survivor.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from tests.e2e.conftest import Server, running_server, wait_until
from tests.server.test_store_outage import RedisProcess

pytestmark = pytest.mark.browser

SECRET = "nodes-browser-secret-" + "0" * 43
BACK_WITHIN_S = 10.0
JOIN_TIMEOUT_MS = 20_000

# The wall's picture of `id` is live: frames of it decode on the wall's current subscriber connection.
DECODING_JS = """async (id) => {
  const stats = (await window.__room.inboundVideoStats()).filter((s) => s.identity === id);
  return window.__room.state === "connected" && stats.some((s) => s.framesDecoded > 0);
}"""


@pytest.fixture
def deployment(tmp_path: Path) -> Iterator[tuple[Server, Server, Server]]:
    redis = RedisProcess(tmp_path)
    redis.start()
    try:
        with ExitStack() as stack:
            servers = []
            for node_id in ("node-1", "node-2", "node-3"):
                (tmp_path / node_id).mkdir()
                servers.append(stack.enter_context(
                    running_server(tmp_path / node_id, secret=SECRET, REDIS_URL=redis.url, NODE_ID=node_id)
                ))
            yield servers[0], servers[1], servers[2]
    finally:
        redis.kill()


def test_a_wall_whose_node_is_killed_shows_the_camera_again_through_another_node(
    deployment: tuple[Server, Server, Server], open_page: Callable[..., object]
) -> None:
    node1, node2, node3 = deployment
    wall_token = node3.device_token("e2e-wall", "command_centre", grants=("subscribe",), name="指挥中心大屏")
    field_token = node1.device_token("e2e-field", "mobile01", name="移动平台")
    wall = open_page(node3.room_url(wall_token, page="wall"))
    wait_until(wall, "() => window.__room && window.__room.state === 'connected'", timeout_ms=JOIN_TIMEOUT_MS)
    field = open_page(f"{node1.base_url}/field/consultation?token={field_token}")
    wait_until(field, "() => window.__room && window.__room.publisher && window.__room.publisher.connectionState === 'connected'",
               timeout_ms=JOIN_TIMEOUT_MS)
    wait_until(wall, DECODING_JS, "e2e-field", timeout_ms=JOIN_TIMEOUT_MS)
    hosts = wall.evaluate("() => window.__room.nodes.hosts")  # type: ignore[attr-defined]
    assert sorted(hosts) == sorted(s.base_url.removeprefix("http://") for s in (node1, node2, node3))

    assert node3.process is not None
    node3.process.kill()
    killed = time.monotonic()
    wait_until(wall, "() => window.__room.state !== 'connected'", timeout_ms=5_000, interval_ms=50)
    try:
        wait_until(wall, DECODING_JS, "e2e-field", timeout_ms=int(BACK_WITHIN_S * 1000) + 5_000, interval_ms=100)
    except TimeoutError:
        print("wall console:\n" + "\n".join(wall.console_messages_seen[-30:]))  # type: ignore[attr-defined]
        print("field console:\n" + "\n".join(field.console_messages_seen[-30:]))  # type: ignore[attr-defined]
        raise
    back = time.monotonic() - killed
    now_on = wall.evaluate("() => window.__room.nodes.current")  # type: ignore[attr-defined]
    print(f"\nwall shows the field camera again {back:.2f} s after node 3 was killed, through {now_on}")
    assert now_on != node3.base_url.removeprefix("http://")
    assert back < BACK_WITHIN_S


# Frames of `id`'s video the wall decoded so far, over every track of it (a camera back after its node
# died comes as a new publication).
DECODED_JS = """async (id) => (await window.__room.inboundVideoStats())
  .filter((s) => s.identity === id).reduce((n, s) => n + (s.framesDecoded || 0), 0)"""


@pytest.fixture
def spanning_deployment(tmp_path: Path) -> Iterator[tuple[Server, Server]]:
    """Two nodes on which a room holds one participant per node before it spans to the other."""
    redis = RedisProcess(tmp_path)
    redis.start()
    try:
        with ExitStack() as stack:
            servers = []
            for node_id in ("node-1", "node-2"):
                (tmp_path / node_id).mkdir()
                servers.append(stack.enter_context(running_server(
                    tmp_path / node_id, secret=SECRET, REDIS_URL=redis.url, NODE_ID=node_id, ROOM_NODE_LIMIT="1",
                )))
            yield servers[0], servers[1]
    finally:
        redis.kill()


def test_a_room_across_two_nodes_keeps_the_camera_when_the_cameras_node_is_killed(
    spanning_deployment: tuple[Server, Server], open_page: Callable[..., object]
) -> None:
    node1, node2 = spanning_deployment
    wall = open_page(node1.room_url(node1.device_token("e2e-wall", "command_centre", grants=("subscribe",)), page="wall"))
    wait_until(wall, "() => window.__room && window.__room.state === 'connected'", timeout_ms=JOIN_TIMEOUT_MS)
    # Node 1 holds its one participant (the wall): the field unit, reaching node 1, is served on node 2
    # and its camera crosses to node 1 once, over a link between the nodes.
    field = open_page(f"{node1.base_url}/field/consultation?token={node1.device_token('e2e-field', 'mobile01')}")
    wait_until(field, "() => window.__room && window.__room.publisher && window.__room.publisher.connectionState === 'connected'",
               timeout_ms=JOIN_TIMEOUT_MS)
    wait_until(wall, DECODING_JS, "e2e-field", timeout_ms=JOIN_TIMEOUT_MS)
    assert "cascade link served" in node2.log() and "cascade link open" in node1.log()

    assert node2.process is not None
    node2.process.kill()
    killed = time.monotonic()
    # The field page's session was relayed through node 1, which cuts it once node 2 stops beating;
    # the page connects again through node 1 and is served there (node 2 is gone).
    wait_until(field, "() => window.__room.state !== 'connected'", timeout_ms=10_000, interval_ms=50)
    before = wall.evaluate(DECODED_JS, "e2e-field")  # type: ignore[attr-defined]
    try:
        wait_until(wall, f"async (id) => ({DECODED_JS})(id).then((n) => n >= {before} + 15)", "e2e-field",
                   timeout_ms=int(BACK_WITHIN_S * 1000) + 5_000, interval_ms=100)
    except TimeoutError:
        print("wall console:\n" + "\n".join(wall.console_messages_seen[-30:]))  # type: ignore[attr-defined]
        print("field console:\n" + "\n".join(field.console_messages_seen[-30:]))  # type: ignore[attr-defined]
        raise
    back = time.monotonic() - killed
    print(f"\nwall shows the field camera again {back:.2f} s after its node was killed")
    assert back < BACK_WITHIN_S
