"""The periodic review (定期点评) page, printable, and its CSV: per site and period, ranked, each item with its evidence."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any, Final

from aiohttp import web

from server.accountability.document import ReviewDocument, review_docx
from server.accountability.domain import KINDS, Item
from server.accountability.keys import ACCOUNTABILITY
from server.accountability.period import _period, _presets, _reviewer
from server.accountability.pdf import NoChineseFont, review_pdf
from server.accountability.service import AccountabilityService
from server.duty.views import clock
from server.pages import _me, _render, _sites
from server.services import SERVICES
from server.spreadsheet import csv_text
from server.stats.figures import SiteFigures
from server.stats.keys import STATS


DOCX: Final[str] = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"


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
                   figures=await request.app[STATS].figures(days),
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


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.0f}%"


def _secs(value: float | None) -> str:
    return "—" if value is None else f"{value:.0f} s" if value < 120 else f"{value / 60:.1f} min"


def figure_rows(figures: Sequence[SiteFigures], names: Mapping[str, Mapping[str, str | None]]) -> list[list[str]]:
    """Each site's figures (the total last) as rows of text for a document, the header first."""
    rows = [["单位 Site", "收到指令 Directives", "签收中位 Median ack", "按时签收 On time", "反馈率 Feedback",
             "报送/迟报率 Incidents/late", "点名到位 Attendance", "响应中位 Median response", "值班按时 Duty on time"]]
    for f in figures:
        rows.append([str(names.get(f.site, {}).get("name_zh") or f.site) if f.site else "合计 Total", str(f.received),
                     _secs(f.ack_median), _pct(f.on_time_rate), _pct(f.feedback_rate), f"{f.incidents} / {_pct(f.late_rate)}",
                     f"{_pct(f.attendance)} ({f.present}/{f.called})", _secs(f.response_median),
                     f"{_pct(f.duty_compliance)} ({f.duty_on_time}/{f.duty_due})"])
    return rows


async def _document(request: web.Request) -> tuple[ReviewDocument, list[str]]:
    """The review of the requested period as the documents hold it (charts drawn as PNG)."""
    _reviewer(request)
    service = request.app[ACCOUNTABILITY]
    days = _period(request, service)
    services = request.app[SERVICES]
    names = _sites(services)
    items = await service.items(days)
    stats = request.app[STATS]
    figures = await stats.figures(days)
    charts = [chart for name in ("trend", "rates", "duty") if isinstance(chart := await stats.chart(name, days, "png"), bytes)]
    return ReviewDocument(
        city=f"{services.config.city.name_zh} {services.config.city.name_en}", first=days[0], last=days[-1],
        standings=service.ranking(items), figures=figure_rows([*figures["sites"], figures["total"]], names), charts=charts,
        items=[_row(i, service, names) for i in items], names=names, base_url=f"{request.scheme}://{request.host}"), days


async def review_document(request: web.Request) -> web.Response:
    """`GET /accountability.docx?from=&to=`: the review as a Word document, to print or file."""
    doc, days = await _document(request)
    body = await asyncio.get_running_loop().run_in_executor(None, review_docx, doc)
    return web.Response(body=body, content_type=DOCX, headers={
        "Content-Disposition": f'attachment; filename="review-{days[0]}-{days[-1]}.docx"'})


async def review_pdf_file(request: web.Request) -> web.Response:
    """`GET /accountability.pdf?from=&to=`: the review as a PDF with a line to sign; 503 without a Chinese font."""
    doc, days = await _document(request)
    try:
        body = await asyncio.get_running_loop().run_in_executor(None, review_pdf, doc)
    except NoChineseFont as exc:
        raise web.HTTPServiceUnavailable(text=f"{exc.code}: {exc.message}\n") from None
    return web.Response(body=body, content_type="application/pdf", headers={
        "Content-Disposition": f'attachment; filename="review-{days[0]}-{days[-1]}.pdf"'})


def add_routes(app: web.Application) -> None:
    """Register the review pages."""
    app.router.add_get("/accountability", review_page)
    app.router.add_get("/accountability.csv", review_csv)
    app.router.add_get("/accountability.docx", review_document)
    app.router.add_get("/accountability.pdf", review_pdf_file)
