"""Roll-call evidence: which video is really arriving, and its JPEG snapshot kept as a file by content hash."""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import uuid
import time
from collections.abc import Iterable
from concurrent.futures import Executor
from pathlib import Path

from media.publication import Publication
from media.snapshot import snapshot_jpeg

VIDEO_FRESH_SECONDS = 2.0  # "video actually arriving": a packet within this long
KEYFRAME_FRESH_SECONDS = 2.0  # an older cached keyframe is not evidence of the moment of the answer
SNAPSHOT_TIMEOUT = 2.0
_NAME = re.compile(r"^[0-9a-f]{64}$")


def live_video(publications: Iterable[Publication], owner: str, *, now: float | None = None) -> Publication | None:
    """`owner`'s video publication whose packets arrived within the last 2 s, not blocked, not muted."""
    now = time.monotonic() if now is None else now
    for publication in publications:
        if (
            publication.owner == owner
            and publication.kind == "video"
            and not publication.closed
            and not publication.blocked
            and not publication.muted
            and publication.last_packet_at is not None
            and now - publication.last_packet_at <= VIDEO_FRESH_SECONDS
        ):
            return publication
    return None


async def capture(publication: Publication, executor: Executor) -> bytes:
    """A JPEG of the publication now: the cached keyframe if it is recent, else one asked for (within 2 s)."""
    cached = publication.keyframe
    fresh = cached is None or time.monotonic() - cached.at > KEYFRAME_FRESH_SECONDS
    return await snapshot_jpeg(publication, fresh=fresh, timeout=SNAPSHOT_TIMEOUT, executor=executor)


class SnapshotFiles:
    """JPEG files under a directory, named by their sha256; the event log holds only the name."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def save(self, jpeg: bytes) -> str:
        """Write the JPEG (atomically, durably) and return its name; runs in a worker thread."""
        name = hashlib.sha256(jpeg).hexdigest()
        path = self.directory / f"{name}.jpg"
        if not path.exists():
            self.directory.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{uuid.uuid4().hex}.tmp")
            with open(tmp, "wb") as f:
                f.write(jpeg)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        return name

    def path(self, name: str) -> Path | None:
        """The file of a snapshot name, or None for a name that is not a sha256 or has no file."""
        if not _NAME.match(name):
            return None
        path = self.directory / f"{name}.jpg"
        return path if path.is_file() else None

    async def save_async(self, jpeg: bytes, executor: Executor) -> str:
        """`save` in the executor: file I/O stays off the event loop."""
        return await asyncio.get_running_loop().run_in_executor(executor, self.save, jpeg)
