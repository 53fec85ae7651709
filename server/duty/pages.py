"""Duty report pages: the city's board, a site's report page, its week's roster; the live state as JSON."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from server.auth import Identity
from server.command.keys import COMMAND
from server.duty.days import shift_day, week_of
from server.duty.board import totals
from server.duty.domain import STATUS_NAMES
from server.duty.keys import DEADLINE, DUTY
from server.duty.service import DutyService
from server.duty.views import clock, report_info, row_info, sees_board, sees_site
from server.errors import RequestError, http_error
from server.pages import _me, _render, _sites
from server.services import SERVICES
from server.web_auth import signed_in

LONG_POLL = 25.0  # seconds a state request waits for a change before it answers unchanged


def _day(request: web.Request, service: DutyService) -> str:
    try:
        return service.checked_day(request.query.get("day") or None, ahead=1)
    except RequestError as exc:
        raise http_error(exc) from None


def _site(request: web.Request, identity: Identity) -> str:
    site = request.match_info["site"]
    services = request.app[SERVICES]
    if site not in services.sites:
        raise web.HTTPNotFound(text=f"unknown_site: {site}\n")
    if not sees_site(identity, site, services.sites):
        raise web.HTTPForbidden(text=f"forbidden: {identity.identity} may not see the duty reports of {site}\n")
    return site


def _context(request: web.Request, identity: Identity, **extra: Any) -> dict[str, Any]:
    service = request.app[DUTY]
    return {"me": _me(identity), "sites": _sites(request.app[SERVICES]), "deadline_at": service.settings.deadline,
            "status_names": STATUS_NAMES, "error": request.query.get("error", ""), **extra}


def _state(request: web.Request, identity: Identity, day: str, site: str | None) -> dict[str, Any]:
    service = request.app[DUTY]
    tree = request.app[SERVICES].sites
    rows = [r for r in service.board(day) if (site is None or r.site == site) and sees_site(identity, r.site, tree)]
    passed = service.book.deadlines.get(day)
    return {"day": day, "after": service.book.last_event_id, "deadline": service.deadline(day),
            "deadline_local": clock(service.deadline(day), service.zone), "deadline_passed": passed is not None,
            "now": service.clock.now(), "totals": totals(rows), "rows": [row_info(r, tree, service.zone) for r in rows]}


async def board_page(request: web.Request) -> web.Response:
    """`GET /duty`: today's (or `?day=`) state of every reporting site; a site's own people go to their page."""
    identity = signed_in(request)
    if not sees_board(identity):
        raise web.HTTPSeeOther(f"/duty/sites/{identity.site}")
    service = request.app[DUTY]
    day = _day(request, service)
    runner = request.app[DEADLINE]
    return _render(request, "duty_board.html", **_context(
        request, identity, state=_state(request, identity, day, None), day=day, today=service.today(),
        prev_day=shift_day(day, -1), next_day=shift_day(day, 1),
        next_deadline=runner.next_at[0] if runner.next_at else ""))


async def state_json(request: web.Request) -> web.Response:
    """`GET /duty/state.json?day=&site=&after=`: the state the viewer may see, once it is past `after`
    (the last event id the page holds), or after LONG_POLL seconds."""
    identity = signed_in(request)
    service = request.app[DUTY]
    day = _day(request, service)
    site = request.query.get("site") or None
    if site is None and not sees_board(identity):
        site = identity.site
    after = request.query.get("after")
    if after is not None:
        await service.wait_change(after or None, LONG_POLL)
    return web.json_response(_state(request, identity, day, site), headers={"Cache-Control": "no-store"})


def _incidents(request: web.Request, site: str, day: str) -> list[dict[str, Any]]:
    """The site's incident reports that occurred or were filed on `day`, to link from the report."""
    service = request.app[DUTY]
    incidents = request.app[COMMAND].service.board.incidents.values()
    found = []
    for incident in incidents:
        if incident.site != site:
            continue
        times = [t for t in (incident.occurred_at, incident.reports[0].at if incident.reports else None) if t is not None]
        if any(clock(t, service.zone, "%Y-%m-%d") == day for t in times):
            found.append({"id": incident.id, "summary": incident.reports[-1].summary if incident.reports else "",
                          "type": incident.type, "place": incident.place})
    return found


async def site_page(request: web.Request) -> web.Response:
    """`GET /duty/sites/{site}`: the day's report (form for the site's own people), versions, reminders, handovers."""
    identity = signed_in(request)
    site = _site(request, identity)
    service = request.app[DUTY]
    day = _day(request, service)
    report = service.book.reports.get((site, day))
    roster = service.book.rosters.get((site, day))
    state = _state(request, identity, day, site)
    return _render(request, "duty_site.html", **_context(
        request, identity, site=request.app[SERVICES].sites.get(site), day=day, today=service.today(), state=state,
        row=state["rows"][0] if state["rows"] else None, report=report_info(report, service.zone),
        versions=[{"at": clock(v.at, service.zone, "%Y-%m-%d %H:%M:%S"), "by": v.actor, "all_well": v.all_well,
                   "incidents": v.incidents, "text": v.text, "officer": v.officer, "leader": v.leader,
                   "signed": report is not None and n == report.signed_version}
                  for n, v in enumerate(report.versions if report else (), start=1)],
        leader=identity.site == site and identity.can("sign"), signs=service.signs(identity),
        signed=request.query.get("signed") == "1",
        roster=roster, incidents=_incidents(request, site, day), own=identity.site == site,
        reporting=site in service.reporting, filed=request.query.get("filed") == "1",
        handovers=[{"at": clock(n.at, service.zone), "by": n.actor, "text": n.text}
                   for n in service.book.handovers.get((site, day), ())]))


async def roster_page(request: web.Request) -> web.Response:
    """`GET /duty/sites/{site}/roster?day=`: the week's duty officers and leaders (editable by the site's people)."""
    identity = signed_in(request)
    site = _site(request, identity)
    service = request.app[DUTY]
    try:
        day = service.checked_day(request.query.get("day") or None, ahead=62)
    except RequestError as exc:
        raise http_error(exc) from None
    days = week_of(day)
    week = [{"day": d, "roster": service.book.rosters.get((site, d)), "today": d == service.today()} for d in days]
    return _render(request, "duty_roster.html", **_context(
        request, identity, site=request.app[SERVICES].sites.get(site), week=week, day=day,
        prev_week=shift_day(days[0], -7), next_week=shift_day(days[0], 7),
        own=identity.site == site or identity.can("admin")))


def add_routes(app: web.Application) -> None:
    """Register the duty pages."""
    r = app.router
    r.add_get("/duty", board_page)
    r.add_get("/duty/state.json", state_json)
    r.add_get("/duty/sites/{site}", site_page)
    r.add_get("/duty/sites/{site}/roster", roster_page)
