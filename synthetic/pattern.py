"""Synthetic media sources: a moving, labelled test pattern and a quiet tone, paced in real time."""

from __future__ import annotations

import asyncio
import fractions
import math
import struct
import time
from datetime import datetime
from pathlib import Path

import av
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from PIL import Image, ImageDraw, ImageFont

FONT_ROOTS = (Path("/usr/share/fonts"), Path("/usr/local/share/fonts"))
# Preferred first: Noto Sans CJK carries Latin glyphs too, so one font can draw every label.
_CJK_FONT_NAMES = (
    "NotoSansCJK-Regular.ttc",
    "NotoSansCJKsc-Regular.otf",
    "NotoSansSC-Regular.otf",
    "NotoSansSC-Regular.ttf",
    "wqy-microhei.ttc",
    "wqy-zenhei.ttc",
    "NotoSerifCJK-Regular.ttc",
)
_LATIN_FONT_NAMES = ("DejaVuSans.ttf", "LiberationSans-Regular.ttf")

VIDEO_CLOCK_RATE = 90_000
VIDEO_TIME_BASE = fractions.Fraction(1, VIDEO_CLOCK_RATE)

# SMPTE-like bars: white, yellow, cyan, green, magenta, red, blue.
_BARS = ((192, 192, 192), (192, 192, 0), (0, 192, 192), (0, 192, 0), (192, 0, 192), (192, 0, 0), (0, 0, 192))


def find_font(names: tuple[str, ...], roots: tuple[Path, ...] = FONT_ROOTS) -> Path | None:
    """The first font file named in `names` (in order of preference) found under `roots`."""
    found: dict[str, Path] = {}
    for root in roots:
        if not root.is_dir():
            continue
        for path in root.rglob("*"):
            if path.name in names and path.name not in found:
                found[path.name] = path
    return next((found[name] for name in names if name in found), None)


def find_cjk_font(roots: tuple[Path, ...] = FONT_ROOTS) -> Path | None:
    """A font that can draw Chinese (Noto Sans CJK or WenQuanYi), or None."""
    return find_font(_CJK_FONT_NAMES, roots)


