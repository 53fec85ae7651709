"""The periodic review (定期点评) page, printable, and its CSV: per site and period, ranked, each item with its evidence."""

from __future__ import annotations

import asyncio
from typing import Any, Final

from aiohttp import web

from server.accountability.document import review_docx
from server.accountability.domain import KINDS, Item
from server.accountability.keys import ACCOUNTABILITY
from server.accountability.service import AccountabilityService
from server.auth import Identity
from server.duty.days import parse_day, shift_day
from server.duty.views import clock, sees_board
from server.errors import RequestError, http_error
from server.pages import _me, _render, _sites
from server.services import SERVICES
from server.spreadsheet import csv_text
from server.web_auth import signed_in


DOCX: Final[str] = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"


def _reviewer(request: web.Request) -> Identity:
    identity = signed_in(request)
    if not sees_board(identity):
        raise web.HTTPForbidden(text="forbidden: the periodic review needs grant 'issue' or 'moderate'\n")
    return identity


def _period(request: web.Request, service: AccountabilityService) -> list[str]:
    today = service.duty.today()
    first = request.query.get("from") or today[:8] + "01"
    try:
        return service.period(first, request.query.get("to") or today)
    except RequestError as exc:
        raise http_error(exc) from None


def _presets(today: str) -> list[tuple[str, str, str]]:
    """(label, from, to) of this week, last week, this month and last month."""
    monday = shift_day(today, -parse_day(today).weekday())
    month = today[:8] + "01"
    last_month = shift_day(month, -1)[:8] + "01"
    return [("本周 This week", monday, today), ("上周 Last week", shift_day(monday, -7), shift_day(monday, -1)),
            ("本月 This month", month, today), ("上月 Last month", last_month, shift_day(month, -1))]


def _row(item: Item, service: AccountabilityService, names: dict[str, dict[str, str | None]]) -> dict[str, Any]:
    zh, en = KINDS[item.kind]
    site = names.get(item.site, {})
    return {"site": item.site, "name_zh": site.get("name_zh", item.site), "name_en": site.get("name_en", ""), "kind": item.kind,
            "kind_zh": zh, "kind_en": en, "when": clock(item.at, service.zone, "%Y-%m-%d %H:%M"), "title": item.title,
            "evidence": item.evidence, "recording": item.recording}


async def review_page(request: web.Request) -> web.Response:
    """`GET /accountability?from=&to=`: the ranking of the reporting sites and every item of the period."""
    identity = _reviewer(request)
    service = request.app[ACCOUNTABILITY]
    days = _period(request, service)
    items = await service.items(days)
    names = _sites(request.app[SERVICES])
    return _render(request, "accountability.html", me=_me(identity), sites=names, first=days[0], last=days[-1],
                   kinds=KINDS, standings=service.ranking(items), items=[_row(i, service, names) for i in items],
                   presets=_presets(service.duty.today()))


async def review_csv(request: web.Request) -> web.Response:
    """`GET /accountability.csv?from=&to=`: one row per item, for the spreadsheet of the monthly review."""
    _reviewer(request)
    service = request.app[ACCOUNTABILITY]
    days = _period(request, service)
    names = _sites(request.app[SERVICES])
    rows = [_row(i, service, names) for i in await service.items(days)]
    text = csv_text(["site", "name_zh", "name_en", "kind", "kind_zh", "when", "title", "evidence"],
                    ([r[k] for k in ("site", "name_zh", "name_en", "kind", "kind_zh", "when", "title", "evidence")] for r in rows))
    return web.Response(text=text, content_type="text/csv", charset="utf-8",
                        headers={"Content-Disposition": f'attachment; filename="accountability-{days[0]}-{days[-1]}.csv"'})


async def review_document(request: web.Request) -> web.Response:
    """`GET /accountability.docx?from=&to=`: the review as a Word document, to print or file."""
    _reviewer(request)
    service = request.app[ACCOUNTABILITY]
    days = _period(request, service)
    services = request.app[SERVICES]
    names = _sites(services)
    items = await service.items(days)
    rows = [_row(i, service, names) for i in items]
    city = f"{services.config.city.name_zh} {services.config.city.name_en}"
    body = await asyncio.get_running_loop().run_in_executor(
        None, review_docx, city, days[0], days[-1], service.ranking(items), rows, names, f"{request.scheme}://{request.host}")
    return web.Response(body=body, content_type=DOCX, headers={
        "Content-Disposition": f'attachment; filename="review-{days[0]}-{days[-1]}.docx"'})


def add_routes(app: web.Application) -> None:
    """Register the review pages."""
    app.router.add_get("/accountability", review_page)
    app.router.add_get("/accountability.csv", review_csv)
    app.router.add_get("/accountability.docx", review_document)
