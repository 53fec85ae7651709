"""Fixtures shared across the test packages."""

from __future__ import annotations

import os

import pytest

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The Redis the tests use: REDIS_URL, or the one scripts/ensure-redis.sh starts."""
    return os.environ.get("REDIS_URL") or DEFAULT_REDIS_URL


def soaking() -> bool:
    """True under `make soak` (SOAK=1): tests marked `soak` run their long version."""
    return os.environ.get("SOAK") == "1"


def soak_or(short: float, long: float) -> float:
    """A duration (or count): `short` in `make test`, `long` under `make soak`."""
    return long if soaking() else short
