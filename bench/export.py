"""What a composite export costs: a 2-track session (two 640x360 VP8 cameras at 30 fps, the second
joining 5 s late, one Opus microphone), its segments written as the recorder writes them, exported by
the export worker process exactly as the server runs it (`python -m media.composite_worker`, niced).

Figures, against baselines measured in the same run: the export's wall-clock seconds per second of
session (against the session's own length: below 1 is faster than real time), and against decoding
the same segments alone (what the grid, the names, the mix and the H.264 encode add).

    .venv/bin/python -m bench.export                 # a 60 s session
    .venv/bin/python -m bench.export --seconds 20    # quicker
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np

WIDTH, HEIGHT, FPS, RATE = 640, 360, 30, 48000
SEGMENT = 30.0  # seconds per segment file, as a recorder cuts them


def _camera(path: Path, seconds: float, shift: int) -> None:
    """A moving pattern (so the encoder has work), VP8 in WebM."""
    ys, xs = np.mgrid[0:HEIGHT, 0:WIDTH]
    with av.open(str(path), "w", format="webm") as out:
        stream = out.add_stream("libvpx", rate=FPS, options={"deadline": "realtime", "cpu-used": "8", "b": "1M"})
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        for n in range(int(seconds * FPS)):
            level = ((xs + ys + 4 * n + shift) % 256).astype(np.uint8)
            rgb = np.stack([level, 255 - level, (xs * 255 // WIDTH).astype(np.uint8)], axis=-1)
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts, frame.time_base = n, Fraction(1, FPS)
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))


def _microphone(path: Path, seconds: float) -> None:
    """A tone, Opus in WebM."""
    with av.open(str(path), "w", format="webm") as out:
        stream = out.add_stream("libopus", rate=RATE, layout="stereo")
        for n in range(int(seconds * 50)):
            tone = (np.sin(2 * np.pi * 440 * np.arange(n * 960, (n + 1) * 960) / RATE) * 6000).astype(np.int16)
            frame = av.AudioFrame.from_ndarray(np.repeat(tone, 2).reshape(1, -1), format="s16", layout="stereo")
            frame.sample_rate, frame.pts, frame.time_base = RATE, n * 960, Fraction(1, RATE)
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))


def _track(directory: Path, start: float, seconds: float, write: Any) -> list[dict[str, Any]]:
    directory.mkdir(parents=True)
    parts, at, index = [], start, 0
    while at < start + seconds - 0.01:
        length = min(SEGMENT, start + seconds - at)
        path = directory / f"{index:04d}.webm"
        write(path, length)
        parts.append({"path": str(path), "start": at, "end": at + length})
        at, index = at + length, index + 1
    return parts


def session(root: Path, seconds: float) -> dict[str, Any]:
    """Write the session's segments; the export worker's job for it."""
    start = 1_700_000_000.0
    one = _track(root / "one", start, seconds, lambda p, s: _camera(p, s, 0))
    two = _track(root / "two", start + 5, seconds - 5, lambda p, s: _camera(p, s, 128))
    mic = _track(root / "mic", start, seconds, _microphone)
    return {"start": start, "end": start + seconds, "out": str(root / "composite.mp4"), "audio": [mic],
            "tiles": [{"label": "江北区 Jiangbei", "parts": one}, {"label": "江南区 Jiangnan", "parts": two}]}


def decode_only(job: dict[str, Any]) -> float:
    """Seconds to decode every segment of the job, nothing else (the baseline)."""
    began = time.perf_counter()
    for part in [p for t in job["tiles"] for p in t["parts"]] + [p for a in job["audio"] for p in a]:
        with av.open(part["path"]) as container:
            for _ in container.decode(container.streams[0]):
                pass
    return time.perf_counter() - began


def export(job: dict[str, Any]) -> tuple[float, float]:
    """Wall-clock and CPU seconds of the export worker process on the job."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    began = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "media.composite_worker"], input=json.dumps(job).encode(),
                          capture_output=True, check=True)
    wall = time.perf_counter() - began
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    assert b'"done": true' in done.stdout, done.stdout[-500:]
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    """Write a session, export it, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="the session's length")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-export-") as tmp:
        job = session(Path(tmp), args.seconds)
        decode = decode_only(job)
        wall, cpu = export(job)
        with av.open(job["out"]) as container:
            stream = container.streams.video[0]
            shape = f"{stream.width}x{stream.height}, {container.duration / 1e6:.2f} s"
    print(f"session: 2 video tracks 640x360 30 fps VP8 (the second 5 s late) + 1 Opus, {args.seconds:.0f} s; output {shape}")
    print(f"decode alone (baseline):  {decode:6.2f} s  = {decode / args.seconds:.3f} s per session-second")
    print(f"export (worker process):  {wall:6.2f} s  = {wall / args.seconds:.3f} s per session-second (CPU {cpu:.2f} s)")
    print(f"export / decode alone:    x{wall / decode:.2f}")


if __name__ == "__main__":
    main()
