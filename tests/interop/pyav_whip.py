"""Publish a test pattern and a tone over WHIP with PyAV's own muxer (FFmpeg 8.1 on GnuTLS, in the av wheel).

    python -m tests.interop.pyav_whip URL TOKEN SECONDS [--cert-file CERT --key-file KEY]

Paced in real time, as `ffmpeg -re` would be. Without a certificate the muxer makes its own on
P-224, which the relay's OpenSSL refuses; with a P-256 `cert_file`/`key_file` it connects.
Exits 0 after SECONDS of media (or on SIGTERM, after closing the session with DELETE), non-zero
(with FFmpeg's error) when the muxer fails.
"""

from __future__ import annotations

import argparse
import fractions
import signal
import sys
import threading
import time

import av
import numpy as np

FPS = 30
SAMPLE_RATE = 48000
AUDIO_FRAME = 960  # 20 ms: Opus's frame


def publish(url: str, token: str, seconds: float, cert_file: str | None, key_file: str | None) -> None:
    """Encode and send until `seconds` of media have gone out."""
    options = {"authorization": token}
    if cert_file and key_file:
        options |= {"cert_file": cert_file, "key_file": key_file}
    pattern = av.open(f"testsrc2=size=640x360:rate={FPS}", format="lavfi")
    output = av.open(url, mode="w", format="whip", options=options)
    video = output.add_stream("libx264", rate=FPS, options={"profile": "baseline", "tune": "zerolatency", "preset": "veryfast", "g": "60", "bf": "0"})
    video.width, video.height, video.pix_fmt = 640, 360, "yuv420p"
    video.bit_rate = 800_000
    audio = output.add_stream("libopus", rate=SAMPLE_RATE, layout="stereo")  # the muxer takes stereo Opus only
    audio.bit_rate = 48_000
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())  # end cleanly: the muxer's close sends DELETE
    started = time.monotonic()
    frames = pattern.decode(video=0)
    samples = 0
    for index, frame in enumerate(frames):
        at = index / FPS
        if at >= seconds or stop.is_set():
            break
        frame.pts, frame.time_base = index, fractions.Fraction(1, FPS)
        output.mux(video.encode(frame))
        while samples / SAMPLE_RATE <= at:
            output.mux(audio.encode(tone(samples)))
            samples += AUDIO_FRAME
        wait = started + at - time.monotonic()
        if wait > 0:
            time.sleep(wait)  # real-time pacing, as `-re`
    output.mux(video.encode(None))
    output.close()
    pattern.close()


def tone(start: int) -> av.AudioFrame:
    """20 ms of a 440 Hz tone from sample `start`."""
    t = (np.arange(AUDIO_FRAME) + start) / SAMPLE_RATE
    mono = (np.sin(2 * np.pi * 440 * t) * 8000).astype(np.int16)
    frame = av.AudioFrame.from_ndarray(np.repeat(mono, 2).reshape(1, -1), format="s16", layout="stereo")
    frame.sample_rate, frame.pts, frame.time_base = SAMPLE_RATE, start, fractions.Fraction(1, SAMPLE_RATE)
    return frame


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("token")
    parser.add_argument("seconds", type=float)
    parser.add_argument("--cert-file")
    parser.add_argument("--key-file")
    args = parser.parse_args(argv)
    try:
        publish(args.url, args.token, args.seconds, args.cert_file, args.key_file)
    except av.FFmpegError as exc:
        print(f"whip failed: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
