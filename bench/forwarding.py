"""The forwarding benchmark: the project's relay against aiortc's MediaRelay under the same load,
then the relay alone at 4 x 8 = 32 streams, at 200 streams (delay) and at the city scenario,
16 x 30 = 480 streams, the last also with loss at the publishers (upstream repair).

Each scenario starts a fresh server process (`bench.server`) and a load process (`bench.load`),
so the server's CPU is measured alone from /proc; the load tool reports its own CPU beside it.

    .venv/bin/python -m bench.forwarding            # all scenarios, ~4 minutes
    .venv/bin/python -m bench.forwarding --quick    # shorter runs
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Sequence
from typing import Any

COLUMNS = (
    ("server_cpu_ms_per_stream_s", "server ms CPU/stream-s"),
    ("server_marginal_ms_per_stream_s", "  marginal (minus idle)"),
    ("server_cpu_percent", "server CPU %"),
    ("server_idle_cpu_percent", "server idle CPU %"),
    ("load_cpu_percent", "load tool CPU %"),
    ("delivered_ratio", "frames delivered/sent"),
    ("delay_p50_ms", "delay p50 ms"),
    ("delay_p99_ms", "delay p99 ms"),
    ("first_frame_p50_ms", "first frame p50 ms"),
    ("first_frame_max_ms", "first frame max ms"),
    ("server_kb_per_subscription", "server KB/subscription"),
    ("streams_below_99", "streams < 99% frames"),
    ("server_retransmissions", "server RTX sent"),
    ("server_retransmissions_skipped", "  NACKs crossing a packet"),
    ("nacks_sent", "NACKs sent"),
    ("retransmissions_received", "RTX received"),
    ("upstream_nacks", "seqs NACKed upstream"),
    ("upstream_retransmissions", "RTX from publishers"),
    ("udp_rcvbuf_drops", "kernel UDP rcvbuf drops"),
    ("silent_subscribers", "subscribers with nothing"),
)


def stop_process(process: subprocess.Popen[Any], timeout: float = 10) -> None:
    """Ask a bench process to end, and kill it if it has not within `timeout` seconds."""
    process.terminate()
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()


def free_port() -> int:
    """An unused TCP port on loopback."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_up(url: str, process: subprocess.Popen[Any], what: str, *, path: str = "/stats", timeout: float = 30) -> None:
    """Until the server process at `url` answers `path` (RuntimeError if it exits or takes too long)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            urllib.request.urlopen(f"{url}{path}", timeout=1).read()
            return
        except OSError:
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError(f"{what} did not start") from None
            time.sleep(0.2)  # process start-up: nothing to wait on but the port


def run_scenario(
    mode: str, publishers: int, subscribers: int, seconds: float, warmup: float, publisher_loss: float = 0.0,
    published: Callable[[str, list[str]], None] | None = None, server_args: Sequence[str] = (),
    finished: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """One server process, one load process; the load's JSON figures. `published(url, publication_ids)`
    runs once the publishers are in, before the subscribers (bench.cascade opens its links there);
    `finished(url)` once the load is done, before the server stops (bench.recording reads it there)."""
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "bench.server", "--mode", mode, "--port", str(port), *server_args])
    url = f"http://127.0.0.1:{port}"
    try:
        wait_up(url, server, f"benchmark server ({mode})")
        publishing = subprocess.Popen(
            [sys.executable, "-m", "bench.load", "--role", "publish", "--url", url, "--publishers", str(publishers),
             "--publisher-loss", str(publisher_loss)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )
        try:
            started = json.loads(publishing.stdout.readline())  # type: ignore[union-attr]
            if published is not None:
                published(url, started["publications"])
            load = subprocess.run(
                [sys.executable, "-m", "bench.load", "--url", url, "--publishers", str(publishers),
                 "--subscribers", str(subscribers), "--seconds", str(seconds), "--warmup", str(warmup),
                 "--publications", ",".join(started["publications"]), "--load-pids", str(started["pid"]),
                 "--idle-seconds", str(seconds / 2)],
                capture_output=True, text=True, timeout=600,
            )
            publishing.stdin.close()  # type: ignore[union-attr]
            ended = json.loads(publishing.stdout.readline() or "{}")  # type: ignore[union-attr]
            publishing.wait(30)
        finally:
            if publishing.poll() is None:
                publishing.kill()
        if load.returncode != 0:
            raise RuntimeError(f"load tool failed: {load.stderr[-2000:]}")
        if finished is not None:
            finished(url)
        result: dict[str, Any] = json.loads(load.stdout.strip().splitlines()[-1])
        result["mode"] = mode if not publisher_loss else f"{mode} loss {publisher_loss:.0%}"
        result["keyframe_requests_at_publishers"] = ended.get("keyframe_requests")
        return result
    finally:
        stop_process(server)


def print_table(results: list[dict[str, Any]]) -> None:
    """The figures, one column per scenario."""
    names = [f"{r['mode']} {r['publishers']}x{r['subscribers']}={r['streams']}" for r in results]
    width = max(len(n) for n in names) + 2
    print(f"{'':26}" + "".join(n.rjust(width) for n in names))
    for key, label in COLUMNS:
        cells = ["-" if r.get(key) is None else str(len(r[key]) if isinstance(r[key], list) else r[key]) for r in results]
        print(f"{label:26}" + "".join(c.rjust(width) for c in cells))


def print_ratios(results: list[dict[str, Any]], relay: dict[str, Any], naive: dict[str, Any], compare: str) -> None:
    """MediaRelay over relay: at equal load (gross and marginal), and each at its largest measured load."""
    def ratio(a: float | None, b: float | None) -> str:
        return "-" if a is None or b is None or b <= 0 else f"{a / b:.1f}x"

    g_naive, g_relay = naive["server_cpu_ms_per_stream_s"], relay["server_cpu_ms_per_stream_s"]
    m_naive, m_relay = naive.get("server_marginal_ms_per_stream_s"), relay.get("server_marginal_ms_per_stream_s")
    print("\nMediaRelay / relay, server CPU per forwarded stream-second:")
    print(f"  equal load {compare}, gross:                    {g_naive} / {g_relay} ms = {ratio(g_naive, g_relay)}")
    print(f"  equal load {compare}, marginal (gross - idle):  {m_naive} / {m_relay} ms = {ratio(m_naive, m_relay)}")
    largest = max((r for r in results if r["mode"] == "relay"), key=lambda r: r["streams"])
    g_large = largest["server_cpu_ms_per_stream_s"]
    print(
        f"  each at its largest measured load, gross:   MediaRelay {naive['streams']} streams {g_naive} ms / "
        f"relay {largest['streams']} streams {g_large} ms = {ratio(g_naive, g_large)}"
        f"  (MediaRelay cannot run a larger load on this machine)"
    )


def main() -> None:
    """Run the scenarios and print the table and the MediaRelay ratio."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="10 s measurements instead of 20 s")
    parser.add_argument("--compare", default="2x4", help="publishers x subscribers for the relay/MediaRelay comparison")
    parser.add_argument("--publisher-loss", type=float, default=0.02, help="loss at the publishers for the repair run")
    parser.add_argument("--skip", default="", help="comma-separated scenarios to skip: compare,32,200,480,repair")
    args = parser.parse_args()
    seconds = 10 if args.quick else 20
    skip = set(filter(None, args.skip.split(",")))
    results: list[dict[str, Any]] = []
    if "compare" not in skip:
        p, s = (int(x) for x in args.compare.split("x"))
        relay = run_scenario("relay", p, s, seconds, 4)
        naive = run_scenario("mediarelay", p, s, seconds, 4)
        results += [relay, naive]
    if "32" not in skip:  # the load of the Janus and bare-relay figures quoted in the README
        results.append(run_scenario("relay", 4, 8, seconds, 4))
    if "200" not in skip:
        results.append(run_scenario("relay", 8, 25, seconds, 5))
    if "480" not in skip:
        results.append(run_scenario("relay", 16, 30, seconds, 5))
    if "repair" not in skip and args.publisher_loss:
        # Upstream repair under the city load: the server NACKs what the publishers' loss took.
        results.append(run_scenario("relay", 16, 30, seconds, 5, args.publisher_loss))
    print_table(results)
    if "compare" not in skip:
        print_ratios(results, relay, naive, args.compare)
    print("\n" + json.dumps(results))


if __name__ == "__main__":
    main()
