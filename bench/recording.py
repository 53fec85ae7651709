"""What recording costs: the city scenario (16 publications forwarded to 30 subscribers each) with
every publication recorded to disk, against the same run without recording, in the same session.

Each run is a fresh server process (`bench.server`, `--record DIR` for the recorded one) and the
load tool (`bench.load`), as in bench/forwarding.py. Per recorded track: the writer thread's CPU and
the bytes and frames written per second; for forwarding: server CPU, frames delivered and the
forwarding delay p99, with and without, and their ratios.

    .venv/bin/python -m bench.recording            # 20 s measurements, ~3 minutes
    .venv/bin/python -m bench.recording --quick    # 10 s
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from bench.forwarding import run_scenario

COLUMNS = (
    ("server_cpu_percent", "server CPU %"),
    ("server_cpu_ms_per_stream_s", "server ms CPU/stream-s"),
    ("delivered_ratio", "frames delivered/sent"),
    ("frames_delivered", "frames delivered"),
    ("delay_p50_ms", "delay p50 ms"),
    ("delay_p99_ms", "delay p99 ms"),
    ("streams_below_99", "streams < 99% frames"),
    ("recorded_tracks", "tracks recorded"),
    ("recorder_cpu_ms_per_track_s", "writer ms CPU/track-s"),
    ("recorded_kbit_s_per_track", "written kbit/s per track"),
    ("recorded_fps_per_track", "frames written/s per track"),
    ("recorder_dropped", "packets dropped (queue full)"),
    ("recorder_lost", "gaps skipped by the writer"),
    ("disk_bytes", "bytes on disk"),
)


def main() -> None:
    """Run without, then with recording; print the table, the ratios and the JSON."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="10 s measurements instead of 20 s")
    parser.add_argument("--publishers", type=int, default=16)
    parser.add_argument("--subscribers", type=int, default=30)
    args = parser.parse_args()
    seconds = 10 if args.quick else 20
    directory = Path(tempfile.mkdtemp(prefix="bench-recording-"))
    try:
        plain = run_scenario("relay", args.publishers, args.subscribers, seconds, 5)
        plain["mode"] = "forwarding only"
        recorded: dict[str, Any] = {}

        def disk(url: str) -> None:
            recorded["disk_bytes"] = sum(p.stat().st_size for p in directory.rglob("*") if p.is_file())
            recorded["stats"] = json.loads(urllib.request.urlopen(f"{url}/stats", timeout=10).read())

        with_recording = run_scenario("relay", args.publishers, args.subscribers, seconds, 5,
                                      server_args=["--record", str(directory)], finished=disk)
        with_recording["mode"] = "forwarding + recording"
        with_recording["disk_bytes"] = recorded.get("disk_bytes")
    finally:
        time.sleep(2)  # the stopped server's recording worker closes its last segments, then they go
        shutil.rmtree(directory, ignore_errors=True)
    results = [plain, with_recording]
    width = 26
    print(f"{'':32}" + "".join(r["mode"].rjust(width) for r in results))
    for key, label in COLUMNS:
        cells = ["-" if r.get(key) is None else str(r[key]) for r in results]
        print(f"{label:32}" + "".join(c.rjust(width) for c in cells))

    def ratio(key: str) -> str:
        a, b = with_recording.get(key), plain.get(key)
        return "-" if not a or not b else f"{a / b:.3f}x"

    print(f"\nwith / without recording: server CPU {ratio('server_cpu_percent')}, frames delivered {ratio('frames_delivered')}, "
          f"delay p99 {ratio('delay_p99_ms')}")
    print("\n" + json.dumps(results))


if __name__ == "__main__":
    main()
