"""The accountability records' place on the app."""

from __future__ import annotations

from aiohttp import web

from server.accountability.service import AccountabilityService

ACCOUNTABILITY = web.AppKey("accountability", AccountabilityService)
