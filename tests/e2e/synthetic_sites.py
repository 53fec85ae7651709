"""Many sites at once for the browser tests: Python participants publishing a pre-encoded test pattern.

Ten Chromium pages with fake cameras would take the machine; these cost next to nothing (the
pattern is encoded once and only packetized afterwards) and reach the browsers as real video.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from types import TracebackType

from synthetic.client import RoomClient
from synthetic.encoded import encode_video_loop, video_loop_track
from tests.e2e.conftest import ROOM, Server

START_TIMEOUT = 30.0


class SyntheticSites:
    """Sites (identity, site) in a room, publishing video from a thread of their own until the block ends."""

    def __init__(self, server: Server, sites: Sequence[tuple[str, str]], room: str = ROOM) -> None:
        self.server = server
        self.sites = list(sites)
        self.room = room
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, name="synthetic-sites", daemon=True)

    def __enter__(self) -> SyntheticSites:
        self._thread.start()
        if not self._ready.wait(START_TIMEOUT):
            raise TimeoutError(f"{len(self.sites)} synthetic sites did not publish within {START_TIMEOUT} s")
        if self._error is not None:
            raise RuntimeError("synthetic sites failed to start") from self._error
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=15)

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # reported to the test through __enter__
            self._error = exc
            self._ready.set()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        packets = encode_video_loop("VP8", width=320, height=180, fps=5, seconds=2, bitrate=150_000)
        clients: list[RoomClient] = []
        try:
            for identity, site in self.sites:
                token = self.server.device_token(identity, site, grants=("publish",))
                client = RoomClient(self.server.base_url, self.room, token, name=identity)
                clients.append(client)
                await client.connect()
                await client.publish({"camera": video_loop_track(packets, fps=5)})
            self._ready.set()
            await self._stop.wait()
        finally:
            await asyncio.gather(*(c.close() for c in clients), return_exceptions=True)
