"""A recording's files on disk: where they are, what they take, the free space, and their check
against the hashes of the manifest."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from media.segments import sha256_file
from server.errors import NotFound
from server.recording.domain import FoldError, Session, fold
from server.store import Store, StoredEvent


def stream_of(session_id: str) -> str:
    """The event stream of one recording session."""
    return f"recording:{session_id}"


def free_bytes(path: Path) -> int:
    """Free bytes (for an unprivileged writer) on the file system that holds `path` (or would)."""
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    return shutil.disk_usage(probe).free


def directory_bytes(path: Path) -> int:
    """What the files under `path` take."""
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.stat(os.path.join(root, name)).st_size
            except OSError:
                continue
    return total


@dataclass(frozen=True)
class Verdict:
    """One segment checked against its manifest hash."""

    track: str
    index: int
    file: str
    status: str  # "verified", "tampered", "missing", "lost", "writing"
    sha256: str | None
    actual: str | None


def segment_path(root: Path, session: Session, track: str, file: str) -> Path:
    """Where a segment file of a session is (or was)."""
    return root / session.room / session.id / track / file


def verify(root: Path, session: Session) -> list[Verdict]:
    """Every segment of `session` under `root` checked against the hash in its manifest."""
    verdicts = []
    for track in session.tracks.values():
        for segment in track.segments:
            path = segment_path(root, session, track.id, segment.file)
            if segment.state != "whole":
                verdicts.append(Verdict(track.id, segment.index, segment.file, segment.state, None, None))
            elif not path.is_file():
                verdicts.append(Verdict(track.id, segment.index, segment.file, "missing", segment.sha256, None))
            else:
                actual = sha256_file(path)
                status = "verified" if actual == segment.sha256 else "tampered"
                verdicts.append(Verdict(track.id, segment.index, segment.file, status, segment.sha256, actual))
    return verdicts


async def read_session(store: Store, session_id: str) -> Session:
    """A session folded from its stream; NotFound when it has none (or no readable start)."""
    events: list[StoredEvent] = []
    after: str | None = None
    while True:
        batch = await store.read_events(stream_of(session_id), after=after, limit=1000)
        events += batch
        if len(batch) < 1000:
            break
        after = batch[-1].id
    if not events:
        raise NotFound("unknown_recording", f"no recording {session_id!r}")
    try:
        return fold(events)
    except FoldError as exc:
        raise NotFound("unknown_recording", f"recording {session_id!r} cannot be read: {exc}") from None
