"""Roll-call pages: start form and list, live board, printable report, CSV/JSON, site history, schedules."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import msgspec
from aiohttp import web

from server.auth import AuthError, Identity
from server.config import RollCallSchedule
from server.errors import RequestError, http_error
from server.pages import _me, _render, _sites
from server.cron import local_time
from server.rollcall.schedule import TargetError, resolve_sites, schedule_zone
from server.recording.keys import RECORDINGS
from server.rollcall.keys import ROLLCALLS, SCHEDULES
from server.rollcall.service import require_caller
from server.rollcall.views import as_csv, as_json, local, rows
from server.services import SERVICES
from server.web_auth import page_identity

RID = "{rid:[0-9a-f]{12}}"


def _identity(request: web.Request, *, caller: bool = True) -> Identity:
    try:
        identity, _ = page_identity(request)
    except AuthError as exc:
        raise http_error(exc) from None
    if identity is None:
        raise web.HTTPSeeOther(f"/login?next={quote(request.path_qs, safe='')}")
    if caller:
        try:
            require_caller(identity)
        except AuthError as exc:
            raise http_error(exc) from None
    return identity


def _context(request: web.Request, identity: Identity, **extra: Any) -> dict[str, Any]:
    services = request.app[SERVICES]
    return {"me": _me(identity), "sites": _sites(services), "token": request.query.get("token", ""), **extra}


async def _rollcall(request: web.Request) -> Any:
    try:
        return await request.app[ROLLCALLS].get(request.match_info["rid"])
    except RequestError as exc:
        raise http_error(exc) from None


async def list_page(request: web.Request) -> web.Response:
    """`GET /rollcalls`: start a roll-call; the open ones and the history."""
    identity = _identity(request)
    services = request.app[SERVICES]
    history = await request.app[ROLLCALLS].history(limit=50)
    config = services.config
    counties = [s for s in config.sites if s.kind == "county"]
    return _render(request, "rollcall_list.html", **_context(
        request, identity, history=history, groups=config.groups, all_sites=config.sites, counties=counties,
        rooms=config.rooms, room=request.query.get("room", ""), local=lambda t: local(config, t, "%m-%d %H:%M")))


async def _start(request: web.Request, form: dict[str, Any], identity: Identity) -> Any:
    services = request.app[SERVICES]
    try:
        sites = resolve_sites(services.sites, services.config, sites=form.get("sites") or [], group=form.get("group") or None,
                              subtree=form.get("subtree") or None)
        window = float(form.get("window") or 30)
        grace = float(15 if form.get("grace") in (None, "") else form["grace"])
    except (TargetError, ValueError, TypeError) as exc:  # TypeError: a JSON list or object where a number goes
        raise web.HTTPBadRequest(text=f"bad_request: {exc}\n") from None
    if not 0 < window <= 3600 or not 0 <= grace <= 3600:
        raise web.HTTPBadRequest(text="bad_request: window must be in (0, 3600] s, grace in [0, 3600] s\n")
    mode = "all" if form.get("mode") == "all" else "sequence"
    try:
        return await request.app[ROLLCALLS].begin(
            actor=identity.identity, caller_site=identity.site, sites=sites, mode=mode, window=window, grace=grace,
            title=str(form.get("title") or "")[:200], room=form.get("room") or None)
    except RequestError as exc:
        raise http_error(exc) from None


async def start_form(request: web.Request) -> web.Response:
    """`POST /rollcalls` (form): start, then show the live board."""
    identity = _identity(request)
    post = await request.post()
    form: dict[str, Any] = {key: post.get(key) for key in ("group", "subtree", "mode", "window", "grace", "title", "room")}
    form["sites"] = [str(s) for s in post.getall("sites", [])]
    rollcall = await _start(request, form, identity)
    raise web.HTTPSeeOther(f"/rollcalls/{rollcall.id}")


async def start_api(request: web.Request) -> web.Response:
    """`POST /api/rollcalls` (JSON body like the form): start; returns the roll-call as JSON."""
    identity = _identity(request)
    try:
        form = await request.json()
        assert isinstance(form, dict)
    except (ValueError, AssertionError):
        raise web.HTTPBadRequest(text="bad_request: body must be a JSON object\n") from None
    rollcall = await _start(request, form, identity)
    services = request.app[SERVICES]
    return web.json_response(as_json(services.config, services.sites, rollcall, services.scheduler.clock.now()), status=201)


async def board_page(request: web.Request) -> web.Response:
    """`GET /rollcalls/{id}`: the live board (polls the JSON)."""
    identity = _identity(request)
    rollcall = await _rollcall(request)
    return _render(request, "rollcall_board.html", **_context(request, identity, rc=rollcall))


async def json_export(request: web.Request) -> web.Response:
    """`GET /rollcalls/{id}.json`."""
    _identity(request)
    services = request.app[SERVICES]
    data = as_json(services.config, services.sites, await _rollcall(request), services.scheduler.clock.now())
    return web.json_response(data, dumps=lambda d: msgspec.json.encode(d).decode())


async def csv_export(request: web.Request) -> web.Response:
    """`GET /rollcalls/{id}.csv`."""
    _identity(request)
    rollcall = await _rollcall(request)
    return web.Response(text=as_csv(request.app[SERVICES].config, request.app[SERVICES].sites, rollcall), content_type="text/csv", charset="utf-8",
                        headers={"Content-Disposition": f'attachment; filename="rollcall-{rollcall.id}.csv"'})


async def report_page(request: web.Request) -> web.Response:
    """`GET /rollcalls/{id}/report`: printable, no script."""
    identity = _identity(request)
    rollcall = await _rollcall(request)
    config = request.app[SERVICES].config
    recordings = request.app.get(RECORDINGS)  # the roll-call's room on record, as evidence
    recording = await recordings.player_at(rollcall.room, rollcall.started_at) if recordings is not None and rollcall.room else None
    return _render(request, "rollcall_report.html", **_context(
        request, identity, rc=rollcall, rows=rows(config, request.app[SERVICES].sites, rollcall), totals=rollcall.totals(),
        started=local(config, rollcall.started_at), closed=local(config, rollcall.closed_at), recording=recording))


async def action(request: web.Request) -> web.Response:
    """`POST /rollcalls/{id}/excuse` (site, reason) and `/close`: then back to the board."""
    identity = _identity(request)
    service = request.app[ROLLCALLS]
    rid = request.match_info["rid"]
    post = await request.post()
    try:
        if request.match_info["verb"] == "close":
            await service.finish(rid, actor=identity.identity)
        else:
            reason = str(post.get("reason", "")).strip()
            if not reason:
                raise RequestError("reason_required", "an excuse needs a reason")
            await service.excuse(rid, site=str(post.get("site", "")), reason=reason[:500], actor=identity.identity)
    except RequestError as exc:
        raise http_error(exc) from None
    raise web.HTTPSeeOther(f"/rollcalls/{rid}")


async def snapshot(request: web.Request) -> web.StreamResponse:
    """`GET /rollcalls/snapshots/{sha256}.jpg`: evidence pictures, for logged-in users."""
    _identity(request, caller=False)
    path = request.app[ROLLCALLS].files.path(request.match_info["name"])
    if path is None:
        raise web.HTTPNotFound(text="unknown_snapshot\n")
    return web.FileResponse(path, headers={"Cache-Control": "private, max-age=86400", "Content-Type": "image/jpeg"})


async def site_history(request: web.Request) -> web.Response:
    """`GET /rollcalls/sites/{site}`: every roll-call that called the site; its own users may see it too."""
    site = request.match_info["site"]
    identity = _identity(request, caller=False)
    if identity.site != site:
        _identity(request)
    config = request.app[SERVICES].config
    found = request.app[SERVICES].sites.find(site)
    if found is None:
        raise web.HTTPNotFound(text=f"unknown_site: {site}\n")
    history = await request.app[ROLLCALLS].history(site=site)
    entries = [(rc, rc.results[site]) for rc in history]
    return _render(request, "rollcall_site.html", **_context(
        request, identity, site=found, entries=entries, local=lambda t: local(config, t)))


async def schedules_page(request: web.Request) -> web.Response:
    """`GET /rollcalls/schedules`: the schedules in force, their next run, and an edit form."""
    identity = _identity(request)
    runner = request.app[SCHEDULES]
    config = request.app[SERVICES].config
    schedules = await runner.schedules()
    nexts = {s.id: local_time(runner.next_at[s.id], schedule_zone(config, s)) for s in schedules if s.id in runner.next_at}
    editing = next((s for s in schedules if s.id == request.query.get("edit")), None)
    return _render(request, "rollcall_schedules.html", **_context(
        request, identity, schedules=schedules, nexts=nexts, editing=editing, groups=config.groups,
        rooms=config.rooms, error=request.query.get("error", "")))


async def schedule_save(request: web.Request) -> web.Response:
    """`POST /rollcalls/schedules`: add or change a schedule (validated like the configuration)."""
    identity = _identity(request)
    post = await request.post()
    raw: dict[str, Any] = {k: str(v).strip() for k, v in post.items() if k not in ("sites", "enabled") and str(v).strip()}
    sites = [s.strip() for s in str(post.get("sites", "")).replace(",", " ").split() if s.strip()]
    if sites:
        raw["sites"] = sites
    raw["enabled"] = post.get("enabled") == "on"
    try:
        for key in ("window", "grace"):
            if key in raw:
                raw[key] = float(raw[key])
        schedule = msgspec.convert(raw, type=RollCallSchedule)
        await request.app[SCHEDULES].save(schedule, actor=identity.identity)
    except (msgspec.ValidationError, ValueError, RequestError) as exc:
        message = exc.message if isinstance(exc, RequestError) else str(exc)
        raise web.HTTPSeeOther(f"/rollcalls/schedules?error={quote(message)}") from None
    raise web.HTTPSeeOther("/rollcalls/schedules")


async def schedule_delete(request: web.Request) -> web.Response:
    """`POST /rollcalls/schedules/{id}/delete`."""
    identity = _identity(request)
    try:
        await request.app[SCHEDULES].delete(request.match_info["sid"], actor=identity.identity)
    except RequestError as exc:
        raise http_error(exc) from None
    raise web.HTTPSeeOther("/rollcalls/schedules")


def add_routes(app: web.Application) -> None:
    """Register the roll-call pages (fixed paths before the id patterns)."""
    r = app.router
    r.add_get("/rollcalls", list_page)
    r.add_post("/rollcalls", start_form)
    r.add_post("/api/rollcalls", start_api)
    r.add_get("/rollcalls/schedules", schedules_page)
    r.add_post("/rollcalls/schedules", schedule_save)
    r.add_post("/rollcalls/schedules/{sid}/delete", schedule_delete)
    r.add_get("/rollcalls/snapshots/{name}.jpg", snapshot)
    r.add_get("/rollcalls/sites/{site}", site_history)
    r.add_get(f"/rollcalls/{RID}.json", json_export)
    r.add_get(f"/rollcalls/{RID}.csv", csv_export)
    r.add_get(f"/rollcalls/{RID}/report", report_page)
    r.add_post(f"/rollcalls/{RID}/{{verb:excuse|close}}", action)
    r.add_get(f"/rollcalls/{RID}", board_page)
