"""`/metrics` exposes the relay's per-packet forwarding delay as a Prometheus histogram."""

from __future__ import annotations

import aiohttp

from tests.server.conftest import Platform


async def test_the_forwarding_delay_histogram_is_scraped_with_cumulative_buckets(platform: Platform) -> None:
    delay = platform.services.counters.forward_delay
    for seconds in (0.0004, 0.0004, 0.004, 0.3):
        delay.observe(seconds)
    async with aiohttp.ClientSession() as http:
        async with http.get(platform.url + "/metrics") as response:
            assert response.status == 200
            text = await response.text()
    lines = {line.split(" ")[0]: float(line.split(" ")[1]) for line in text.splitlines() if line.startswith("cp_forward_delay_seconds")}
    assert lines['cp_forward_delay_seconds_bucket{le="0.0005"}'] == 2
    assert lines['cp_forward_delay_seconds_bucket{le="0.005"}'] == 3
    assert lines['cp_forward_delay_seconds_bucket{le="+Inf"}'] == 4
    assert lines["cp_forward_delay_seconds_count"] == 4
    assert abs(lines["cp_forward_delay_seconds_sum"] - 0.3048) < 1e-9
