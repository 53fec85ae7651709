"""`RelayCounters`: the relay's totals, one instance per server, shared by its routers."""

from __future__ import annotations

from dataclasses import dataclass, field

from media.packets import DelayHistogram


@dataclass
class RelayCounters:
    """Totals the metrics endpoint reads; one instance per server, shared by its routers."""

    packets_forwarded: int = 0
    bytes_forwarded: int = 0
    packets_received: int = 0
    bytes_received: int = 0
    keyframe_requests: int = 0
    retransmissions: int = 0
    retransmissions_skipped: int = 0  # NACKs for packets forwarded less than a round trip before
    upstream_nacks: int = 0  # sequence numbers NACKed to publishers (first asks and retries)
    upstream_retransmissions: int = 0  # RTX packets received from publishers
    # Per publisher packet: arrival at the relay to its send to the last subscriber of the fan-out.
    forward_delay: DelayHistogram = field(default_factory=DelayHistogram)

