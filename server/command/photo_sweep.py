"""Removing uploads nothing uses: a photo no event references, a day after its last upload, on the scheduler."""

from __future__ import annotations

import asyncio
import logging
from typing import Final

from server.command.photos import PhotoStore
from server.command.service import CommandService
from server.scheduler import Timer
from server.times import DAY

logger = logging.getLogger(__name__)

SWEEP_EVERY: Final[float] = 3600.0
KEEP_UNREFERENCED: Final[float] = DAY


class PhotoSweeper:
    """Every hour (by the scheduler's clock), removes the photos no event references that are over a day old."""

    def __init__(self, service: CommandService, photos: PhotoStore) -> None:
        self.service = service
        self.photos = photos
        self.removed = 0  # photos removed since start, for /metrics
        self._timer: Timer | None = None

    def start(self) -> None:
        """Arm the first sweep."""
        self._timer = self.service.services.scheduler.after(SWEEP_EVERY, self._run, name="photo-sweep")

    def close(self) -> None:
        """Cancel the next sweep."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    async def _run(self) -> None:
        try:
            await self.sweep()
        finally:
            self.start()

    async def sweep(self) -> list[str]:
        """Remove every unreferenced photo whose last upload is over a day old; returns their names."""
        loop = asyncio.get_running_loop()
        cutoff = self.service.clock.now() - KEEP_UNREFERENCED
        stored = await loop.run_in_executor(self.photos.executor, self.photos.last_uploads)
        stale = {name for name, at in stored.items() if at < cutoff and name not in self.service.photo_refs}
        if stale:
            # Another node may have folded events this one has not: the log itself has the last word.
            stale -= await self._referenced_in_log(stale)
        removed = [name for name in sorted(stale - self.service.photo_refs.keys())
                   if await loop.run_in_executor(self.photos.executor, self.photos.remove_stale, name, cutoff)]
        if removed:
            self.removed += len(removed)
            logger.info("unreferenced photos removed count=%d", len(removed))
        return removed

    async def _referenced_in_log(self, names: set[str]) -> set[str]:
        found: set[str] = set()
        async for page in self.service.read_pages(None):
            for event in page:
                photo = event.data.get("photo")
                if isinstance(photo, str) and photo in names:
                    found.add(photo)
        return found
