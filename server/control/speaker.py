"""Dominant-speaker detection from RFC 6464 audio levels, with hysteresis; pure and clock-free.

Feed it `(identity, level, at_ms)` samples (level in -dBov, 0 = loudest, 127 = silence). Each
identity's score is the share of the last `window_ms` during which it was louder than the
threshold. A challenger takes over only when it has led the current speaker by `margin` for
`hold_ms` without a break, and only with a score of at least `min_score`: a 100 ms burst scores
at most 0.1 over a one-second window and can never take the floor.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field


@dataclass(frozen=True)
class SpeakerSettings:
    """The detector's tuning; the defaults switch about one second after someone starts talking."""

    threshold_dbov: int = 50
    window_ms: float = 1000.0
    min_score: float = 0.5
    margin: float = 0.1
    hold_ms: float = 500.0
    eval_interval_ms: float = 100.0
    max_gap_ms: float = 60.0
    first_sample_ms: float = 20.0


@dataclass
class _Activity:
    """One identity's recent voice activity: (time, credited ms) of each loud sample in the window."""

    loud: deque[tuple[float, float]] = field(default_factory=deque)
    loud_ms: float = 0.0
    last_at: float | None = None

    def add(self, at_ms: float, is_loud: bool, settings: SpeakerSettings) -> None:
        gap = settings.first_sample_ms if self.last_at is None else min(max(at_ms - self.last_at, 0.0), settings.max_gap_ms)
        self.last_at = at_ms
        if is_loud:
            self.loud.append((at_ms, gap))
            self.loud_ms += gap

    def evict(self, before_ms: float) -> None:
        while self.loud and self.loud[0][0] < before_ms:
            self.loud_ms -= self.loud.popleft()[1]
        if not self.loud:
            self.loud_ms = 0.0  # no float drift once empty


class DominantSpeaker:
    """Picks the room's dominant speaker from audio-level samples; `current` changes only with hysteresis."""

    def __init__(self, settings: SpeakerSettings | None = None) -> None:
        self.settings = settings or SpeakerSettings()
        self.current: str | None = None
        self._activity: dict[str, _Activity] = {}
        self._challenger: str | None = None
        self._challenger_since = 0.0
        self._last_eval: float | None = None

    def add(self, identity: str, level: int, at_ms: float) -> str | None:
        """Record one sample; returns the new speaker when this sample made the speaker change."""
        activity = self._activity.get(identity)
        if activity is None:
            activity = self._activity[identity] = _Activity()
        activity.add(at_ms, level <= self.settings.threshold_dbov, self.settings)
        if self._last_eval is None or at_ms - self._last_eval >= self.settings.eval_interval_ms:
            return self.evaluate(at_ms)
        return None

    def remove(self, identity: str) -> None:
        """Forget an identity (it left or was muted); it stays the current speaker until someone else leads."""
        self._activity.pop(identity, None)
        if self._challenger == identity:
            self._challenger = None

    def score(self, identity: str, now_ms: float) -> float:
        """Share of the last window during which `identity` was talking (0..1)."""
        activity = self._activity.get(identity)
        if activity is None:
            return 0.0
        activity.evict(now_ms - self.settings.window_ms)
        return min(1.0, activity.loud_ms / self.settings.window_ms)

    def evaluate(self, now_ms: float) -> str | None:
        """Re-decide at `now_ms`; returns the new speaker if it changed, else None."""
        self._last_eval = now_ms
        s = self.settings
        scores = {identity: self.score(identity, now_ms) for identity in self._activity}
        leader = max((i for i in scores if scores[i] >= s.min_score), key=lambda i: scores[i], default=None)
        if leader is None or leader == self.current:
            self._challenger = None
            return None
        if self.current is not None and scores[leader] < scores.get(self.current, 0.0) + s.margin:
            self._challenger = None
            return None
        if self._challenger != leader:
            self._challenger, self._challenger_since = leader, now_ms
        if now_ms - self._challenger_since < s.hold_ms:
            return None
        self.current, self._challenger = leader, None
        return leader
