"""An incident's page (审核签发): every report with its versions and review steps, and the forms that move it up.

The filing site's people revise a draft (or an urgent report not yet reviewed); its duty leader
(grant `sign`) returns a draft with a comment or signs it off; the level the incident last reached
forwards it one level up with its own comment (转报). Each action is one event in the command log,
checked by the fold and confirmed once stored; a refusal comes back to the page as `?error=`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any
from urllib.parse import quote

from aiohttp import web
from multidict import MultiDictProxy

from server.auth import AuthError, Forbidden, Identity
from server.command.domain import IllegalTransition
from server.command.keys import COMMAND
from server.command.pages import common, identity_or_login
from server.command.reports import Incident
from server.command.review import STATE_NAMES, STEP_NAMES
from server.command.service import Caller
from server.command.views import Viewer, incident_concerns
from server.errors import RequestError, wire_error
from server.pages import _render

MAX_FORM_FIELD = 8000  # characters of one form field read at most (the handlers refuse what is longer)
MAX_TEXT = 4000


def _field(form: MultiDictProxy[str | bytes | bytearray | web.FileField], key: str) -> str:
    value = form.get(key, "")
    return value[:MAX_FORM_FIELD] if isinstance(value, str) else ""


def _count(form: MultiDictProxy[str | bytes | bytearray | web.FileField], key: str) -> int:
    text = _field(form, key).strip() or "0"
    if not text.isdigit() or len(text) > 6:
        raise RequestError("bad_casualties", f"{key} must be a whole number ≥ 0")
    return int(text)


def _incident(request: web.Request, identity: Identity) -> Incident:
    """The incident of the path, if the caller may see it (404 otherwise: no hint that it exists)."""
    incident = request.app[COMMAND].service.board.incidents.get(request.match_info["incident"])
    if incident is None or not incident_concerns(incident, Viewer(identity.identity, identity.site)):
        raise web.HTTPNotFound(text="no such incident\n")
    return incident


async def incident_page(request: web.Request) -> web.Response:
    """`GET /command/incidents/{incident}`: the reports, their versions and review, the chain it went up."""
    identity = identity_or_login(request)
    incident = _incident(request, identity)
    own = identity.site == incident.site
    reports = incident.reports if own else incident.sent_reports()
    return _render(request, "incident.html", incident=incident, reports=reports, own=own,
                   leader=own and identity.can("sign"), forward_to=incident.forward_to()
                   if incident.reached and identity.site == incident.reached[-1] else None,
                   state_names=STATE_NAMES, step_names=STEP_NAMES, error=request.query.get("error", ""),
                   done=request.query.get("done", ""), **common(request, identity))


async def _act(request: web.Request, kind: str, data: Callable[[Identity, Incident], Mapping[str, object]],
               done: str, leader: bool = False) -> web.Response:
    """Record one review event for the caller and send the browser back to the incident's page."""
    identity = identity_or_login(request)
    incident = _incident(request, identity)
    back = f"/command/incidents/{quote(incident.id)}"
    service = request.app[COMMAND].service
    try:
        if leader and not (identity.can("sign") and identity.site == incident.site):
            raise Forbidden("only the site's duty leader (grant 'sign') reviews and signs its reports")
        fields = {"incident_id": incident.id, "site": identity.site, **data(identity, incident)}
        await service.record(Caller(identity, "web", request.remote or ""), kind, fields)
    except IllegalTransition as exc:
        raise web.HTTPSeeOther(f"{back}?error={quote(f'{exc.code}: {exc.message}')}") from None
    except (RequestError, AuthError) as exc:
        code, message = wire_error(exc)
        raise web.HTTPSeeOther(f"{back}?error={quote(f'{code}: {message}')}") from None
    raise web.HTTPSeeOther(f"{back}?done={done}")


def _text(form: MultiDictProxy[str | bytes | bytearray | web.FileField], key: str) -> str:
    value = _field(form, key)
    if len(value) > MAX_TEXT:
        raise RequestError("too_long", f"{key} exceeds {MAX_TEXT} characters")
    return value


async def revise(request: web.Request) -> web.Response:
    """`POST .../reports/{report}/revise`: a new version of a report by its site (every version kept)."""
    form = await request.post()

    def data(_: Identity, incident: Incident) -> Mapping[str, object]:
        photo = incident.report(request.match_info["report"]).photo
        return {"report_id": request.match_info["report"], "summary": _text(form, "summary"), "photo": photo,
                "comment": _text(form, "comment"),
                "casualties": {k: _count(form, k) for k in ("dead", "injured", "missing")}}
    return await _act(request, "report_revised", data, "revised")


async def return_report(request: web.Request) -> web.Response:
    """`POST .../reports/{report}/return`: the duty leader sends a draft back with a comment."""
    form = await request.post()
    return await _act(request, "report_returned", lambda _i, _n: {
        "report_id": request.match_info["report"], "comment": _text(form, "comment")}, "returned", leader=True)


async def sign(request: web.Request) -> web.Response:
    """`POST .../reports/{report}/sign`: the duty leader signs a draft off (it goes up) or an urgent report after."""
    form = await request.post()
    return await _act(request, "report_signed", lambda _i, _n: {
        "report_id": request.match_info["report"], "comment": _text(form, "comment")}, "signed", leader=True)


async def forward(request: web.Request) -> web.Response:
    """`POST /command/incidents/{incident}/forward`: the level that has it sends it one level up, with a comment."""
    form = await request.post()
    return await _act(request, "report_forwarded", lambda _i, _n: {"comment": _text(form, "comment")}, "forwarded")


def add_routes(app: web.Application) -> None:
    """Register the incident page and its review actions."""
    r = app.router
    r.add_get("/command/incidents/{incident}", incident_page)
    r.add_post("/command/incidents/{incident}/reports/{report}/revise", revise)
    r.add_post("/command/incidents/{incident}/reports/{report}/return", return_report)
    r.add_post("/command/incidents/{incident}/reports/{report}/sign", sign)
    r.add_post("/command/incidents/{incident}/forward", forward)

