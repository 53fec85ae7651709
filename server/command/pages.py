"""Command pages: the console, a directive's detail and printable view, the incident board, photos."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from functools import partial
from typing import Any

from aiohttp import web

from server.auth import AuthError, Identity
from server.command.domain import CLASS_NAMES, Directive
from server.command.keys import COMMAND
from server.command.photo_body import read_photo
from server.command.photo_owners import Upload, rightful_targets
from server.command.reports import INCIDENT_TYPES
from server.command.service import CommandService
from server.command.views import Viewer, event_info, incident_concerns, may_see_directive
from server.errors import http_error
from server.pages import _me, _render, _sites
from server.services import SERVICES, Services
from server.times import format_time
from server.web_auth import bearer_identity, page_identity

STAGE_NAMES = {
    "sent": ("已发送", "Sent"), "delivered": ("已送达", "Delivered"), "read": ("已读", "Read"),
    "acknowledged": ("已签收", "Acknowledged"), "feedback": ("已反馈", "Feedback"), "done": ("已完成", "Done"),
}
EVENT_NAMES = {
    "issued": ("下达", "Issued"), "updated": ("更新", "Updated"), "cancelled": ("撤销", "Cancelled"),
    "delivered": ("送达", "Delivered"), "read": ("已读", "Read"), "acknowledged": ("签收", "Acknowledged"),
    "feedback": ("反馈", "Feedback"), "overdue": ("逾期", "Overdue"), "reminded": ("催办", "Reminded"),
    "report_filed": ("报送", "Report filed"), "incident_closed": ("结案", "Closed"), "incident_reopened": ("重新打开", "Reopened"),
    "report_revised": ("修改", "Revised"), "report_returned": ("退回", "Returned"), "report_signed": ("签发", "Signed off"),
    "report_forwarded": ("转报", "Forwarded"),
}


def request_identity(request: web.Request) -> Identity | None:
    """The caller of an HTTP request: a bearer token, a `?token=` device token, or the session cookie."""
    if request.headers.get("Authorization"):
        return bearer_identity(request)
    return page_identity(request)[0]


def identity_or_login(request: web.Request) -> Identity:
    try:
        identity = request_identity(request)
    except AuthError as exc:
        raise http_error(exc) from None
    if identity is None:
        raise web.HTTPSeeOther(f"/login?next={request.path}")
    return identity


def time_formatter(tz_name: str) -> Callable[[float | None], str]:
    """A Jinja filter: epoch seconds as local `YYYY-MM-DD HH:MM:SS` (— for none); never raises."""
    return partial(format_time, tz=tz_name, fmt="%Y-%m-%d %H:%M:%S", none="—")


def common(request: web.Request, identity: Identity) -> dict[str, Any]:
    services = request.app[SERVICES]
    return {
        "me": _me(identity), "sites": _sites(services), "fmt": time_formatter(services.config.city.timezone),
        "class_names": CLASS_NAMES, "stage_names": STAGE_NAMES, "event_names": EVENT_NAMES,
        "incident_types": INCIDENT_TYPES,
        "who": partial(who, people=people_names(services), sites={s.id: s.name_zh for s in services.config.sites}),
    }


def people_names(services: Services) -> dict[str, str]:
    """Who an identity is, for people reading a record: configured users by display name."""
    return {u.username: u.display_name for u in services.config.users}


def who(actor: str | None, site: str | None = None, *, people: dict[str, str], sites: dict[str, str] | None = None) -> str:
    """An event's actor as a person reads it: a user's name; a device by its site (its id is nobody's
    name); the server itself as the system."""
    if not actor or actor == "system":
        return "系统 System"
    if actor in people:
        return people[actor]
    place = (sites or {}).get(site or "", "")
    return f"{place} 设备终端 Device".strip()


def _tree(request: web.Request) -> list[dict[str, Any]]:
    return [{"id": s.id, "name_zh": s.name_zh, "name_en": s.name_en, "kind": s.kind, "parent": s.parent}
            for s in request.app[SERVICES].config.sites]


async def console_page(request: web.Request) -> web.Response:
    """`GET /command`: compose, recipient tree, live matrix (grant "issue" only)."""
    identity = identity_or_login(request)
    if not identity.can("issue"):
        raise web.HTTPForbidden(text="forbidden: the command console needs the 'issue' grant\n")
    token = request.query.get("token")
    ctx = common(request, identity)
    groups = [{"id": g.id, "name_zh": g.name_zh, "name_en": g.name_en, "sites": list(g.sites)}
              for g in request.app[SERVICES].config.groups]
    page_data = {"me": ctx["me"], "tree": _tree(request), "token": token, "classes": CLASS_NAMES,
                 "stages": STAGE_NAMES, "tz": request.app[SERVICES].config.city.timezone, "groups": groups}
    return _render(request, "console.html", page_data=page_data, **ctx)


def visible_directive(request: web.Request, identity: Identity) -> tuple[Directive, list[str]]:
    """The directive named in the path and the recipients the caller may see; 404 when none."""

    service = request.app[COMMAND].service
    d = service.ledger.directives.get(request.match_info["directive"])
    sites = None if d is None else may_see_directive(d, Viewer(identity.identity, identity.site), service.sites)
    if d is None or sites is None:
        raise web.HTTPNotFound(text="unknown_directive: no such directive visible to you\n")
    return d, sites


def _detail_context(request: web.Request) -> dict[str, Any]:

    identity = identity_or_login(request)
    d, sites = visible_directive(request, identity)
    service = request.app[COMMAND].service
    shown = set(sites)
    timeline = []
    for event in service.timeline.get(d.id, []):
        info = event_info(event)
        if event.kind in ("issued", "updated", "cancelled") or info.site in shown or shown & set(info.data.get("sites", [])):
            timeline.append(info)
    recipients = [d.recipients[s] for s in sites]
    token = request.query.get("token")
    return {**common(request, identity), "d": d, "recipients": recipients, "timeline": timeline,
            "is_issuer": d.issuer == identity.identity, "token_qs": f"?token={token}" if token else ""}


async def directive_page(request: web.Request) -> web.Response:
    """`GET /command/directives/{directive}`: header, recipients and the full timeline."""
    return _render(request, "directive.html", printable=False, **_detail_context(request))


async def directive_print(request: web.Request) -> web.Response:
    """`GET /command/directives/{directive}/print`: the same, laid out for paper."""
    return _render(request, "directive.html", printable=True, **_detail_context(request))


async def incidents_page(request: web.Request) -> web.Response:
    """`GET /command/incidents`: the incident board of the caller's level, and the report form."""

    identity = identity_or_login(request)
    service = request.app[COMMAND].service
    ctx = common(request, identity)
    page_data = {"me": ctx["me"], "token": request.query.get("token"), "types": INCIDENT_TYPES,
                 "sites": ctx["sites"], "tz": request.app[SERVICES].config.city.timezone,
                 "people": people_names(request.app[SERVICES]),
                 "sign_off": request.app[SERVICES].config.command.sign_off,
                 "urgent_types": list(request.app[SERVICES].config.command.urgent_types)}
    return _render(request, "incidents.html", page_data=page_data,
                   late_by_site=service.board.late_by_site, **ctx)


