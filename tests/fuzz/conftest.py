"""Fuzzing budgets: short and reproducible in `make test`, long and random under `make fuzz`.

`FUZZ_SCALE` multiplies every fuzz test's example count (default 1: the whole suite stays well
under a minute); above 1 the examples are also drawn at random rather than from a fixed seed,
and Hypothesis keeps any failing example in `.hypothesis/` to try first next time.
"""

from __future__ import annotations

import os
from pathlib import Path

from hypothesis import HealthCheck, settings

CORPUS = Path(__file__).parent / "corpus"


def scale() -> float:
    """The `FUZZ_SCALE` multiplier (1 unless set)."""
    return float(os.environ.get("FUZZ_SCALE") or 1)


def fuzz_settings(examples: int, *, deadline_ms: float | None) -> settings:
    """Hypothesis settings for `examples` inputs in `make test` (times FUZZ_SCALE), each within the deadline."""
    return settings(
        max_examples=max(1, int(examples * scale())),
        deadline=deadline_ms,
        derandomize=scale() <= 1,
        # The in-process servers are built once per test, not per example, on purpose.
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
        print_blob=True,
    )
