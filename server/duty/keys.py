"""The duty reports' place on the app: typed keys to the service and the deadline's runner."""

from __future__ import annotations

from aiohttp import web

from server.duty.deadline import DeadlineRunner
from server.duty.service import DutyService

DUTY = web.AppKey("duty", DutyService)
DEADLINE = web.AppKey("duty_deadline", DeadlineRunner)
