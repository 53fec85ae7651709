"""A recorded session as ONE video: every video track a tile of a grid, its site's name burned in, the
tracks placed on the session's clock (a tile is black, "未接入 not connected", until its track starts),
the audio tracks mixed into one, encoded H.264 + AAC into MP4. PyAV decodes the segments and encodes
the result; Pillow draws the names (with a CJK font, so Chinese renders).

CPU-heavy: run it in the export worker process (media/composite_worker.py), never on the relay's loop.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Final

import av
import numpy as np
from PIL import Image, ImageDraw, ImageFont

TILE_W: Final[int] = 640
TILE_H: Final[int] = 360
FPS: Final[int] = 15
RATE: Final[int] = 48000
BORDER: Final[int] = 2
EDGE: Final[int] = 70  # the grey of the lines between tiles
# (file, face): Noto's collection holds JP, KR, SC, TC, HK in that order (scripts/ensure-fonts.sh).
FONTS: Final[tuple[tuple[str, int], ...]] = (
    ("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc", 2),
    ("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc", 0),
    ("/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc", 0),
)

Progress = Callable[[float], None]


@dataclass(frozen=True)
class Part:
    """One whole segment file and where it lies on the session's clock (wall-clock seconds)."""

    path: str
    start: float
    end: float


@dataclass(frozen=True)
class Tile:
    """One video track of the grid."""

    label: str
    parts: list[Part]


@dataclass(frozen=True)
class Job:
    """What to export: the session's span, the tiles, the audio tracks, the output file."""

    start: float
    end: float
    tiles: list[Tile]
    out: str
    audio: list[list[Part]] = field(default_factory=list)
    threads: int = 1


def grid(count: int) -> tuple[int, int]:
    """Columns and rows for `count` tiles: 1x1, 2x1, 2x2, 3x2, 3x3, ..."""
    cols = max(1, math.ceil(math.sqrt(count)))
    return cols, max(1, math.ceil(count / cols))


def font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """A font that draws Chinese, else Pillow's own (which does not)."""
    for path, face in FONTS:
        if Path(path).is_file():
            return ImageFont.truetype(path, size, index=face)
    return ImageFont.load_default()


def _caption(text: str) -> tuple[np.ndarray, np.ndarray]:
    """The label as RGB pixels and an alpha mask (0..256): white text on a dark band."""
    face = font(24)
    probe = ImageDraw.Draw(Image.new("L", (1, 1)))
    left, top, right, bottom = probe.textbbox((0, 0), text, font=face)
    width, height = int(min(TILE_W, right - left + 20)), int(bottom - top + 14)
    band = Image.new("RGBA", (width, height), (0, 0, 0, 170))
    ImageDraw.Draw(band).text((10 - left, 7 - top), text, font=face, fill=(255, 255, 255, 255))
    pixels = np.asarray(band)
    return pixels[:, :, :3].astype(np.uint16), pixels[:, :, 3:].astype(np.uint16)


def _placard(text: str) -> np.ndarray:
    """A black tile with a line in its middle ("未接入 Not connected")."""
    image = Image.new("RGB", (TILE_W, TILE_H), (0, 0, 0))
    draw = ImageDraw.Draw(image)
    face = font(28)
    left, top, right, bottom = draw.textbbox((0, 0), text, font=face)
    draw.text(((TILE_W - right + left) / 2 - left, (TILE_H - bottom + top) / 2 - top), text, font=face, fill=(150, 150, 150))
    return np.asarray(image).copy()


