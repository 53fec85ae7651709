"""An in-process server on a manual clock at 16:50 in Jiangzhou, and a browser-like HTTP client for its duty pages."""

from __future__ import annotations

import zoneinfo
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import msgspec
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from server.app import build_services, create_app
from server.command.keys import COMMAND
from server.config import Config
from server.duty.keys import DEADLINE, DUTY
from server.duty.deadline import DeadlineRunner
from server.duty.service import STREAM, DutyService
from server.scheduler import ManualClock
from server.services import Services
from server.store import MemoryStore, Store, StoredEvent

SECRET = b"duty-test-secret-" + b"0" * 40
SHANGHAI = zoneinfo.ZoneInfo("Asia/Shanghai")
DAY = "2027-01-15"
START = datetime(2027, 1, 15, 16, 50, tzinfo=SHANGHAI).timestamp()
DEADLINE_AT = datetime(2027, 1, 15, 17, 30, tzinfo=SHANGHAI).timestamp()
WELL_FORM = {"day": DAY, "officer": "王值班", "leader": "李局长", "all_well": "yes", "text": ""}


@dataclass
class DutyPlatform:
    """A running server, its clock and duty service, and a session that speaks as one user at a time."""

    url: str
    services: Services
    clock: ManualClock
    app: web.Application
    http: aiohttp.ClientSession

    @property
    def duty(self) -> DutyService:
        """The duty service of the app."""
        return self.app[DUTY]

    @property
    def runner(self) -> DeadlineRunner:
        """The deadline's runner of the app."""
        return self.app[DEADLINE]

    def cookie(self, username: str) -> dict[str, str]:
        """A logged-in user's session cookie, as the browser sends it, with the page's own origin."""
        user = self.services.config.user(username)
        assert user is not None
        return {"Cookie": f"cp_session={self.services.tokens.issue_session(user, 3600)}", "Origin": self.url}

    async def post(self, username: str, path: str, form: dict[str, Any]) -> tuple[str, dict[str, list[str]]]:
        """Post a form as `username`; (where the 303 sends the browser, its query)."""
        async with self.http.post(self.url + path, data=form, headers=self.cookie(username), allow_redirects=False) as r:
            assert r.status == 303, await r.text()
            location = r.headers["Location"]
        return urlsplit(location).path, parse_qs(urlsplit(location).query)

    async def get(self, username: str, path: str, status: int = 200) -> str:
        """A page's HTML as `username`."""
        async with self.http.get(self.url + path, headers=self.cookie(username), allow_redirects=False) as r:
            assert r.status == status, await r.text()
            return await r.text()

    async def state(self, username: str, query: str = "") -> dict[str, Any]:
        """`/duty/state.json` as `username`."""
        async with self.http.get(f"{self.url}/duty/state.json?{query}", headers=self.cookie(username)) as r:
            assert r.status == 200, await r.text()
            found: dict[str, Any] = await r.json()
            return found

    async def events(self) -> list[StoredEvent]:
        """Every event of the duty log."""
        return await self.services.store.read_events(STREAM, limit=10_000)

    async def incident(self, site: str, summary: str = "堤防渗水 levee seepage") -> str:
        """An initial incident report of `site`, filed through the command service; its id."""
        service = self.app[COMMAND].service
        incident_id = f"i{len(service.board.incidents):011d}"
        await service.record(None, "report_filed", {
            "incident_id": incident_id, "report_kind": "initial", "site": site, "summary": summary,
            "occurred_at": self.clock.now() - 600, "place": "青石镇堤段", "type": "flood",
            "chain": [a.id for a in self.services.sites.ancestors(site)], "casualties": {"dead": 0, "injured": 0, "missing": 0}})
        return incident_id

    async def pass_deadline(self) -> None:
        """Move the clock to 17:30 and run what fell due."""
        self.clock.set(DEADLINE_AT)
        await self.services.scheduler.run_due()


def with_data_dir(config: Config, data_dir: Path) -> Config:
    """The configuration with its data directory moved."""
    return msgspec.structs.replace(config, server=msgspec.structs.replace(config.server, data_dir=str(data_dir)))


MakeDuty = Callable[..., Any]


@pytest.fixture
async def make_duty(aiohttp_server: Callable[..., TestServer], demo_config: Config, tmp_path: Path) -> AsyncIterator[MakeDuty]:
    """Build a platform (at `start`, over `store` if given: a restart keeps the store)."""
    async with aiohttp.ClientSession() as http:

        async def make(start: float = START, store: Store | None = None, clock: ManualClock | None = None) -> DutyPlatform:
            clock = clock or ManualClock(start)
            store = store or MemoryStore(node_id="test", clock=clock.now)
            services = build_services(with_data_dir(demo_config, tmp_path), secret=SECRET, store=store, clock=clock)
            app = create_app(services)
            server = await aiohttp_server(app)
            return DutyPlatform(str(server.make_url("")).rstrip("/"), services, clock, app, http)

        yield make


@pytest.fixture
async def duty(make_duty: MakeDuty) -> DutyPlatform:
    """The platform at 16:50 on 2027-01-15, nothing filed."""
    platform: DutyPlatform = await make_duty()
    return platform
