"""The statistics' place on the app."""

from __future__ import annotations

from aiohttp import web

from server.stats.service import StatsService

STATS = web.AppKey("stats", StatsService)
