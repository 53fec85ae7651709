"""The recording's place on the app: a typed key to its service."""

from __future__ import annotations

from aiohttp import web

from server.recording.service import RecordingService

RECORDINGS = web.AppKey("recordings", RecordingService)
