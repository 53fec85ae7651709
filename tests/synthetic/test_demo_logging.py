"""`make demo` keeps its printed URL on screen: the sites' ICE and RTC logs are quiet unless asked for."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from synthetic.demo import QUIET_LIBRARIES, configure_logging


@pytest.fixture
def restore_levels() -> Iterator[None]:
    """Put the library loggers' levels back after the test."""
    before = {name: logging.getLogger(name).level for name in (*QUIET_LIBRARIES, "")}
    yield
    for name, level in before.items():
        logging.getLogger(name or None).setLevel(level)


def test_ice_and_rtc_logs_are_quiet_by_default(restore_levels: None) -> None:
    configure_logging({})
    assert all(not logging.getLogger(name).isEnabledFor(logging.INFO) for name in QUIET_LIBRARIES)
    assert logging.getLogger(f"{QUIET_LIBRARIES[0]}.ice").isEnabledFor(logging.WARNING)


def test_log_level_debug_shows_them_again(restore_levels: None) -> None:
    for name in QUIET_LIBRARIES:
        logging.getLogger(name).setLevel(logging.NOTSET)
    logging.getLogger().setLevel(logging.DEBUG)
    configure_logging({"LOG_LEVEL": "DEBUG"})
    assert all(logging.getLogger(name).isEnabledFor(logging.INFO) for name in QUIET_LIBRARIES)
