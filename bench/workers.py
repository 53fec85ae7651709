"""Capacity with one worker against two: how many streams this machine forwards at >= 99.5 % of
frames delivered, and the CPU per forwarded stream-second, with the rooms in one process or spread
over two (what `python -m server run --workers 2` does: one node, one relay, one core each).

One worker: one relay process (`bench.server`) with one room of P publishers and S subscribers.
Two workers: two relay processes, each with a room of P/2 publishers and S subscribers, run at the
same time: the same publishers and the same streams in all, split as placement splits rooms.
The load tools (publishers and lean subscribers, `bench.load`) share this machine's cores with the
relays in both cases, so the figures compare the two set-ups on the same machine, not the relay
alone (bench/forwarding.py does that).

    .venv/bin/python -m bench.workers                 # S = 30, 45, 60, 75 with P = 16; ~6 minutes
    .venv/bin/python -m bench.workers --subscribers 30,60 --seconds 10
"""

from __future__ import annotations

import argparse
import concurrent.futures
from typing import Any

from bench.forwarding import run_scenario

TARGET = 0.995


def one(publishers: int, subscribers: int, seconds: float) -> dict[str, Any]:
    """All rooms in one process."""
    result = run_scenario("relay", publishers, subscribers, seconds, 4)
    return _summary([result])


def two(publishers: int, subscribers: int, seconds: float) -> dict[str, Any]:
    """The rooms over two processes at once: half the publishers each, every subscriber of its room."""
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda _: run_scenario("relay", publishers // 2, subscribers, seconds, 4), range(2)))
    return _summary(results)


def _summary(results: list[dict[str, Any]]) -> dict[str, Any]:
    streams = sum(r["streams"] for r in results)
    cpu = sum(r["server_cpu_ms_per_stream_s"] * r["streams"] for r in results) / streams
    return {
        "streams": streams,
        "delivered": min(r["delivered_ratio"] for r in results),
        "below_99": sum(len(r["streams_below_99"]) if isinstance(r["streams_below_99"], list) else r["streams_below_99"] for r in results),
        "server_cpu_ms_per_stream_s": round(cpu, 3),
        "server_cpu_percent": round(sum(r["server_cpu_percent"] for r in results), 1),
        "load_cpu_percent": round(sum(r["load_cpu_percent"] for r in results), 1),
        "delay_p99_ms": max(r["delay_p99_ms"] for r in results),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--publishers", type=int, default=16)
    parser.add_argument("--subscribers", default="30,45,60,75", help="subscribers per room, comma-separated steps")
    parser.add_argument("--seconds", type=float, default=15)
    args = parser.parse_args()
    best = {"one worker": 0, "two workers": 0}
    print(f"{'':14}{'streams':>8}{'delivered':>11}{'<99%':>6}{'ms CPU/stream-s':>17}{'relay CPU %':>13}{'load CPU %':>12}{'p99 ms':>8}")
    for subscribers in (int(s) for s in args.subscribers.split(",")):
        for label, run in (("one worker", one), ("two workers", two)):
            r = run(args.publishers, subscribers, args.seconds)
            if r["delivered"] >= TARGET:
                best[label] = max(best[label], r["streams"])
            print(f"{label:14}{r['streams']:>8}{r['delivered']:>11.4f}{r['below_99']:>6}{r['server_cpu_ms_per_stream_s']:>17}"
                  f"{r['server_cpu_percent']:>13}{r['load_cpu_percent']:>12}{r['delay_p99_ms']:>8}", flush=True)
    print(f"\nlargest load at >= {TARGET:.1%} of frames delivered: one worker {best['one worker']} streams, "
          f"two workers {best['two workers']} streams"
          + (f" ({best['two workers'] / best['one worker']:.2f}x)" if best["one worker"] else ""))


if __name__ == "__main__":
    main()
