"""Search's place on the app."""

from __future__ import annotations

from aiohttp import web

from server.search.service import SearchService

SEARCH = web.AppKey("search", SearchService)
