"""Search over every record: Chinese matched as text, every part of the query, filters, and only what the viewer may see."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from server.auth import Identity
from server.command.keys import COMMAND
from server.command.service import Caller
from server.rollcall.keys import ROLLCALLS
from server.search.domain import Record, normalize, search

from tests.server.duty.conftest import DAY, WELL_FORM, DutyPlatform


def _record(text: str, *, kind: str = "directive", site: str = "a", at: float = 0.0, title: str = "") -> Record:
    return Record(kind, f"{kind}-{at}", (site,), at, title, text, "/x")


def test_chinese_is_matched_as_text_and_full_width_forms_match_their_ascii() -> None:
    records = [_record("临江县青石镇堤防渗水，已转移群众120人", at=1), _record("ＧＰＳ定位：堤段K12", at=2), _record("平安无事", at=3)]
    assert [h.record.at for h in search(records, "堤防")] == [1]
    assert [h.record.at for h in search(records, "gps k12")] == [2]  # full width and case folded
    assert [h.record.at for h in search(records, "堤 转移")] == [1]  # every part must occur
    assert search(records, "堤防 平安") == [] and search(records, "   ") == []
    hit = search(records, "渗水")[0]
    assert (hit.match, hit.before.endswith("堤防"), hit.after.startswith("，")) == ("渗水", True, True)


def test_filters_by_kind_site_and_period_and_newest_first() -> None:
    records = [_record("堤防", kind="duty", site="a", at=10), _record("堤防", kind="directive", site="b", at=20),
               _record("堤防", kind="incident", site="a", at=30)]
    assert [h.record.at for h in search(records, "堤防")] == [30, 20, 10]
    assert [h.record.at for h in search(records, "堤防", kinds=["duty", "incident"])] == [30, 10]
    assert [h.record.at for h in search(records, "堤防", site="b")] == [20]
    assert [h.record.at for h in search(records, "堤防", start=15, end=30)] == [20]


@settings(max_examples=200, deadline=None)
@given(texts=st.lists(st.text(alphabet="堤防渗水平安ＡａBb 1１", max_size=30), max_size=8),
       query=st.text(alphabet="堤防渗水平安ＡａBb 1１", max_size=6))
def test_every_hit_holds_every_part_of_the_query_and_no_record_holding_them_is_missed(texts: list[str], query: str) -> None:
    records = [_record(t, at=float(n)) for n, t in enumerate(texts)]
    hits = search(records, query)
    parts = [p for p in normalize(query).split(" ") if p]
    expected = {r.at for r in records if parts and all(p in normalize(r.text) for p in parts)}
    assert {h.record.at for h in hits} == expected
    for hit in hits:
        assert normalize(hit.match) in parts  # shown as written, matched as normalised


async def test_a_search_for_levees_finds_what_each_viewer_may_see_and_nothing_else(duty: DutyPlatform) -> None:
    command = duty.app[COMMAND].service
    mayor = Identity(identity="mayor", site="office", name="市长", grants=frozenset({"issue"}), rooms=frozenset(), kind="user",
                     expires_at=duty.clock.now() + 3600, token_id="test")
    await command.record(Caller(mayor, "test", "127.0.0.1"), "issued", {
        "directive_id": "d-levee00001", "cls": "guidance", "title": "加强堤防巡查", "recipients": ["linjiang"], "site": "office",
        "body": "重点：青石镇堤段"})
    await duty.incident("linjiang", "青石镇堤防渗水")
    await duty.post("county03", "/duty/sites/linjiang/report", {**WELL_FORM, "all_well": "no", "text": "堤防巡查正常"})
    rollcalls = duty.app[ROLLCALLS]
    called = await rollcalls.begin(actor="mayor", caller_site="office", sites=["linjiang"], mode="all", window=30,
                                   grace=0, title="堤防值守点名")
    await rollcalls.finish(called.id, actor="mayor")

    async def found(user: str, query: str = "q=堤防") -> set[str]:
        page = await duty.get(user, f"/search?{query}")
        return {kind for kind in ("directive", "incident", "duty", "rollcall") if f'data-kind="{kind}"' in page}

    assert await found("mayor") == {"directive", "incident", "duty", "rollcall"}
    assert await found("county03") == {"directive", "incident", "duty", "rollcall"}  # its own site's records
    assert await found("county01") == set()  # another county's: nothing
    assert await found("mayor", "q=堤防&kind=duty&kind=incident") == {"incident", "duty"}
    assert await found("mayor", f"q=堤防&from={DAY}&to={DAY}") == {"directive", "incident", "duty", "rollcall"}
    assert await found("mayor", "q=堤防&from=2027-01-16&to=2027-01-20") == set()
    page = await duty.get("mayor", "/search?q=堤防")
    assert "<mark>堤防</mark>" in page and 'href="/command/directives/d-levee00001"' in page
    assert "bad_day" in await duty.get("mayor", "/search?q=堤防&from=2027-02-30", status=400)
