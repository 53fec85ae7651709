"""The roll-call's place on the app: typed keys to its service and its schedules."""

from __future__ import annotations

from aiohttp import web

from server.rollcall.schedules import ScheduleRunner
from server.rollcall.service import RollCallService

ROLLCALLS = web.AppKey("rollcalls", RollCallService)
SCHEDULES = web.AppKey("rollcall_schedules", ScheduleRunner)
