"""Who uploaded each photo, and a site's upload quota: a photo belongs to its uploaders, references cannot take it.

A photo is stored once by content (`<sha256>.<ext>`); the sites that uploaded those bytes are its
owners, recorded beside it in `<name>.owners.json` (site, identity, time, size) so every node that
shares the data directory reads the same record. Only an owner's events may reference a photo; a
photo stored before owners were recorded belongs to the site of its first reference in the log.
"""

from __future__ import annotations

import collections
import json
import os
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Final

from server.errors import RateLimited
from server.times import DAY

OWNERS_SUFFIX: Final[str] = ".owners.json"


class PhotoQuotaExceeded(RateLimited):
    """A site uploaded more photo bytes in the last day than its quota allows (429, with Retry-After)."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__("photo upload", retry_after)
        self.code, self.message = "photo_quota_exceeded", message


@dataclass(frozen=True)
class Upload:
    """One site's upload of a photo: who (site and verified identity), when (scheduler clock), how many bytes."""

    site: str
    identity: str
    at: float
    size: int


def owners_file(root: Path, name: str) -> Path:
    """Where the uploads of photo `name` are recorded."""
    return root / (name + OWNERS_SUFFIX)


def read_uploads(path: Path) -> list[Upload]:
    """The uploads recorded in `path`; none for a missing or unreadable record."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        return [Upload(str(u["site"]), str(u["identity"]), float(u["at"]), int(u["size"])) for u in raw["uploads"]]
    except (OSError, ValueError, KeyError, TypeError):
        return []


def write_uploads(path: Path, uploads: Sequence[Upload]) -> None:
    """Replace the record atomically (a reader sees the old or the new one, never half)."""
    atomic_write(path, json.dumps({"uploads": [asdict(u) for u in uploads]}).encode())


def atomic_write(path: Path, data: bytes) -> None:
    """Write `path` whole or not at all, synced to disk (a temporary file in its directory, renamed)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".part")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def effective_owners(owners: frozenset[str], refs: Sequence[tuple[str, str]]) -> frozenset[str]:
    """The recorded owners; for a photo from before owners were kept, the site of its first reference.

    `refs` are (directive or incident id, referencing site) in log order.
    """
    if not owners and refs:
        return frozenset({refs[0][1]})
    return owners


def rightful_targets(refs: Sequence[tuple[str, str]], owners: frozenset[str]) -> list[str]:
    """The directives and incidents whose reference to a photo counts: those made by an owner site."""
    owners = effective_owners(owners, refs)
    return [target for target, site in refs if site in owners]


class Quota:
    """Photo bytes each site uploaded within the last day, against a limit (0: no limit)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._recent: dict[str, collections.deque[tuple[float, int]]] = {}

    def add(self, site: str, at: float, size: int) -> None:
        """Count an upload (also used to rebuild the count from the records at start-up)."""
        self._recent.setdefault(site, collections.deque()).append((at, size))

    def used(self, site: str, now: float) -> int:
        """Bytes the site uploaded in the day before `now`."""
        recent = self._recent.get(site)
        if recent is None:
            return 0
        while recent and recent[0][0] <= now - DAY:
            recent.popleft()
        return sum(size for _, size in recent)

    def charge(self, site: str, size: int, now: float) -> None:
        """Count `size` more bytes for the site, or PhotoQuotaExceeded saying when it may upload again."""
        used = self.used(site, now)
        if self.limit and used + size > self.limit:
            recent = self._recent.get(site) or collections.deque([(now, 0)])
            wait = max(1, int(recent[0][0] + DAY - now))
            raise PhotoQuotaExceeded(
                f"site {site!r} uploaded {used} bytes of photos in the last 24 h; the quota is {self.limit} bytes "
                f"per day: try again in {wait} s", wait)
        self.add(site, now, size)
