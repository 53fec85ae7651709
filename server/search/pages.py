"""The search page: a query, filters by kind, site and period, and the hits with the match highlighted."""

from __future__ import annotations

from aiohttp import web

from server.duty.days import BadDay, deadline_of, shift_day
from server.duty.keys import DUTY
from server.duty.views import clock
from server.pages import _me, _render, _sites
from server.search.domain import KINDS
from server.search.keys import SEARCH
from server.services import SERVICES
from server.web_auth import signed_in

MAX_QUERY = 200


async def search_page(request: web.Request) -> web.Response:
    """`GET /search?q=&kind=&site=&from=&to=`."""
    identity = signed_in(request)
    query = request.query.get("q", "")[:MAX_QUERY]
    kinds = [k for k in request.query.getall("kind", []) if k in KINDS]
    site = request.query.get("site") or None
    zone = request.app[DUTY].zone
    first, last = request.query.get("from", ""), request.query.get("to", "")
    try:
        start = deadline_of(first, "00:00", zone) if first else None
        end = deadline_of(shift_day(last, 1), "00:00", zone) if last else None
    except BadDay as exc:
        raise web.HTTPBadRequest(text=f"bad_day: {exc}\n") from None
    hits = await request.app[SEARCH].find(identity, query, kinds=kinds, site=site, start=start, end=end) if query.strip() else []
    names = _sites(request.app[SERVICES])
    rows = [{"kind": h.record.kind, "kind_names": KINDS[h.record.kind], "title": h.record.title, "url": h.record.url,
             "when": clock(h.record.at, zone, "%Y-%m-%d %H:%M"), "before": h.before, "match": h.match, "after": h.after,
             "sites": [names.get(s, {}).get("name_zh", s) for s in h.record.sites[:3]]} for h in hits]
    return _render(request, "search.html", me=_me(identity), sites=names, q=query, kinds=KINDS, chosen=kinds, site=site or "",
                   first=first, last=last, rows=rows, searched=bool(query.strip()))


def add_routes(app: web.Application) -> None:
    """Register the search page."""
    app.router.add_get("/search", search_page)