def load_font(path: Path | None, size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """Load `path` at `size`, choosing the Simplified Chinese face of a collection; Pillow's default if None."""
    if path is None:
        return ImageFont.load_default(size=size)
    if path.suffix.lower() != ".ttc":
        return ImageFont.truetype(str(path), size)
    # A CJK collection holds one face per region; the first is often Japanese, whose glyph shapes
    # differ from the Simplified Chinese ones our users read.
    first = ImageFont.truetype(str(path), size, index=0)
    for index in range(1, 10):
        try:
            face = ImageFont.truetype(str(path), size, index=index)
        except OSError:
            break
        family = face.getname()[0] or ""
        if family.endswith(" SC") or family.endswith(" CN"):
            return face
    return first


class TestPatternTrack(MediaStreamTrack):
    """A video track of colour bars, the site's names, a moving block and a running clock."""

    __test__ = False  # not a pytest test class despite its name
    kind = "video"

    def __init__(
        self,
        name_en: str,
        name_zh: str = "",
        *,
        width: int = 640,
        height: int = 360,
        fps: float = 15.0,
        cjk_font: Path | None = None,
        font_roots: tuple[Path, ...] = FONT_ROOTS,
    ) -> None:
        super().__init__()
        if width < 16 or height < 16 or width % 2 or height % 2:
            raise ValueError(f"size {width}x{height} must be even and at least 16x16")
        if not 0 < fps <= 60:
            raise ValueError(f"fps {fps} must be in (0, 60]")
        self.width = width
        self.height = height
        self.fps = fps
        self._frame_ticks = round(VIDEO_CLOCK_RATE / fps)
        self._start: float | None = None
        self._timestamp = 0
        font_path = cjk_font or find_cjk_font(font_roots)
        if font_path is None:
            # Without a CJK font the Chinese name would render as boxes: show English only.
            name_zh = ""
            font_path = find_font(_LATIN_FONT_NAMES, font_roots)
        self.has_chinese_label = bool(name_zh)
        self._label_font = load_font(font_path, max(10, height // 9))
        self._clock_font = load_font(font_path, max(9, height // 11))
        self._block = max(8, height // 6)
        self._band_top = height * 2 // 3  # the block moves in the lower band, below the labels
        self._background = self._render_background(name_en, name_zh)

    def _render_background(self, name_en: str, name_zh: str) -> Image.Image:
        image = Image.new("RGB", (self.width, self.height))
        draw = ImageDraw.Draw(image)
        bar_width = self.width / len(_BARS)
        for i, colour in enumerate(_BARS):
            draw.rectangle(
                (round(i * bar_width), 0, round((i + 1) * bar_width) - 1, self._band_top - 1), fill=colour
            )
        # A horizontal grey ramp in the lower band: motion of the block over it is easy to see.
        for x in range(self.width):
            level = 32 + x * 160 // self.width
            draw.line((x, self._band_top, x, self.height - 1), fill=(level, level, level))
        lines = [line for line in (name_zh, name_en) if line]
        margin = max(4, self.height // 40)
        y = self.height // 5  # below the badges a video tile lays over the picture's top edge
        for line in lines:
            left, top, right, bottom = draw.textbbox((0, 0), line, font=self._label_font)
            box = (margin, y, margin + right - left + 2 * margin, y + bottom - top + 2 * margin)
            draw.rectangle(box, fill=(0, 0, 0))
            draw.text((2 * margin - left, y + margin - top), line, font=self._label_font, fill=(255, 255, 255))
            y = round(box[3]) + margin
        return image

    def render(self, elapsed: float, wall_time: float | None = None) -> Image.Image:
        """The picture `elapsed` seconds after start, its clock showing local `wall_time` (default now)."""
        image = self._background.copy()
        draw = ImageDraw.Draw(image)
        # The block crosses the frame and back every 4 seconds.
        travel = self.width - self._block
        phase = (elapsed / 4.0) % 1.0
        x = round(travel * (2 * phase if phase < 0.5 else 2 - 2 * phase))
        y = self._band_top + (self.height - self._band_top - self._block) // 2
        hue = int(elapsed * 60) % 360
        draw.rectangle((x, y, x + self._block - 1, y + self._block - 1), fill=f"hsv({hue},100%,100%)")
        now = datetime.fromtimestamp(time.time() if wall_time is None else wall_time)
        clock = f"{now:%H:%M:%S}.{now.microsecond // 100_000}"
        left, top, right, bottom = draw.textbbox((0, 0), clock, font=self._clock_font)
        margin = max(4, self.height // 40)
        cx = self.width - (right - left) - 2 * margin
        cy = self._band_top - (bottom - top) - 3 * margin
        draw.rectangle((cx - margin, cy - margin, self.width - margin, cy + bottom - top + margin), fill=(0, 0, 0))
        draw.text((cx - left, cy - top), clock, font=self._clock_font, fill=(255, 255, 0))
        return image

    async def next_timestamp(self) -> tuple[int, fractions.Fraction]:
        """Wait until the next frame is due and return its pts and time base (90 kHz)."""
        if self.readyState != "live":
            raise MediaStreamError
        if self._start is None:
            self._start = time.monotonic()
            self._timestamp = 0
        else:
            self._timestamp += self._frame_ticks
            await asyncio.sleep(self._start + self._timestamp / VIDEO_CLOCK_RATE - time.monotonic())
        return self._timestamp, VIDEO_TIME_BASE

    async def recv(self) -> av.VideoFrame:
        """The next frame, paced at `fps`."""
        pts, time_base = await self.next_timestamp()
        image = self.render(pts / VIDEO_CLOCK_RATE)
        frame: av.VideoFrame = av.VideoFrame.from_image(image)  # type: ignore[no-untyped-call]
        frame.pts = pts
        frame.time_base = time_base
        return frame


class ToneTrack(MediaStreamTrack):
    """An audio track of a quiet 48 kHz mono sine tone, optionally beeping once a second."""

    kind = "audio"

    def __init__(
        self,
        *,
        frequency: float = 440.0,
        level_dbfs: float = -20.0,
        sample_rate: int = 48_000,
        ptime: float = 0.020,
        beep: bool = True,
        beep_seconds: float = 0.15,
    ) -> None:
        super().__init__()
        self.sample_rate = sample_rate
        self.samples_per_frame = round(sample_rate * ptime)
        self._start: float | None = None
        self._timestamp = 0
        amplitude = 32767 * 10 ** (level_dbfs / 20)
        beep_samples = round(beep_seconds * sample_rate)
        # One second of signal, computed once: an integer frequency completes whole cycles in it,
        # so looping it is seamless and each frame is just a slice.
        samples = [
            round(amplitude * math.sin(2 * math.pi * frequency * n / sample_rate))
            if not beep or n < beep_samples
            else 0
            for n in range(sample_rate)
        ]
        second = struct.pack(f"<{sample_rate}h", *samples)
        self._signal = second + second[: 2 * self.samples_per_frame]  # a frame may straddle the loop end

    def samples_at(self, sample_index: int) -> bytes:
        """The s16le bytes of the frame that starts at `sample_index`."""
        offset = 2 * (sample_index % self.sample_rate)
        return self._signal[offset : offset + 2 * self.samples_per_frame]

    async def recv(self) -> av.AudioFrame:
        """The next 20 ms frame, paced in real time."""
        if self.readyState != "live":
            raise MediaStreamError
        if self._start is None:
            self._start = time.monotonic()
            self._timestamp = 0
        else:
            self._timestamp += self.samples_per_frame
            await asyncio.sleep(self._start + self._timestamp / self.sample_rate - time.monotonic())
        frame = av.AudioFrame(format="s16", layout="mono", samples=self.samples_per_frame)
        frame.planes[0].update(self.samples_at(self._timestamp))
        frame.pts = self._timestamp
        frame.sample_rate = self.sample_rate
        frame.time_base = fractions.Fraction(1, self.sample_rate)
        return frame
