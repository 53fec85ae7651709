"""Duty report actions from the pages' forms: file a report, keep the roster, note a handover, remind a site.

Each is one event in the duty log, confirmed only once stored; a refusal comes back to the page it
came from as `?error=`, with nothing recorded.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from urllib.parse import quote, urlencode

from aiohttp import web
from multidict import MultiDictProxy

from server.auth import AuthError
from server.duty.keys import DUTY
from server.errors import RequestError, wire_error
from server.web_auth import signed_in

MAX_FORM_FIELD = 8000  # characters of one form field read at most (the domain refuses what is longer than it takes)


def _field(form: MultiDictProxy[str | bytes | bytearray | web.FileField], key: str) -> str:
    value = form.get(key, "")
    return value[:MAX_FORM_FIELD] if isinstance(value, str) else ""


async def _then(back: str, action: Callable[[], Awaitable[object]], done: str = "") -> web.Response:
    """Carry out an action and send the browser back: to `back?done` or, refused, to `back?error=...`."""
    try:
        await action()
    except (RequestError, AuthError) as exc:
        code, message = wire_error(exc)
        joiner = "&" if "?" in back else "?"
        raise web.HTTPSeeOther(f"{back}{joiner}error={quote(f'{code}: {message}')}") from None
    raise web.HTTPSeeOther(f"{back}{('&' if '?' in back else '?') + done if done else ''}")


async def file_report(request: web.Request) -> web.Response:
    """`POST /duty/sites/{site}/report`: a version of the day's report."""
    identity = signed_in(request)
    site = request.match_info["site"]
    form = await request.post()
    day = _field(form, "day") or None
    incidents = [str(v) for v in form.getall("incidents", []) if isinstance(v, str) and v]
    back = f"/duty/sites/{quote(site)}" + (f"?{urlencode({'day': day})}" if day else "")
    return await _then(back, lambda: request.app[DUTY].file(
        identity, site=site, day=day, officer=_field(form, "officer"), leader=_field(form, "leader"),
        all_well=_field(form, "all_well") == "yes", incidents=incidents, text=_field(form, "text")), "filed=1")


async def sign(request: web.Request) -> web.Response:
    """`POST /duty/sites/{site}/sign`: the duty leader signs the draft off."""
    identity = signed_in(request)
    site = request.match_info["site"]
    form = await request.post()
    day = _field(form, "day") or None
    back = f"/duty/sites/{quote(site)}" + (f"?{urlencode({'day': day})}" if day else "")
    return await _then(back, lambda: request.app[DUTY].sign(identity, site=site, day=day), "signed=1")


async def send_back(request: web.Request) -> web.Response:
    """`POST /duty/sites/{site}/return`: the duty leader returns the draft with a comment."""
    identity = signed_in(request)
    site = request.match_info["site"]
    form = await request.post()
    day = _field(form, "day") or None
    back = f"/duty/sites/{quote(site)}" + (f"?{urlencode({'day': day})}" if day else "")
    return await _then(back, lambda: request.app[DUTY].send_back(identity, site=site, day=day, comment=_field(form, "comment")))


async def set_roster(request: web.Request) -> web.Response:
    """`POST /duty/sites/{site}/roster`: the duty officer and leader of one day."""
    identity = signed_in(request)
    site = request.match_info["site"]
    form = await request.post()
    day = _field(form, "day")
    back = f"/duty/sites/{quote(site)}/roster?{urlencode({'day': day})}"
    return await _then(back, lambda: request.app[DUTY].set_roster(
        identity, site=site, day=day, officer=_field(form, "officer"), leader=_field(form, "leader")))


async def handover(request: web.Request) -> web.Response:
    """`POST /duty/sites/{site}/handover`: a shift handover note of today."""
    identity = signed_in(request)
    site = request.match_info["site"]
    form = await request.post()
    return await _then(f"/duty/sites/{quote(site)}", lambda: request.app[DUTY].handover(
        identity, site=site, text=_field(form, "text")))


async def remind(request: web.Request) -> web.Response:
    """`POST /duty/remind`: 催办, remind one site that has not filed (grant `issue`)."""
    identity = signed_in(request)
    form = await request.post()
    day = _field(form, "day") or None
    back = "/duty" + (f"?{urlencode({'day': day})}" if day else "")
    return await _then(back, lambda: request.app[DUTY].remind(
        identity, site=_field(form, "site"), day=day, note=_field(form, "note")))


def add_routes(app: web.Application) -> None:
    """Register the duty actions."""
    r = app.router
    r.add_post("/duty/sites/{site}/report", file_report)
    r.add_post("/duty/sites/{site}/sign", sign)
    r.add_post("/duty/sites/{site}/return", send_back)
    r.add_post("/duty/sites/{site}/roster", set_roster)
    r.add_post("/duty/sites/{site}/handover", handover)
    r.add_post("/duty/remind", remind)
