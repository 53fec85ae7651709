"""审核签发 on the way up: a county's draft is returned, fixed and signed off by its duty leader before
the city sees it; the city forwards it to the province with a comment; an urgent report goes up at
once and is reviewed after. Every version and step is kept and shown on the incident's page."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable

import aiohttp
import msgspec
import pytest
from aiohttp.test_utils import TestServer

from server.app import build_services, create_app
from server.command.keys import COMMAND
from server.config import Config, Site
from server.scheduler import ManualClock
from server.store import RedisStore
from signaling.command import Casualties, ReportFile

from tests.e2e.conftest import _free_port
from tests.server.test_store_contract import _delete_keys

from .conftest import SECRET, CommandPlatform, serving


def review_config(demo: Config, data_dir: str) -> Config:
    """The demo with a province above the city, and reports signed off by each county's duty leader."""
    province = Site(id="province", name_zh="江东省应急管理厅", name_en="Jiangdong Provincial Emergency Department", kind="office")
    sites = (province, *(msgspec.structs.replace(s, parent="province") if s.id == "office" else s for s in demo.sites))
    return msgspec.structs.replace(
        demo, sites=sites, server=msgspec.structs.replace(demo.server, data_dir=data_dir),
        command=msgspec.structs.replace(demo.command, sign_off=True, urgent_types=("hazmat",)))


@pytest.fixture
async def review_platform(aiohttp_server: Callable[..., TestServer], demo_config: Config,
                          tmp_path: object) -> AsyncIterator[CommandPlatform]:
    async for platform in serving(aiohttp_server, review_config(demo_config, str(tmp_path))):
        yield platform


class Browser:
    """One signed-in person's form posts and page reads, as a browser makes them (cookie, same origin)."""

    def __init__(self, platform: CommandPlatform, username: str) -> None:
        user = platform.services.config.user(username)
        assert user is not None
        self.platform = platform
        self.headers = {"Cookie": f"cp_session={platform.services.tokens.issue_session(user, 600)}", "Origin": platform.url}

    async def page(self, incident: str) -> tuple[int, str]:
        async with self.platform.session.get(f"{self.platform.url}/command/incidents/{incident}", headers=self.headers) as resp:
            return resp.status, await resp.text()

    async def post(self, path: str, **form: str) -> str:
        """Post a form; where the server sends the browser back to (with ?done= or ?error=)."""
        async with self.platform.session.post(f"{self.platform.url}{path}", data=form, headers=self.headers,
                                              allow_redirects=False) as resp:
            assert resp.status == 303, await resp.text()
            return resp.headers["Location"]


def _report(summary: str, **extra: object) -> ReportFile:
    return ReportFile(occurred_at=extra.pop("occurred_at", None), place=str(extra.pop("place", "临江大堤")),  # type: ignore[arg-type]
                      incident_type=str(extra.pop("incident_type", "flood")), casualties=Casualties(), summary=summary, **extra)  # type: ignore[arg-type]


