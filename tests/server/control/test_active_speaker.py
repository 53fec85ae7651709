"""Active speaker end to end: two synthetic sites take turns talking; the server follows without flapping.

aiortc's audio sender writes the RFC 6464 audio-level extension from each frame's computed level,
so a loud tone against silence is what a real talker against a quiet room looks like on the wire.
The server reads the extension only; it never decodes.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import av

from server.control.speaker import SpeakerSettings
from signaling.control import ActiveSpeaker
from synthetic.pattern import ToneTrack
from tests.server.conftest import Platform
from tests.server.control.conftest import CHAIR_GRANTS, Join, until

TURN = 3.0  # seconds each site talks
BURST = 0.1  # the other site's cough during a turn


@dataclass
class Script:
    """Who talks when: a talks, then b, then a; each coughs for 100 ms in the middle of the other's turn."""

    start: float | None = None
    turns: tuple[str, ...] = ("a", "b", "a")
    times: list[float] = field(default_factory=list)

    def loud(self, who: str, now: float) -> bool:
        """Whether `who` is loud at monotonic time `now`."""
        if self.start is None:
            return False
        t = now - self.start
        turn = int(t // TURN)
        if turn >= len(self.turns):
            return False
        if self.turns[turn] == who:
            return True
        return TURN / 2 <= t - turn * TURN < TURN / 2 + BURST


class ScriptedTone(ToneTrack):
    """A tone that is loud or silent as the script says."""

    def __init__(self, who: str, script: Script) -> None:
        super().__init__(level_dbfs=-12.0, beep=False)
        self.who = who
        self.script = script

    async def recv(self) -> av.AudioFrame:  # type: ignore[override]
        """The tone's next frame, zeroed while the script says silence."""
        frame = await super().recv()
        if not self.script.loud(self.who, time.monotonic()):
            frame.planes[0].update(bytes(2 * self.samples_per_frame))
        return frame


async def test_the_reported_speaker_follows_the_talker_and_never_flaps_on_a_burst(platform: Platform, join: Join) -> None:
    settings = SpeakerSettings()
    chair = await join("mayor-laptop", site="office", grants=CHAIR_GRANTS)
    script = Script()
    a = await join("a", site="linjiang")
    b = await join("b", site="qingshan")
    await a.publish({"microphone": ScriptedTone("a", script)})
    await b.publish({"microphone": ScriptedTone("b", script)})
    room = platform.services.rooms.rooms["consultation"]
    await chair.wait_for(lambda c: len(c.received) == 2, timeout=15)
    publications = list(room.router.publications.values())
    await until(lambda: all(p.audio_level is not None for p in publications))

    changes: list[tuple[float, str | None]] = []
    chair.on_message = lambda m: changes.append((time.monotonic(), m.identity)) if isinstance(m, ActiveSpeaker) else None
    script.start = time.monotonic()
    await chair.wait_for(lambda c: len(changes) >= 3, timeout=TURN * 3 + 5)
    # the script runs to its end (and a second beyond): no further change may come
    await asyncio.sleep(max(0.0, script.start + TURN * 3 + 1.0 - time.monotonic()))

    assert [who for _, who in changes] == ["a", "b", "a"], changes
    for (at, _), turn in zip(changes, range(3), strict=True):
        delay = at - (script.start + turn * TURN)
        print(f"switch {turn}: {delay * 1000:.0f} ms after the talker started")
        assert settings.hold_ms / 1000 <= delay <= (settings.hold_ms + settings.window_ms) / 1000 + 0.5, delay
