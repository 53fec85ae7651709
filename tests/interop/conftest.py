"""Real encoders and players against the server: the browser tests' and the server tests' fixtures, shared."""

from __future__ import annotations

from tests.e2e.conftest import browser, open_page, server
from tests.server.conftest import demo_config, platform

__all__ = ["browser", "demo_config", "open_page", "platform", "server"]
