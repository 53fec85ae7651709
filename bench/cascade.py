"""What a cascade link costs the node a publication was made on, against one more subscriber there.

A room across nodes (server/span.py) sends each publication once to every other node with
subscribers for it, over a link of its own answered like a player (media/cascade.py). Target: a
link costs the origin node no more than one extra subscriber. Three runs of the same room, each on
a fresh `bench.server` (P publishers, S subscribers receiving everything, CPU read from /proc):

  base        as it is;
  +K subs     a second server subscribing K more times, as K ordinary subscribers receiving
              everything (K x P more streams), its own CPU measured beside;
  +K links    the second server opening K links instead (as K other nodes with subscribers
              would), each carrying every publication, received the same way.

The second server receives both alike (media/cascade.py), so the two differ only in what the
origin does for a link against a subscriber, and the machine is as busy in both.

The extra CPU per added stream of the last two, and their ratio, are printed; runs alternate for
`--rounds` rounds and the medians are taken (this machine is noisy).

    .venv/bin/python -m bench.cascade             # 16 publishers, 16 subscribers, K = 8, 3 rounds of 15 s
    .venv/bin/python -m bench.cascade --publishers 8 --subscribers 8 --links 4 --seconds 10   # below saturation
    .venv/bin/python -m bench.cascade --quick     # 1 round of 8 s
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
import urllib.request
from typing import Any

from bench.forwarding import free_port, run_scenario, wait_up
from bench.load import cpu_seconds


class FarNode:
    """A second bench server that pulls the origin's publications over links while a run lasts."""

    def __init__(self, links: int, *, as_subscribers: bool) -> None:
        self.links = links
        self.as_subscribers = as_subscribers
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.cpu_percent = 0.0
        self._started = (0.0, 0.0)

    def pull(self, origin_url: str, publications: list[str]) -> None:
        """Start the far server and open `links` links per publication to the origin."""
        self.process = process = subprocess.Popen([sys.executable, "-m", "bench.server", "--port", str(self.port)])
        url = f"http://127.0.0.1:{self.port}"
        wait_up(url, process, "far bench server")
        body = json.dumps({"url": origin_url, "own_url": url, "links": self.links, "publications": publications,
                           "as_subscribers": self.as_subscribers}).encode()
        request = urllib.request.Request(f"{url}/pull", data=body, headers={"Content-Type": "application/json"})
        urllib.request.urlopen(request, timeout=120).read()
        self._wait_for(origin_url, self.links * len(publications))
        self._started = (cpu_seconds(process.pid), time.monotonic())

    @staticmethod
    def _wait_for(origin_url: str, streams: int) -> None:
        """Until the origin sends every publication on every link (its offers answered)."""
        deadline = time.monotonic() + 60
        while json.loads(urllib.request.urlopen(f"{origin_url}/stats", timeout=5).read())["subscriptions"] < streams:
            if time.monotonic() > deadline:
                raise RuntimeError("the links did not bring every publication in")
            time.sleep(0.2)  # another process's negotiation: nothing to wait on but its figures

    def stop(self) -> None:
        """Read the far server's CPU since its links opened, and stop it."""
        if self.process is None:
            return
        cpu0, t0 = self._started
        self.cpu_percent = 100 * (cpu_seconds(self.process.pid) - cpu0) / max(1e-9, time.monotonic() - t0)
        self.process.terminate()
        self.process.wait(10)


def one_round(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """The three runs, once each."""
    runs: dict[str, dict[str, Any]] = {}
    runs["base"] = run_scenario("relay", args.publishers, args.subscribers, args.seconds, args.warmup)
    for run, as_subscribers in (("subs", True), ("links", False)):
        far = FarNode(args.links, as_subscribers=as_subscribers)
        try:
            runs[run] = run_scenario("relay", args.publishers, args.subscribers, args.seconds, args.warmup, published=far.pull)
        finally:
            far.stop()
        runs[run]["far_cpu_percent"] = far.cpu_percent
    return runs


def main() -> None:
    """Run the rounds and print the medians."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--publishers", type=int, default=16)
    parser.add_argument("--subscribers", type=int, default=16)
    parser.add_argument("--links", type=int, default=8, help="K: added subscribers, and links per publication")
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--warmup", type=float, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="one round of 8 s")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.seconds, args.warmup = 1, 8, 3
    rounds = [one_round(args) for _ in range(args.rounds)]
    added = args.links * args.publishers

    def median(run: str, key: str) -> float:
        return statistics.median(float(r[run].get(key) or 0.0) for r in rounds)

    base, subs, links = (median(run, "server_cpu_percent") for run in ("base", "subs", "links"))
    per_sub = (subs - base) / added
    per_link = (links - base) / added
    print(f"\norigin: {args.publishers} publishers, {args.subscribers} subscribers; K = {args.links}; "
          f"{args.rounds} round(s) of {args.seconds:.0f} s, medians")
    print(f"{'run':<12}{'origin CPU %':>14}{'frames delivered':>18}")
    for run, label in (("base", "base"), ("subs", f"+{args.links} subs"), ("links", f"+{args.links} links")):
        print(f"{label:<12}{median(run, 'server_cpu_percent'):>14.1f}{median(run, 'delivered_ratio'):>18.4f}")
    print(f"\nextra origin CPU per added stream: subscriber {per_sub:.3f} %, link {per_link:.3f} %")
    print(f"link / subscriber: {per_link / per_sub:.2f}" if per_sub > 0 else "link / subscriber: n/a (no measurable subscriber cost)")
    print(f"second server receiving {added} streams: as subscribers {median('subs', 'far_cpu_percent'):.1f} % CPU, "
          f"on links {median('links', 'far_cpu_percent'):.1f} % ({median('links', 'far_cpu_percent') / added:.3f} % per stream)")


if __name__ == "__main__":
    main()