def _fit(frame: av.VideoFrame) -> np.ndarray:
    """A decoded picture scaled into a tile, its aspect kept, black around it."""
    scale = min(TILE_W / frame.width, TILE_H / frame.height)
    width, height = max(2, int(frame.width * scale) // 2 * 2), max(2, int(frame.height * scale) // 2 * 2)
    pixels = frame.reformat(width=width, height=height, format="rgb24").to_ndarray()
    if (width, height) == (TILE_W, TILE_H):
        return pixels
    tile = np.zeros((TILE_H, TILE_W, 3), np.uint8)
    x, y = (TILE_W - width) // 2, (TILE_H - height) // 2
    tile[y:y + height, x:x + width] = pixels
    return tile


def _frames(part: Part) -> Iterator[tuple[float, av.VideoFrame]]:
    """The pictures of one segment with their wall-clock times (a damaged file ends early)."""
    try:
        with av.open(part.path) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            for frame in container.decode(stream):
                if frame.pts is not None and frame.time_base is not None:
                    yield part.start + float(frame.pts * frame.time_base), frame
    except av.error.FFmpegError:
        return


class VideoLane:
    """One tile: the picture of its track at any time of the session, asked in increasing time."""

    def __init__(self, tile: Tile) -> None:
        self.parts = sorted(tile.parts, key=lambda p: p.start)
        self.index = 0
        self.frames: Iterator[tuple[float, av.VideoFrame]] | None = None
        self.shown: np.ndarray | None = None
        self.ahead: tuple[float, av.VideoFrame] | None = None
        self.waiting = _placard("未接入 Not connected")
        self.gone = _placard("无画面 No picture")

    def at(self, t: float) -> np.ndarray:
        """The tile's pixels at wall-clock time `t` (never earlier than the last asked)."""
        while self.index < len(self.parts) and self.parts[self.index].end < t:
            self.index += 1
            self.frames, self.shown, self.ahead = None, None, None
        if self.index >= len(self.parts):
            return self.gone
        part = self.parts[self.index]
        if t < part.start:
            return self.waiting if self.index == 0 else self.gone
        if self.frames is None:
            self.frames = _frames(part)
            self.ahead = next(self.frames, None)
        latest: av.VideoFrame | None = None
        while self.ahead is not None and self.ahead[0] <= t:
            latest = self.ahead[1]
            self.ahead = next(self.frames, None)
        if latest is not None:
            self.shown = _fit(latest)  # only the picture shown is scaled, not those skipped
        return self.shown if self.shown is not None else self.waiting


def _chunks(parts: list[Part], start: float) -> Iterator[tuple[int, np.ndarray]]:
    """An audio track's samples (48 kHz stereo s16, shape (n, 2)) and the session sample each starts at."""
    for part in sorted(parts, key=lambda p: p.start):
        resampler = av.AudioResampler(format="s16", layout="stereo", rate=RATE)
        try:
            with av.open(part.path) as container:
                first: int | None = None
                for frame in container.decode(audio=0):
                    if frame.pts is None or frame.time_base is None:
                        continue
                    if first is None:
                        first = round((part.start + float(frame.pts * frame.time_base) - start) * RATE)
                        written = first
                    for out in resampler.resample(frame):
                        samples = out.to_ndarray().reshape(-1, 2)
                        yield written, samples
                        written += len(samples)
        except av.error.FFmpegError:
            continue


class AudioLane:
    """One audio track, read forward in windows of session samples."""

    def __init__(self, parts: list[Part], start: float) -> None:
        self.chunks = _chunks(parts, start)
        self.held: tuple[int, np.ndarray] | None = None

    def add_into(self, mix: np.ndarray, a: int) -> None:
        """Add this track's samples of [a, a + len(mix)) into `mix` (silence where it has none)."""
        b = a + len(mix)
        while True:
            if self.held is None:
                self.held = next(self.chunks, None)
                if self.held is None:
                    return
            pos, data = self.held
            end = pos + len(data)
            if end > a and pos < b:
                lo, hi = max(pos, a), min(end, b)
                mix[lo - a:hi - a] += data[lo - pos:hi - pos]
            if end > b:
                return
            self.held = None


def export(job: Job, progress: Progress = lambda _: None) -> None:
    """Write the composite of `job` to `job.out` (MP4: H.264 and, when there is audio, AAC)."""
    cols, rows = grid(len(job.tiles))
    lanes = [VideoLane(t) for t in job.tiles]
    captions = [_caption(t.label) for t in job.tiles]
    voices = [AudioLane(parts, job.start) for parts in job.audio if parts]
    frames = max(1, round((job.end - job.start) * FPS))
    canvas = np.zeros((rows * TILE_H, cols * TILE_W, 3), np.uint8)
    with av.open(job.out, "w", format="mp4") as container:
        video = container.add_stream("libx264", rate=FPS, options={"preset": "veryfast", "crf": "26"})
        video.width, video.height, video.pix_fmt = cols * TILE_W, rows * TILE_H, "yuv420p"
        video.codec_context.thread_count = job.threads
        sound = container.add_stream("aac", rate=RATE, layout="stereo") if voices else None
        reported = -1
        for n in range(frames):
            t = job.start + n / FPS
            for i, (lane, (text, alpha)) in enumerate(zip(lanes, captions, strict=True)):
                x, y = (i % cols) * TILE_W, (i // cols) * TILE_H
                canvas[y:y + TILE_H, x:x + TILE_W] = lane.at(t)
                canvas[y:y + TILE_H, x:x + BORDER] = canvas[y:y + BORDER, x:x + TILE_W] = EDGE  # tiles told apart
                h, w = text.shape[:2]
                area = canvas[y + TILE_H - h:y + TILE_H, x:x + w]
                area[:] = ((area * (256 - alpha) + text * alpha) >> 8).astype(np.uint8)
            picture = av.VideoFrame.from_ndarray(canvas, format="rgb24")
            picture.pts, picture.time_base = n, Fraction(1, FPS)
            container.mux(video.encode(picture))
            if sound is not None:
                _mix(container, sound, voices, n * RATE // FPS, (n + 1) * RATE // FPS)
            done = int(100 * (n + 1) / frames)
            if done != reported:
                reported = done
                progress(100.0 * (n + 1) / frames)
        container.mux(video.encode(None))
        if sound is not None:
            container.mux(sound.encode(None))


def _mix(container: av.container.OutputContainer, sound: av.AudioStream, voices: list[AudioLane], a: int, b: int) -> None:
    mix = np.zeros((b - a, 2), np.int32)
    for voice in voices:
        voice.add_into(mix, a)
    samples = np.clip(mix, -32768, 32767).astype(np.int16).reshape(1, -1)
    frame = av.AudioFrame.from_ndarray(samples, format="s16", layout="stereo")
    frame.sample_rate, frame.pts, frame.time_base = RATE, a, Fraction(1, RATE)
    container.mux(sound.encode(frame))
