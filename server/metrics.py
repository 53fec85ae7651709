"""Prometheus metrics, read from live state at scrape time (no module-level registry)."""

from __future__ import annotations

from collections.abc import Iterator

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from server.room import Room
from server.services import SERVICES, Services

REGISTRY = web.AppKey("metrics_registry", CollectorRegistry)


class ServerCollector(Collector):
    """Rooms, participants, publications, subscriptions and relay totals of one server."""

    def __init__(self, services: Services) -> None:
        self._services = services

    def collect(self) -> Iterator[Metric]:
        """Yield the current figures."""
        rooms = list(self._services.rooms.rooms.values())
        counters = self._services.counters
        yield GaugeMetricFamily("cp_rooms", "Rooms hosted on this node", value=len(rooms))
        yield GaugeMetricFamily("cp_participants", "Participants in rooms on this node", value=sum(len(r.participants) for r in rooms))
        yield GaugeMetricFamily("cp_publications", "Published tracks", value=sum(len(r.router.publications) for r in rooms))
        yield GaugeMetricFamily("cp_subscriptions", "Publication deliveries to subscribers", value=sum(r.router.subscription_count for r in rooms))
        yield GaugeMetricFamily("cp_peer_connections", "Open peer connections", value=sum(r.router.peer_count for r in rooms))
        yield GaugeMetricFamily("cp_ws_sessions", "Open signaling sessions", value=len(self._services.sessions))
        yield from self._lifecycle(rooms)
        yield from self._nodes()
        yield from self._access()
        yield from self._records()
        yield CounterMetricFamily("cp_packets_forwarded", "RTP packets forwarded to subscribers", value=counters.packets_forwarded)
        yield CounterMetricFamily("cp_bytes_forwarded", "RTP bytes forwarded to subscribers", value=counters.bytes_forwarded)
        yield CounterMetricFamily("cp_packets_received", "RTP packets received from publishers", value=counters.packets_received)
        yield CounterMetricFamily("cp_bytes_received", "RTP payload bytes received from publishers", value=counters.bytes_received)
        yield CounterMetricFamily("cp_keyframe_requests", "PLIs sent to publishers", value=counters.keyframe_requests)
        yield CounterMetricFamily("cp_retransmissions", "Packets resent to subscribers on NACK", value=counters.retransmissions)
        yield CounterMetricFamily(
            "cp_retransmissions_skipped", "NACKs not answered: the packet went out less than a round trip before",
            value=counters.retransmissions_skipped,
        )
        delay = counters.forward_delay
        cumulative, buckets = 0, []
        for bound, count in zip((*delay.BOUNDS, float("inf")), delay.counts):
            cumulative += count
            buckets.append(("+Inf" if bound == float("inf") else repr(bound), cumulative))
        yield HistogramMetricFamily(
            "cp_forward_delay_seconds", "Relay delay per publisher packet, arrival to send to its last subscriber",
            buckets=buckets, sum_value=delay.total,
        )


    def _lifecycle(self, rooms: list[Room]) -> Iterator[Metric]:
        lifecycle = self._services.lifecycle
        yield GaugeMetricFamily(
            "cp_participants_reconnecting", "Participants whose connections are lost, within their grace period",
            value=sum(1 for r in rooms for p in r.participants.values() if p.state == "reconnecting"),
        )
        yield GaugeMetricFamily("cp_connections", "Admitted connections (sessions, WHIP, WHEP)", value=sum(r.connection_count for r in rooms))
        failures = CounterMetricFamily("cp_connection_failures", "Peer connections that failed, by reason", labels=["reason"])
        for reason, count in sorted(lifecycle.failures.items()):
            failures.add_metric([reason], count)
        yield failures
        yield CounterMetricFamily(
            "cp_ghosts_cleaned", "Participants and players ended because they stayed lost past the grace period",
            value=lifecycle.ghosts_cleaned,
        )
        yield CounterMetricFamily("cp_connections_replaced", "Connections closed because the same identity connected again", value=lifecycle.replaced)


    def _records(self) -> Iterator[Metric]:
        skipped = CounterMetricFamily(
            "cp_log_records_skipped", "Records of a log that a fold could not use (logged once each), by log and reason",
            labels=["log", "reason"],
        )
        for records in self._services.skipped:
            for reason, count in sorted(records.by_reason.items()):
                skipped.add_metric([records.log, reason], count)
        yield skipped
        yield CounterMetricFamily(
            "cp_store_undecodable_entries", "Stream entries in the store that are not events of ours (skipped)",
            value=self._services.store.undecodable_entries,
        )
        for name, (text, read) in sorted(self._services.domain_counters.items()):
            yield CounterMetricFamily(name, text, value=read())

    def _nodes(self) -> Iterator[Metric]:
        """The live nodes as of this node's last heartbeat, with the load each reported."""
        nodes = self._services.nodes
        yield GaugeMetricFamily("cp_nodes_live", "Live nodes in the registry (this node's last heartbeat)", value=len(nodes.live))
        info = GaugeMetricFamily("cp_node_info", "A live node: where nodes and browsers reach it (1 for this node's own row)",
                                 labels=["node", "url", "public_url", "self"])
        load = GaugeMetricFamily("cp_node_load", "What a live node reported in its last heartbeat, by figure", labels=["node", "figure"])
        for node in nodes.live.values():
            info.add_metric([node.node_id, node.url, node.public_url, str(node.node_id == nodes.node_id).lower()], 1)
            for figure in ("participants", "publications", "forwarded", "rooms"):
                load.add_metric([node.node_id, figure], getattr(node, figure))
        yield info
        yield load
        yield GaugeMetricFamily("cp_relayed_sessions", "Sessions this node relays to the node hosting their room",
                                value=len(self._services.relays))

    def _access(self) -> Iterator[Metric]:
        limited = CounterMetricFamily("cp_rate_limited", "Requests refused by a rate limit, by what was asked", labels=["what"])
        for what, count in sorted(self._services.rate_limits.refused.items()):
            limited.add_metric([what], count)
        yield limited
        yield GaugeMetricFamily(
            "cp_revoked_tokens", "Revoked tokens this node refuses (until they expire)", value=len(self._services.tokens.revocations)
        )


async def metrics(request: web.Request) -> web.Response:
    """`GET /metrics` in the Prometheus text format."""
    body = generate_latest(request.app[REGISTRY])
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def healthz(request: web.Request) -> web.Response:
    """`GET /healthz`: 200 when the store answers, 503 otherwise."""
    services = request.app[SERVICES]
    try:
        store_ok = await services.store.ping()
    except Exception:  # noqa: BLE001 - any store failure is "unhealthy", not a crash
        store_ok = False
    status = 200 if store_ok else 503
    nodes = services.nodes
    return web.json_response(
        {"status": "ok" if store_ok else "store_unavailable", "store": type(services.store).__name__,
         "node": nodes.node_id, "nodes": sorted(nodes.live)},
        status=status,
    )


def add_routes(app: web.Application, services: Services) -> None:
    """Register `/metrics` and `/healthz` with a registry of this app's own."""
    registry = CollectorRegistry(auto_describe=True)
    registry.register(ServerCollector(services))
    app[REGISTRY] = registry
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