async def test_a_draft_is_returned_fixed_signed_sent_up_and_forwarded_to_the_province(review_platform: CommandPlatform) -> None:
    p = review_platform
    board = p.command.service.board
    officer_ws = await p.console("county03", "linjiang")
    city_ws = await p.console("mayor", "office")
    officer, leader, mayor = Browser(p, "county03"), Browser(p, "leader03"), Browser(p, "mayor")
    ok = await officer_ws.request(_report("临江大堤渗水", occurred_at=p.clock.now() - 600))
    incident = ok.incident_id
    assert incident and board.incidents[incident].reports[0].state == "draft"
    assert board.incidents[incident].reached == ()
    assert (await mayor.page(incident))[0] == 404  # a draft stays with its county
    report_id = board.incidents[incident].reports[0].event_id
    base = f"/command/incidents/{incident}/reports/{report_id}"

    assert "error=forbidden" in await officer.post(f"{base}/sign")  # the officer cannot sign his own draft
    assert "done=returned" in await leader.post(f"{base}/return", comment="伤亡情况未写明")
    assert board.incidents[incident].reports[0].state == "returned"
    assert "error=not_a_draft" in await leader.post(f"{base}/sign")  # a returned report is fixed first
    status, page = await officer.page(incident)
    assert status == 200 and "伤亡情况未写明" in page
    p.clock.advance(3600)  # the fix and the signature take past the incident's hour
    assert "done=revised" in await officer.post(f"{base}/revise", summary="临江大堤渗水，无人员伤亡", injured="0", comment="补充伤亡")
    assert "done=signed" in await leader.post(f"{base}/sign")
    signed = board.incidents[incident]
    assert signed.reports[0].state == "sent" and signed.reports[0].signed_by == "leader03"
    assert signed.reached == ("office",) and signed.late  # went up 70 minutes after the incident: late
    assert [v.summary for v in signed.reports[0].versions] == ["临江大堤渗水", "临江大堤渗水，无人员伤亡"]
    assert [s.action for s in signed.reports[0].steps] == ["drafted", "returned", "revised", "signed"]
    await city_ws.wait_for(lambda c: any(m.incident and m.incident.reached == ["office"] for m in c.events.values()))
    seen_by_city = [m for m in city_ws.events.values() if m.incident]
    assert all(m.event.kind not in ("report_returned",) for m in seen_by_city)
    assert seen_by_city[-1].incident and seen_by_city[-1].incident.reports[0].summary == "临江大堤渗水，无人员伤亡"

    status, page = await mayor.page(incident)
    assert status == 200 and "转报" in page and "v2" in page
    assert "error=comment_required" in await mayor.post(f"/command/incidents/{incident}/forward", comment=" ")
    assert "done=forwarded" in await mayor.post(f"/command/incidents/{incident}/forward", comment="请省厅关注汛情")
    forwarded = board.incidents[incident]
    assert forwarded.reached == ("office", "province") and forwarded.forwards[0].comment == "请省厅关注汛情"
    province = await p.console("prov-duty", "province", grants=("publish",))
    await province.wait_for(lambda c: any(m.incident and m.incident.id == incident for m in c.events.values()))
    assert "error=not_your_incident" in await mayor.post(f"/command/incidents/{incident}/forward", comment="again")  # the province has it now


async def test_an_urgent_report_goes_up_at_once_and_is_reviewed_after(review_platform: CommandPlatform) -> None:
    p = review_platform
    board = p.command.service.board
    officer_ws = await p.console("county03", "linjiang")
    city_ws = await p.console("mayor", "office")
    leader, officer = Browser(p, "leader03"), Browser(p, "county03")
    hazmat = await officer_ws.request(_report("化工厂泄漏", occurred_at=p.clock.now() - 60, incident_type="hazmat"))
    marked = await officer_ws.request(_report("山体滑坡", occurred_at=p.clock.now() - 60, urgent=True))
    for ok in (hazmat, marked):
        assert ok.incident_id
        report = board.incidents[ok.incident_id].reports[0]
        assert report.sent and report.urgent and not report.reviewed
        assert board.incidents[ok.incident_id].reached == ("office",)
    await city_ws.wait_for(lambda c: len({m.incident.id for m in c.events.values() if m.incident}) == 2)
    incident = hazmat.incident_id
    report_id = board.incidents[incident].reports[0].event_id
    base = f"/command/incidents/{incident}/reports/{report_id}"
    assert "done=revised" in await leader.post(f"{base}/revise", summary="化工厂泄漏，已疏散200人", comment="补充疏散人数")
    await city_ws.wait_for(lambda c: any(m.incident and m.incident.reports[0].versions == 2 for m in c.events.values()))
    assert "error=" in await leader.post(f"{base}/return", comment="no")  # gone up: nothing to return
    assert "done=signed" in await leader.post(f"{base}/sign")
    assert board.incidents[incident].reports[0].reviewed
    assert "error=already_sent" in await officer.post(f"{base}/revise", summary="再改")  # reviewed: a follow-up now
    # a follow-up of a hazardous-materials incident goes up at once too; one on a flood is a draft again
    assert (await officer_ws.request(ReportFile(incident_id=incident, summary="续报：泄漏已控制"))).incident_id == incident
    assert board.incidents[incident].reports[1].state == "sent"
    flood = marked.incident_id
    assert (await officer_ws.request(ReportFile(incident_id=flood, summary="续报：滑坡体稳定"))).incident_id == flood
    assert board.incidents[flood].reports[1].state == "draft"
    await city_ws.wait_for(lambda c: any(m.incident and "泄漏已控制" in m.incident.reports[-1].summary for m in c.events.values()))
    assert all("滑坡体稳定" not in (m.incident.reports[-1].summary if m.incident else "") for m in city_ws.events.values())


