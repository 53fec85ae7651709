"""Dominant-speaker detection: follows the talker with the configured hysteresis, never flaps on a burst."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from server.control.speaker import DominantSpeaker, SpeakerSettings

LOUD, SILENT = 25, 127
PTIME = 20.0


def feed(detector: DominantSpeaker, start_ms: float, end_ms: float, level_of: Callable[[str, float], int],
         identities: tuple[str, ...] = ("a", "b")) -> Iterator[tuple[float, str]]:
    """Drive both publishers every 20 ms; yield (time, new speaker) at each change."""
    t = start_ms
    while t < end_ms:
        for identity in identities:
            changed = detector.add(identity, level_of(identity, t), t)
            if changed is not None:
                yield t, changed
        t += PTIME


def test_the_speaker_follows_alternating_talkers_after_the_hold_time() -> None:
    settings = SpeakerSettings(hold_ms=500, window_ms=1000, min_score=0.5)
    detector = DominantSpeaker(settings)

    def level(identity: str, t: float) -> int:
        talker = "a" if (t // 4000) % 2 == 0 else "b"  # a for 4 s, then b for 4 s, and so on
        return LOUD if identity == talker else SILENT

    changes = list(feed(detector, 0, 16_000, level))
    assert [who for _, who in changes] == ["a", "b", "a", "b"]
    for (at, _), turn in zip(changes, (0, 4000, 8000, 12000), strict=True):
        delay = at - turn
        # a newcomer needs min_score of the window to qualify, then must lead for hold_ms
        assert settings.hold_ms <= delay <= settings.hold_ms + settings.window_ms + 100, delay


def test_a_100_ms_burst_never_takes_the_floor() -> None:
    detector = DominantSpeaker(SpeakerSettings())

    def level(identity: str, t: float) -> int:
        if identity == "a":
            return LOUD
        return LOUD if int(t) % 1500 < 100 else SILENT  # b coughs for 100 ms every 1.5 s

    changes = list(feed(detector, 0, 20_000, level))
    assert [who for _, who in changes] == ["a"]


def test_bursts_during_silence_do_not_take_the_floor_from_the_last_speaker() -> None:
    detector = DominantSpeaker(SpeakerSettings())

    def level(identity: str, t: float) -> int:
        if identity == "a":
            return LOUD if t < 3000 else SILENT
        return LOUD if 5000 <= t < 5100 or 7000 <= t < 7100 else SILENT

    changes = list(feed(detector, 0, 10_000, level))
    assert [who for _, who in changes] == ["a"]
    assert detector.current == "a"


def test_two_talkers_at_once_do_not_flap() -> None:
    detector = DominantSpeaker(SpeakerSettings())

    def level(identity: str, t: float) -> int:
        if identity == "a":
            return LOUD
        return LOUD if t >= 3000 and int(t) % 200 < 180 else SILENT  # b joins in, almost as steady

    changes = list(feed(detector, 0, 12_000, level))
    assert [who for _, who in changes] == ["a"]


def test_a_silent_room_has_no_speaker() -> None:
    detector = DominantSpeaker()
    assert list(feed(detector, 0, 5000, lambda identity, t: SILENT)) == []
    assert detector.current is None


def test_a_shorter_hold_switches_sooner() -> None:
    fast = DominantSpeaker(SpeakerSettings(hold_ms=100, min_score=0.2))
    slow = DominantSpeaker(SpeakerSettings(hold_ms=1500, min_score=0.2))

    def level(identity: str, t: float) -> int:
        return LOUD if (identity == "a") == (t < 3000) else SILENT

    fast_changes = list(feed(fast, 0, 8000, level))
    slow_changes = list(feed(slow, 0, 8000, level))
    assert [w for _, w in fast_changes] == [w for _, w in slow_changes] == ["a", "b"]
    assert fast_changes[1][0] + 1000 < slow_changes[1][0]
