"""Bandwidth per subscriber: layers step down in order (tiles, then the spotlight, then pauses,
audio never) at once, and back up only after the estimate has held for a while."""

from __future__ import annotations

from media.bandwidth import PROBE_HOLD, PROBE_TIME, UP_HOLD, BandwidthAllocator, Want, ladder

RATES = (150_000.0, 450_000.0, 1_300_000.0)
TILE = 320 * 180
SPOTLIGHT = 1280 * 720


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _fallen_to(allocator: BandwidthAllocator, bits_per_second: float) -> None:
    """The estimate was high, then fell: the link is congested."""
    allocator.on_estimate(20_000_000)
    allocator.allocate(_wall(0))
    allocator.on_estimate(bits_per_second)


def _wall(tiles: int = 4) -> list[Want]:
    wants = [Want("audio", "audio", 0, 0, (40_000.0,)), Want("spot", "video", SPOTLIGHT, 2, RATES)]
    wants += [Want(f"tile{i}", "video", TILE - i, 1, RATES) for i in range(tiles)]
    return wants


def test_the_ladder_drops_tiles_then_the_spotlight_then_pauses_tiles_and_never_audio() -> None:
    steps = ladder(_wall(2))
    assert steps[0] == {"audio": 0, "spot": 2, "tile0": 1, "tile1": 1}
    # the least important tile first, every tile at its lowest before the spotlight moves
    assert steps[1] == {"audio": 0, "spot": 2, "tile0": 1, "tile1": 0}
    assert steps[2] == {"audio": 0, "spot": 2, "tile0": 0, "tile1": 0}
    assert steps[3]["spot"] == 1 and steps[4]["spot"] == 0
    assert steps[5] == {"audio": 0, "spot": 0, "tile0": 0, "tile1": None}
    assert steps[-1] == {"audio": 0, "spot": 0, "tile0": None, "tile1": None}  # the spotlight is never paused


def test_a_one_megabit_link_keeps_the_spotlight_high_and_the_tiles_low() -> None:
    allocator = BandwidthAllocator(FakeClock())
    assert allocator.allocate(_wall())["spot"] == 2  # no feedback yet: everything as wanted
    allocator.on_estimate(300_000)
    assert allocator.allocate(_wall())["spot"] == 2  # a low estimate that never fell: a receiver starting
    _fallen_to(allocator, 1_000_000)
    grant = allocator.allocate(_wall(2))
    assert grant == {"audio": 0, "spot": 1, "tile0": 0, "tile1": 0}  # 40k + 2 x 150k + 450k
    allocator = BandwidthAllocator(FakeClock())
    _fallen_to(allocator, 2_000_000)  # 40k + 2 x 150k + 1.3M fits in 90 % of 2 Mbit/s
    assert allocator.allocate(_wall(2)) == {"audio": 0, "spot": 2, "tile0": 0, "tile1": 0}


def test_below_the_lowest_layers_the_least_important_video_pauses_and_audio_stays() -> None:
    allocator = BandwidthAllocator(FakeClock())
    _fallen_to(allocator, 400_000)
    grant = allocator.allocate(_wall(4))
    assert grant["audio"] == 0 and grant["spot"] == 0
    assert [grant[f"tile{i}"] for i in range(4)] == [0, None, None, None]


def test_down_is_at_once_and_up_waits_for_the_estimate_to_hold() -> None:
    clock = FakeClock()
    allocator = BandwidthAllocator(clock)
    wall = _wall(2)
    allocator.on_estimate(5_000_000)
    assert allocator.allocate(wall)["tile0"] == 1
    allocator.on_estimate(1_000_000)  # fell: congested
    assert allocator.allocate(wall) == {"audio": 0, "spot": 1, "tile0": 0, "tile1": 0}
    assert allocator.steps_down == 1
    allocator.on_estimate(5_000_000)
    for _ in range(5):  # up only after UP_HOLD seconds of room
        clock.now += UP_HOLD / 6
        assert allocator.allocate(wall)["spot"] == 1
    allocator.on_estimate(900_000)  # a dip resets the hold
    clock.now += UP_HOLD
    assert allocator.allocate(wall)["spot"] == 1
    allocator.on_estimate(5_000_000)
    assert allocator.allocate(wall)["spot"] == 1
    clock.now += UP_HOLD / 2
    assert allocator.allocate(wall)["spot"] == 1
    clock.now += UP_HOLD / 2
    assert allocator.allocate(wall) == {"audio": 0, "spot": 2, "tile0": 1, "tile1": 1}
    assert allocator.steps_up == 1


def test_an_estimate_that_stops_coming_is_forgotten() -> None:
    clock = FakeClock()
    allocator = BandwidthAllocator(clock)
    _fallen_to(allocator, 100_000)
    assert allocator.allocate(_wall(1))["tile0"] is None
    clock.now += 11
    assert allocator.allocate(_wall(1))["tile0"] == 1


def test_a_settled_rung_probes_the_one_above_and_backs_off_when_the_link_cannot_carry_it() -> None:
    clock = FakeClock()
    allocator = BandwidthAllocator(clock)
    wall = _wall(2)
    _fallen_to(allocator, 1_000_000)
    assert allocator.allocate(wall)["spot"] == 1
    for _ in range(int(PROBE_HOLD / 0.5) + 1):
        clock.now += 0.5
        grant = allocator.allocate(wall)
    assert grant["spot"] == 2 and allocator.probes == 1  # trying the top layer
    clock.now += 1
    assert allocator.allocate(wall)["spot"] == 2  # the estimate did not fall: the probe goes on
    allocator.on_estimate(900_000)  # it congests the link
    assert allocator.allocate(wall)["spot"] == 1
    for _ in range(int(PROBE_HOLD / 0.5)):  # the next probe waits twice as long
        clock.now += 0.5
        assert allocator.allocate(wall)["spot"] == 1
    allocator.on_estimate(1_000_000)
    for _ in range(int(PROBE_HOLD / 0.5) + 1):
        clock.now += 0.5
        grant = allocator.allocate(wall)
    assert grant["spot"] == 2 and allocator.probes == 2
    allocator.on_estimate(2_000_000)  # the estimate rose to carry it (40k + 2 x 150k + 1.3M): kept
    clock.now += PROBE_TIME
    assert allocator.allocate(wall)["spot"] == 2 and allocator.steps_up == 1
    clock.now += 10
    assert allocator.allocate(wall)["spot"] == 2