@pytest.fixture
async def review_nodes(aiohttp_server: Callable[..., TestServer], demo_config: Config, redis_url: str,
                       tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[list[CommandPlatform]]:
    """Two nodes on one Redis folding one command log, with the review configuration."""
    prefix = f"test-review-{uuid.uuid4().hex[:8]}:"
    clock = ManualClock(time.time())
    platforms: list[CommandPlatform] = []
    async with aiohttp.ClientSession() as session:
        for n in (1, 2):
            port = _free_port()
            config = review_config(demo_config, str(tmp_path_factory.mktemp(f"node{n}")))
            config = msgspec.structs.replace(config, server=msgspec.structs.replace(
                config.server, port=port, node_url=f"http://127.0.0.1:{port}"))
            store = RedisStore(redis_url, node_id=f"node-{n}", key_prefix=prefix, clock=clock.now)
            app = create_app(build_services(config, secret=SECRET, store=store, clock=clock))
            server = await aiohttp_server(app, port=port)
            platforms.append(CommandPlatform(str(server.make_url("")).rstrip("/"), app[COMMAND].service.services, clock,
                                             app[COMMAND], session))
        yield platforms
        for platform in platforms:
            for client in platform.clients:
                await client.close()
    await _delete_keys(redis_url, prefix)


@pytest.mark.redis
async def test_across_two_nodes_a_draft_is_either_signed_or_returned_and_the_other_node_forwards_it(
        review_nodes: list[CommandPlatform]) -> None:
    node1, node2 = review_nodes
    officer_ws = await node1.console("county03", "linjiang")
    ok = await officer_ws.request(_report("江堤管涌", occurred_at=node1.clock.now() - 60))
    incident = ok.incident_id
    assert incident

    async def on_node2() -> str:
        while incident not in node2.command.service.board.incidents:
            await asyncio.sleep(0.01)
        return node2.command.service.board.incidents[incident].reports[0].event_id

    report_id = await asyncio.wait_for(on_node2(), 5)
    base = f"/command/incidents/{incident}/reports/{report_id}"
    sign, back = await asyncio.gather(Browser(node1, "leader03").post(f"{base}/sign"),
                                      Browser(node2, "leader03").post(f"{base}/return", comment="再核实"))
    outcomes = sorted(["signed" if "done=signed" in sign else "refused", "returned" if "done=returned" in back else "refused"])
    assert outcomes in (["refused", "signed"], ["refused", "returned"]), (sign, back)
    if "done=returned" in back:  # the return won: fix it and sign it on the other node
        assert "done=revised" in await Browser(node1, "county03").post(f"{base}/revise", summary="江堤管涌，已处置")
        await node2.command.service.catch_up()
        assert "done=signed" in await Browser(node2, "leader03").post(f"{base}/sign")
    await node1.command.service.catch_up()
    assert "done=forwarded" in await Browser(node1, "mayor").post(f"/command/incidents/{incident}/forward", comment="转省厅")
    await node2.command.service.catch_up()
    for node in review_nodes:
        folded = node.command.service.board.incidents[incident]
        assert folded.reached == ("office", "province") and folded.reports[0].sent
        assert [s.action for s in folded.reports[0].steps][-1] == "signed"