async def upload_photo(request: web.Request) -> web.Response:
    """`POST /command/photos`: the raw JPEG/PNG body (or multipart field `photo`); returns its name."""

    try:
        identity = request_identity(request)
    except AuthError as exc:
        raise http_error(exc) from None
    if identity is None:
        raise web.HTTPUnauthorized(text="unauthenticated: log in or give a device token\n")
    photos = request.app[COMMAND].photos
    clock = request.app[SERVICES].scheduler.clock
    try:
        data = await read_photo(request, photos.max_bytes)
        upload = Upload(identity.site, identity.identity, clock.now(), len(data))  # the owner: who sent it
        name = await asyncio.get_running_loop().run_in_executor(photos.executor, photos.save, data, upload)
    except Exception as exc:  # noqa: BLE001 - refused (400, 413, 429) or a disk problem (500)
        raise http_error(exc) from None
    return web.json_response({"photo": name, "url": f"/command/photos/{name}"}, status=201)


async def photo_file(request: web.Request) -> web.StreamResponse:
    """`GET /command/photos/{name}`: a stored photo, for anyone who may see what references it."""

    identity = identity_or_login(request)
    command = request.app[COMMAND]
    name = request.match_info["name"]
    path = command.photos.path(name)
    refused = web.HTTPNotFound(text="unknown_photo: no such photo visible to you\n")
    if path is None:
        raise refused
    owners = command.photos.owners(name)
    # The uploader sees its own photo; others through what references it, and only an owner's reference counts.
    service, viewer = command.service, Viewer(identity.identity, identity.site)
    if identity.site not in owners and not any(
        _may_see_target(service, viewer, target) for target in rightful_targets(service.photo_refs.get(name, []), owners)
    ):
        raise refused
    return web.FileResponse(path, headers={"Cache-Control": "private, max-age=86400"})


def _may_see_target(service: CommandService, viewer: Viewer, target: str) -> bool:
    """Whether `viewer` may see the directive or incident `target`."""
    directive = service.ledger.directives.get(target)
    if directive is not None:
        return may_see_directive(directive, viewer, service.sites) is not None
    incident = service.board.incidents.get(target)
    return incident is not None and incident_concerns(incident, viewer)


def add_routes(app: web.Application) -> None:
    """Register the command pages."""
    app.router.add_get("/command", console_page)
    app.router.add_get("/command/incidents", incidents_page)
    app.router.add_get("/command/directives/{directive}", directive_page)
    app.router.add_get("/command/directives/{directive}/print", directive_print)
    app.router.add_post("/command/photos", upload_photo)
    app.router.add_get("/command/photos/{name}", photo_file)
