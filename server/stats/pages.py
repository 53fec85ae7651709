"""The statistics dashboard (统计): a period's numbers, and its charts as SVG images."""

from __future__ import annotations

from aiohttp import web

from server.accountability.keys import ACCOUNTABILITY
from server.accountability.period import _period, _presets, _reviewer
from server.duty.domain import STATUS_NAMES
from server.pages import _me, _render, _sites
from server.services import SERVICES
from server.stats.keys import STATS


async def dashboard(request: web.Request) -> web.Response:
    """`GET /stats?from=&to=`: the period's counts, the duty reports per day and the items per site as charts."""
    identity = _reviewer(request)
    days = _period(request, request.app[ACCOUNTABILITY])
    stats = request.app[STATS]
    figures = await stats.figures(days)
    duty_totals = {status: sum(values) for status, values in figures["duty"].items()}
    return _render(request, "stats.html", me=_me(identity), sites=_sites(request.app[SERVICES]), first=days[0], last=days[-1],
                   figures=figures, duty_totals=duty_totals, status_names=STATUS_NAMES, outcome_names=stats.outcome_names(),
                   presets=_presets(request.app[ACCOUNTABILITY].duty.today()))


async def chart(request: web.Request) -> web.Response:
    """`GET /stats/{name}.svg?from=&to=`: one chart (`duty`, `sites`, `rates` or `trend`)."""
    _reviewer(request)
    days = _period(request, request.app[ACCOUNTABILITY])
    stats = request.app[STATS]
    svg = await stats.chart(request.match_info["name"], days)
    assert isinstance(svg, str)
    return web.Response(text=svg, content_type="image/svg+xml", charset="utf-8", headers={"Cache-Control": "no-store"})


def add_routes(app: web.Application) -> None:
    """Register the dashboard and its charts."""
    app.router.add_get("/stats", dashboard)
    app.router.add_get("/stats/{name:duty|sites|rates|trend}.svg", chart)
