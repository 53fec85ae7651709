"""Search recall on a few hundred generated Chinese records (simplified and traditional queries), ranking,
and what each viewer may never find: another county's records, a draft not yet signed off, others'
roll-call results, room control history."""

from __future__ import annotations

import random

import opencc

from server.auth import Identity
from server.command.keys import COMMAND
from server.command.service import Caller
from server.rollcall.keys import ROLLCALLS
from server.search.keys import SEARCH

from tests.server.duty.conftest import DutyPlatform

PLACES = ["青石镇", "白沙村", "临江大堤", "凤凰山", "云溪水库", "松河大桥", "湖阳开发区", "石门隧道", "江北码头", "南湖湿地"]
EVENTS = ["堤防渗水", "山体滑坡", "道路塌方", "化工厂泄漏", "森林火情", "内涝积水", "桥梁受损", "电力中断", "危房倒塌", "船只搁浅"]
ACTIONS = ["已转移群众", "已封闭道路", "已派出抢险队", "正在排查隐患", "已通知下游乡镇", "已启动应急预案", "请求增派力量"]
COUNTIES = ["jiangbei", "jiangnan", "linjiang", "qingshan", "baishui", "yunxi", "fengling", "songhe", "huyang", "shimen"]


def _identity(name: str, site: str, *grants: str) -> Identity:
    return Identity(identity=name, site=site, name=name, grants=frozenset(grants), rooms=frozenset(), kind="user",
                    expires_at=4e9, token_id="test")


def _text(rng: random.Random, n: int) -> str:
    return f"{rng.choice(PLACES)}{rng.choice(EVENTS)}，{rng.choice(ACTIONS)}{n}人，第{n}号处置单{rng.choice(ACTIONS)}"


async def test_recall_on_generated_records_is_at_least_95_percent_with_traditional_queries_too(duty: DutyPlatform) -> None:
    rng = random.Random(14)
    command = duty.app[COMMAND].service
    mayor = _identity("mayor", "office", "issue")
    caller = Caller(mayor, "test", "127.0.0.1")
    records: dict[str, str] = {}
    for n in range(200):
        body = _text(rng, n)
        directive = f"d-recall{n:05d}"
        await command.record(caller, "issued", {"directive_id": directive, "cls": "guidance", "title": f"第{n}号指令",
                                                "recipients": [rng.choice(COUNTIES)], "site": "office", "body": body})
        records[directive] = body
    for n in range(200, 320):
        summary = _text(rng, n)
        records[await duty.incident(rng.choice(COUNTIES), summary)] = summary
    to_traditional = opencc.OpenCC("s2t")
    search = duty.app[SEARCH]
    found = asked = 0
    for record_id, text in rng.sample(sorted(records.items()), 300):
        start = rng.randrange(0, len(text) - 8)
        query = text[start:start + rng.randint(5, 8)]
        if asked % 2:
            query = to_traditional.convert(query)  # 繁體 asks for what was written 简体
        hits = await search.find(mayor, query, kinds=[], site=None, start=None, end=None)
        asked += 1
        found += any(h.record.id == record_id for h in hits)
    recall = found / asked
    print(f"search recall {recall:.3f} over {asked} queries")
    assert recall >= 0.95, f"recall {recall:.3f} over {asked} queries"


async def test_an_exact_phrase_ranks_first_then_the_newest(duty: DutyPlatform) -> None:
    command = duty.app[COMMAND].service
    mayor = _identity("mayor", "office", "issue")
    caller = Caller(mayor, "test", "127.0.0.1")
    for n, body in enumerate(["渗水 堤防 旧", "堤防渗水 最早", "渗水 堤防 新"]):
        await command.record(caller, "issued", {"directive_id": f"d-rank{n}", "cls": "guidance", "title": f"第{n}号",
                                                "recipients": ["linjiang"], "site": "office", "body": body})
        duty.clock.advance(60)
    hits = await duty.app[SEARCH].find(mayor, "堤防渗水", kinds=[], site=None, start=None, end=None)
    assert [h.record.id for h in hits] == ["d-rank1"]
    hits = await duty.app[SEARCH].find(mayor, "堤防 渗水", kinds=[], site=None, start=None, end=None)
    assert [h.record.id for h in hits] == ["d-rank1", "d-rank2", "d-rank0"]  # the phrase typed with a space; then newest first
    hits = await duty.app[SEARCH].find(mayor, "渗水 堤防", kinds=[], site=None, start=None, end=None)
    assert [h.record.id for h in hits][:2] == ["d-rank2", "d-rank0"]  # both hold the phrase as written; newest first


async def test_no_viewer_finds_what_it_may_not_see(duty: DutyPlatform) -> None:
    command = duty.app[COMMAND].service
    mayor = _identity("mayor", "office", "issue")
    linjiang = _identity("county03", "linjiang", "publish")
    jiangbei = _identity("county01", "jiangbei", "publish")
    await command.record(Caller(mayor, "test", "127.0.0.1"), "issued", {
        "directive_id": "d-secret0001", "cls": "guidance", "title": "机密部署", "recipients": ["linjiang"], "site": "office",
        "body": "绝密转移路线甲"})
    await command.record(Caller(linjiang, "test", "127.0.0.1"), "report_filed", {
        "incident_id": "i-draft00001", "report_kind": "initial", "site": "linjiang", "summary": "草稿未签发乙",
        "occurred_at": duty.clock.now() - 60, "place": "青石镇", "type": "flood", "chain": ["office"],
        "casualties": {"dead": 0, "injured": 0, "missing": 0}, "draft": True, "signed": False})
    rollcalls = duty.app[ROLLCALLS]
    called = await rollcalls.begin(actor="mayor", caller_site="office", sites=["linjiang", "jiangbei"], mode="all", window=30,
                                   grace=0, title="丙号点名")
    await rollcalls.finish(called.id, actor="mayor")
    await duty.app[SEARCH].services.store.append_event("room:consultation:control", actor="mayor", kind="mute",
                                                       data={"target": "county01", "node": "test"})
    search = duty.app[SEARCH]

    async def ids(who: Identity, query: str) -> set[str]:
        return {h.record.id for h in await search.find(who, query, kinds=[], site=None, start=None, end=None)}

    assert await ids(mayor, "绝密转移路线甲") == {"d-secret0001"} and await ids(linjiang, "绝密转移路线甲") == {"d-secret0001"}
    assert await ids(jiangbei, "绝密转移路线甲") == set()  # not its directive
    assert await ids(linjiang, "草稿未签发乙") == {"i-draft00001"} and await ids(mayor, "草稿未签发乙") == set()  # a draft stays home
    assert await ids(mayor, "江北区 缺席") == {called.id}  # the city sees every site's result
    assert await ids(linjiang, "丙号点名") == {called.id}  # linjiang its own roll-call...
    assert await ids(linjiang, "江北区 缺席") == set()  # ...but not jiangbei's result in it
    assert len(await ids(mayor, "静音")) == 1 and len(await ids(jiangbei, "静音")) == 1  # the chair, and the one muted
    assert await ids(linjiang, "静音") == set()
