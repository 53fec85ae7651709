"""The period a review or a dashboard shows (`?from=&to=`), its presets, and who may look at it."""

from __future__ import annotations

from aiohttp import web

from server.accountability.service import AccountabilityService
from server.auth import Identity
from server.duty.days import parse_day, shift_day
from server.duty.views import sees_board
from server.errors import RequestError, http_error
from server.web_auth import signed_in


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
