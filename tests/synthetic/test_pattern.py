"""The synthetic sources make real, moving pictures and an audible tone of the right shape."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
from PIL import Image, ImageChops, ImageStat

from synthetic.pattern import TestPatternTrack, ToneTrack, find_cjk_font


def _is_uniform(image: Image.Image) -> bool:
    return max(ImageStat.Stat(image).var) == 0


async def test_a_video_frame_has_the_requested_size_and_is_not_uniform() -> None:
    track = TestPatternTrack("Dongcheng County", "东城县", width=320, height=180, fps=10)
    frame = await track.recv()
    assert isinstance(frame, av.VideoFrame)
    assert (frame.width, frame.height) == (320, 180)
    assert not _is_uniform(frame.to_image())  # type: ignore[no-untyped-call]
    track.stop()


async def test_frames_are_timestamped_at_the_chosen_rate() -> None:
    track = TestPatternTrack("Site", width=64, height=36, fps=10)
    first = await track.recv()
    second = await track.recv()
    assert first.pts == 0
    assert second.pts == 9000  # 90 kHz clock / 10 fps
    assert first.time_base == second.time_base == Fraction(1, 90_000)
    track.stop()


def test_the_picture_moves_between_two_times() -> None:
    track = TestPatternTrack("Mobile Platform 1", "移动平台一", width=320, height=180)
    early = track.render(0.5, wall_time=0.0)
    later = track.render(1.5, wall_time=0.0)  # same clock text: only the moving block differs
    difference = ImageChops.difference(early, later)
    assert difference.getbbox() is not None
    assert sum(ImageStat.Stat(difference).sum) > 0


def test_the_clock_changes_the_picture() -> None:
    track = TestPatternTrack("Site", width=320, height=180)
    assert ImageChops.difference(track.render(0.0, wall_time=0.0), track.render(0.0, wall_time=1.0)).getbbox()


def test_the_chinese_label_is_drawn_only_when_a_cjk_font_exists(tmp_path: Path) -> None:
    without_fonts = TestPatternTrack("Fire 119", "消防119", width=160, height=90, font_roots=(tmp_path,))
    assert not without_fonts.has_chinese_label
    assert not _is_uniform(without_fonts.render(0.0))
    if find_cjk_font() is not None:
        assert TestPatternTrack("Fire 119", "消防119", width=160, height=90).has_chinese_label


async def test_a_tone_frame_is_20_ms_of_non_silent_48_khz_mono() -> None:
    track = ToneTrack()
    frame = await track.recv()
    assert isinstance(frame, av.AudioFrame)
    assert frame.samples == 960
    assert frame.sample_rate == 48_000
    assert frame.layout.name == "mono"
    assert frame.format.name == "s16"
    samples = memoryview(bytes(frame.planes[0])[: 2 * frame.samples]).cast("h")
    assert len(samples) == 960
    assert any(samples)
    # -20 dBFS: loud enough to hear, far from clipping.
    assert 2500 < max(abs(s) for s in samples) < 4000
    second = await track.recv()
    assert second.pts == 960
    track.stop()


def test_the_beep_is_silent_between_beeps() -> None:
    track = ToneTrack(beep=True, beep_seconds=0.15)
    assert any(memoryview(track.samples_at(0)).cast("h"))
    assert not any(memoryview(track.samples_at(24_000)).cast("h"))
    assert any(memoryview(track.samples_at(48_000)).cast("h"))
