"""Exports of directives: one or a date range, as CSV (one row per recipient) and JSON (with timeline)."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections.abc import Callable
from typing import Any, Final

import msgspec
from aiohttp import web

from server.command.domain import Directive
from server.command.keys import COMMAND
from server.command.pages import identity_or_login, people_names, time_formatter, visible_directive, who
from server.command.views import directive_info, event_info, recipient_info
from server.services import SERVICES
from server.spreadsheet import csv_text

# The records of this system start in this century; a range past these years is a mistake (and
# 9999-12-31 plus a day overflowed into a 500).
FIRST_YEAR: Final[int] = 2000
YEARS_AHEAD: Final[int] = 1

CSV_HEADER = [
    "directive_id", "class", "title", "issuer", "issuer_name", "issued_at", "ack_by", "feedback_by", "status",
    "site", "site_name", "stage", "delivered_at", "read_at", "acknowledged_at", "done_at", "overdue", "feedback",
]


def csv_rows(d: Directive, sites: list[str], names: dict[str, str], fmt: Callable[[float | None], str],
             people: dict[str, str] | None = None) -> list[list[str]]:
    """One row per recipient the caller may see; `people` names the issuer as a person reads it."""
    rows = []
    for site in sites:
        r = d.recipients[site]
        feedback = " | ".join(f"{fmt(f.at)} {f.text}{' [photo ' + f.photo + ']' if f.photo else ''}{' (done)' if f.final else ''}"
                              for f in r.feedback)
        issuer = who(d.issuer, d.issuer_site, people=people or {}, sites=names)
        rows.append([d.id, d.cls, d.title, d.issuer, issuer, fmt(d.issued_at), fmt(d.ack_by), fmt(d.feedback_by), d.status,
                     site, names.get(site, site), r.stage, fmt(r.delivered_at), fmt(r.read_at),
                     fmt(r.acknowledged_at), fmt(r.done_at), ",".join(r.overdue), feedback])
    return rows


def _csv(rows: list[list[str]], filename: str) -> web.Response:
    # csv_text adds the BOM (spreadsheets read the Chinese text as UTF-8) and defuses formulas.
    return web.Response(body=csv_text(CSV_HEADER, rows).encode(), content_type="text/csv", charset="utf-8",
                        headers={"Content-Disposition": f'attachment; filename="{filename}"'})


def _json_of(request: web.Request, d: Directive, sites: list[str]) -> dict[str, Any]:

    shown = set(sites)
    timeline = [event_info(e) for e in request.app[COMMAND].service.timeline.get(d.id, [])]
    timeline = [e for e in timeline
                if e.kind in ("issued", "updated", "cancelled") or e.site in shown or shown & set(e.data.get("sites", []))]
    return {"directive": directive_info(d), "recipients": [recipient_info(d.recipients[s]) for s in sites],
            "timeline": timeline}


def _names(request: web.Request) -> dict[str, str]:
    return {s.id: f"{s.name_zh} {s.name_en}" for s in request.app[SERVICES].config.sites}


async def directive_csv(request: web.Request) -> web.Response:
    """`GET /command/directives/{directive}/export.csv`."""
    identity = identity_or_login(request)
    d, sites = visible_directive(request, identity)
    fmt = time_formatter(request.app[SERVICES].config.city.timezone)
    people = people_names(request.app[SERVICES])
    return _csv(csv_rows(d, sites, _names(request), fmt, people), f"directive-{d.id}.csv")


async def directive_json(request: web.Request) -> web.Response:
    """`GET /command/directives/{directive}/export.json`."""
    identity = identity_or_login(request)
    d, sites = visible_directive(request, identity)
    return web.Response(body=msgspec.json.encode(_json_of(request, d, sites)), content_type="application/json")


def _range(request: web.Request) -> tuple[float, float]:
    tz = zoneinfo.ZoneInfo(request.app[SERVICES].config.city.timezone)
    try:
        start = dt.date.fromisoformat(request.query["from"])
        end = dt.date.fromisoformat(request.query.get("to", request.query["from"]))
    except (KeyError, ValueError):
        raise web.HTTPBadRequest(text="bad_range: give ?from=YYYY-MM-DD and optionally &to=YYYY-MM-DD\n") from None
    if end < start:
        raise web.HTTPBadRequest(text="bad_range: 'to' is before 'from'\n")
    last_year = dt.datetime.fromtimestamp(request.app[SERVICES].scheduler.clock.now(), tz).year + YEARS_AHEAD
    if start.year < FIRST_YEAR or end.year > last_year:
        raise web.HTTPBadRequest(text=f"bad_range: dates must lie in the years {FIRST_YEAR} to {last_year}\n")
    begin = dt.datetime.combine(start, dt.time(), tz).timestamp()
    finish = dt.datetime.combine(end + dt.timedelta(days=1), dt.time(), tz).timestamp()
    return begin, finish


def _in_range(request: web.Request) -> list[Directive]:

    identity = identity_or_login(request)
    begin, finish = _range(request)
    directives = request.app[COMMAND].service.ledger.directives.values()
    mine = [d for d in directives if d.issuer == identity.identity and begin <= d.issued_at < finish]
    return sorted(mine, key=lambda d: d.issued_at)


async def range_csv(request: web.Request) -> web.Response:
    """`GET /command/export.csv?from=&to=`: the caller's directives issued in that range."""
    fmt = time_formatter(request.app[SERVICES].config.city.timezone)
    names = _names(request)
    people = people_names(request.app[SERVICES])
    rows = [row for d in _in_range(request) for row in csv_rows(d, list(d.recipients), names, fmt, people)]
    return _csv(rows, f"directives-{request.query.get('from')}-{request.query.get('to', request.query.get('from'))}.csv")


async def range_json(request: web.Request) -> web.Response:
    """`GET /command/export.json?from=&to=`."""
    body = [_json_of(request, d, list(d.recipients)) for d in _in_range(request)]
    return web.Response(body=msgspec.json.encode(body), content_type="application/json")


def add_routes(app: web.Application) -> None:
    """Register the export routes."""
    app.router.add_get("/command/directives/{directive}/export.csv", directive_csv)
    app.router.add_get("/command/directives/{directive}/export.json", directive_json)
    app.router.add_get("/command/export.csv", range_csv)
    app.router.add_get("/command/export.json", range_json)
