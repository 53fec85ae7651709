"""What one subscriber's link carries, and which layer of each subscription fits in it.

Pure and I/O-free: the subscriber connection feeds the estimate (REMB from the subscriber's
receiver) and what each subscription wants; `BandwidthAllocator.allocate` answers the layer each
one gets, or None for a video paused for bandwidth.

The estimate limits a subscriber from its first fall (a receiver's estimate starts low and rises
only a little past what arrives: a low estimate that never fell says nothing of the link) until
everything wanted fits again. The order of stepping down (a ladder, one rung per step): tiles to their lowest layer, least
important first; then the spotlight (the most important video) to its lowest; then tiles
paused, least important first. The spotlight is never paused: a receiver's estimate follows what
arrives, and with nothing arriving it could only fall (measured: every video paused, the estimate
at 31 kbit/s behind a 1 Mbit/s link). Audio is never dropped. Down is at once;
up only after the estimate has stayed above a higher rung's need for `UP_HOLD` seconds, to the
highest rung that fitted all that time; and since a receiver's estimate grows only a little
past what arrives, a rung that has fitted for `PROBE_HOLD` seconds tries the one above (a probe)
and keeps it if the estimate rises to carry it, or steps back down (waiting longer next time)
if the estimate falls or stays short.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

UP_HOLD = 3.0
# The share of the estimate media may use: the rest for RTCP, retransmissions and estimate noise.
HEADROOM = 0.9
# A rung that has fitted this long tries the one above (a probe) for PROBE_TIME; a probe the
# link could not carry doubles the wait before the next (up to PROBE_HOLD_MAX).
PROBE_HOLD = 6.0
PROBE_HOLD_MAX = 48.0
PROBE_TIME = 3.0
# An estimate falling below this share of the one a probe started from: the probe congests the link.
PROBE_CONGESTED = 0.95
# An estimate below this share of the highest since it last fell: the link is congested.
FALLEN = 0.9
# An estimate older than this is forgotten (the subscriber stopped sending feedback).
ESTIMATE_AGE = 10.0


@dataclass(frozen=True)
class Want:
    """What one subscription wants: its layer (from the tile size) and what each layer costs."""

    key: str
    kind: str  # "audio" or "video"
    importance: int  # the tile's area in device pixels: the spotlight is the largest
    wanted: int  # the layer the tile wants (0 for a single-layer publication)
    rates: tuple[float, ...]  # bits/s of each layer, lowest first


Grant = Mapping[str, "int | None"]  # key -> layer, None: paused for bandwidth


def ladder(wants: Sequence[Want]) -> list[dict[str, int | None]]:
    """Every step down from everything as wanted to every tile paused, in order."""
    videos = sorted((w for w in wants if w.kind == "video"), key=lambda w: (w.importance, w.key))
    step: dict[str, int | None] = {w.key: w.wanted for w in wants}
    steps = [dict(step)]
    spotlight = videos[-1:] if videos else []
    tiles = videos[:-1]
    for group in (tiles, spotlight):
        for want in group:  # least important first, one layer at a time
            while (layer := step[want.key]) is not None and layer > 0:
                step[want.key] = layer - 1
                steps.append(dict(step))
    for want in tiles:  # the spotlight stays at its lowest layer whatever the estimate says
        step[want.key] = None
        steps.append(dict(step))
    return steps


def need(step: Mapping[str, int | None], wants: Sequence[Want]) -> float:
    """Bits/s a step sends."""
    total = 0.0
    for want in wants:
        layer = step.get(want.key)
        if layer is not None and want.rates:
            total += want.rates[min(layer, len(want.rates) - 1)]
    return total


class BandwidthAllocator:
    """One subscriber's estimate and its current rung on the ladder, with hysteresis going up."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self.estimate: float | None = None  # bits/s the link carries, from the subscriber's feedback
        self._estimate_at = 0.0
        self.sent_rate = 0.0  # bits/s actually sent, beside it
        self._rung = 0
        self._above_since: float | None = None
        self._up_to = 0
        self._fit_since: float | None = None  # the current rung fits, and has since then
        self._probe_until: float | None = None
        self._probe_estimate = 0.0
        self._probe_hold = PROBE_HOLD
        self._limited = False
        self._peak = 0.0
        self.steps_down = 0
        self.steps_up = 0
        self.probes = 0

    def on_estimate(self, bits_per_second: float) -> None:
        """The subscriber's latest feedback (REMB)."""
        self.estimate = float(bits_per_second)
        self._estimate_at = self._clock()

    def allocate(self, wants: Sequence[Want]) -> dict[str, int | None]:
        """The layer each subscription gets now (None: paused for bandwidth)."""
        steps = ladder(wants)
        now = self._clock()
        if self.estimate is None or now - self._estimate_at > ESTIMATE_AGE:
            self._rung, self._above_since, self._probe_until = 0, None, None
            return steps[0]
        if not self._congested():
            self._rung, self._above_since, self._probe_until = 0, None, None
            return steps[0]
        budget = self.estimate * HEADROOM
        self._rung = min(self._rung, len(steps) - 1)
        fits = next((i for i, step in enumerate(steps) if need(step, wants) <= budget), len(steps) - 1)
        if self._probe_until is not None and not self._probing(now, fits):
            return steps[self._rung]
        if fits > self._rung:
            self._rung, self._above_since, self._fit_since = fits, None, None
            self.steps_down += 1
        elif fits < self._rung:
            self._fit_since = None
            # Up to the highest rung that fitted all through the hold, not to a passing peak.
            if self._above_since is None:
                self._above_since, self._up_to = now, fits
            self._up_to = max(self._up_to, fits)
            if now - self._above_since >= UP_HOLD:
                self._rung = self._up_to
                self._above_since = None
                self.steps_up += 1
        else:
            self._above_since = None
            self._probe_when_settled(now)
        if self._rung == 0:
            self._limited = False  # everything wanted fits again
        return steps[self._rung]

    def _congested(self) -> bool:
        """Whether the estimate limits this subscriber: from the first fall of the estimate until
        everything wanted fits again. A receiver's estimate starts low and rises only a little
        past what arrives (Chromium's first REMB here: 168 kbit/s for a link that carries far
        more), so a low estimate that has never fallen is no sign of a thin link."""
        estimate = self.estimate or 0.0
        if estimate < self._peak * FALLEN:
            self._limited = True
            self._peak = estimate
        else:
            self._peak = max(self._peak, estimate)
        return self._limited

    def _probe_when_settled(self, now: float) -> None:
        # A receiver's estimate grows only a little past what arrives (libwebrtc's: 1.5 times at
        # most), so the rung above may never seem to fit: after a settled while, try it.
        if self._rung == 0:
            return
        if self._fit_since is None:
            self._fit_since = now
        elif now - self._fit_since >= self._probe_hold:
            self._rung -= 1
            self._probe_until, self._probe_estimate, self._fit_since = now + PROBE_TIME, self.estimate or 0.0, None
            self.probes += 1

    def _probing(self, now: float, fits: int) -> bool:
        """False while a probe runs undisturbed (keep its rung); True once it is decided."""
        assert self._probe_until is not None
        congested = (self.estimate or 0.0) < self._probe_estimate * PROBE_CONGESTED
        if not congested and fits > self._rung and now < self._probe_until:
            return False
        self._probe_until = None
        if fits > self._rung:  # the link could not carry it: back down, and wait longer next time
            self._probe_hold = min(self._probe_hold * 2, PROBE_HOLD_MAX)
        else:
            self._probe_hold = PROBE_HOLD
            self.steps_up += 1
        return True
