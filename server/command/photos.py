"""Feedback and report photos: JPEG or PNG, size-checked, decoded with Pillow, stored by their SHA-256.

Each photo's uploaders are recorded beside it (photo_owners.py): a site's uploads count against its
daily quota, and a photo no event references is removed a day after its last upload (photo_sweep.py).
"""

from __future__ import annotations

import hashlib
import io
import re
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Final

from PIL import Image, UnidentifiedImageError

from server.command.photo_owners import OWNERS_SUFFIX, Quota, Upload, atomic_write, owners_file, read_uploads, write_uploads
from server.errors import RequestError

DEFAULT_MAX_PHOTO_BYTES: Final[int] = 8 * 1024 * 1024
DEFAULT_QUOTA_BYTES: Final[int] = 256 * 1024 * 1024  # per site per day: some fifty full-size phone photos
# What a phone's camera app makes by default: 12 MP (4032x3024) on most, 24 MP (5712x4284) on
# recent iPhones. The 48-200 MP "full resolution" modes make files past the 8 MiB limit anyway.
# Decoding is what costs: a 7000x7000 PNG took 0.6 s and ~300 MB; at 25 MP a PNG is at most
# ~100 MB for one decode, and a JPEG is decoded at 1/8 scale (still reading every byte of it).
MAX_PIXELS: Final[int] = 25_000_000
_FORMATS: Final[dict[str, str]] = {"JPEG": "jpg", "PNG": "png"}
_NAME = re.compile(r"^[0-9a-f]{64}\.(jpg|png)$")


class PhotoRejected(RequestError):
    """An upload that is not a JPEG/PNG image, or has more pixels than a phone makes."""

    status = 400


class PhotoTooLarge(PhotoRejected):
    """An upload of more bytes than the photo limit."""

    status = 413


class PhotoStore:
    """Photos on disk under `<data dir>/photos`, named `<sha256>.<jpg|png>`; never in the event log."""

    def __init__(self, root: Path, max_bytes: int = DEFAULT_MAX_PHOTO_BYTES, quota_bytes: int = DEFAULT_QUOTA_BYTES) -> None:
        self.root = root
        self.max_bytes = max_bytes
        self.quota = Quota(quota_bytes)
        # One decode at a time: peak memory is one photo's pixels, whatever the number of uploads.
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="photo-check")
        self._lock = threading.Lock()  # the owners record and the quota change together

    def check(self, data: bytes) -> str:
        """The file extension of a valid image, or PhotoRejected naming what is wrong."""
        if len(data) > self.max_bytes:
            raise PhotoTooLarge("photo_too_large", f"photo of {len(data)} bytes exceeds the limit of {self.max_bytes} bytes")
        if not data:
            raise PhotoRejected("not_an_image", "the upload is empty")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                with Image.open(io.BytesIO(data)) as image:  # reads the header only
                    fmt = image.format or ""
                    if fmt not in _FORMATS:
                        raise PhotoRejected("not_an_image", f"only JPEG or PNG photos are accepted, not {fmt or 'this'}")
                    _check_pixels(*image.size)
                    if fmt == "JPEG":
                        image.draft("RGB", (image.width // 8, image.height // 8))
                    image.load()  # decode all of it: a truncated or corrupt file fails here
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombWarning,
                Image.DecompressionBombError) as exc:
            raise PhotoRejected("not_an_image", f"not a readable JPEG or PNG image: {exc}") from None
        return _FORMATS[fmt]

    def save(self, data: bytes, upload: Upload) -> str:
        """Check and store the photo (idempotent by content), recording `upload` as an owner; returns its name.

        PhotoQuotaExceeded when the upload would take its site past the daily quota; a site sending
        again a photo it owns is not charged again, and the photo's day before removal starts anew.
        """
        ext = self.check(data)
        name = f"{hashlib.sha256(data).hexdigest()}.{ext}"
        with self._lock:
            record = owners_file(self.root, name)
            earlier = read_uploads(record)
            if not any(u.site == upload.site for u in earlier):
                self.quota.charge(upload.site, len(data), upload.at)
            self._write(name, data)
            write_uploads(record, [*(u for u in earlier if u.site != upload.site), upload])
        return name

    def _write(self, name: str, data: bytes) -> None:
        target = self.root / name
        if not target.exists():
            self.root.mkdir(parents=True, exist_ok=True)
            atomic_write(target, data)

    def path(self, name: str) -> Path | None:
        """The file of a stored photo, or None for a bad or unknown name."""
        if not _NAME.match(name):
            return None
        target = self.root / name
        return target if target.is_file() else None

    def owners(self, name: str) -> frozenset[str]:
        """The sites that uploaded photo `name` (none for a bad name or a photo stored before owners were recorded)."""
        if not _NAME.match(name):
            return frozenset()  # never a path outside the photos directory
        # Read each time: another node sharing the data directory may have added an owner.
        return frozenset(u.site for u in read_uploads(owners_file(self.root, name)))

    def load(self) -> None:
        """Count the uploads of the owners records into the quota (at start-up, in a worker thread)."""
        uploads = [u for record in self.root.glob("*" + OWNERS_SUFFIX) for u in read_uploads(record)]
        with self._lock:
            for upload in sorted(uploads, key=lambda u: u.at):  # the quota drops the oldest first
                self.quota.add(upload.site, upload.at, upload.size)

    def last_uploads(self) -> dict[str, float]:
        """Every stored photo with the time of its latest upload (its file's time when none was recorded)."""
        stored: dict[str, float] = {}
        if not self.root.is_dir():
            return stored
        for path in self.root.iterdir():
            if _NAME.match(path.name):
                uploads = read_uploads(owners_file(self.root, path.name))
                stored[path.name] = max((u.at for u in uploads), default=path.stat().st_mtime)
        return stored

    def remove_stale(self, name: str, uploaded_before: float) -> bool:
        """Delete a photo and its owners record unless it was uploaded (again) since `uploaded_before`."""
        with self._lock:
            uploads = read_uploads(owners_file(self.root, name))
            if any(u.at >= uploaded_before for u in uploads):
                return False
            for path in (self.root / name, owners_file(self.root, name)):
                path.unlink(missing_ok=True)
            return True

    def close(self) -> None:
        """Stop the decoding worker."""
        self.executor.shutdown(wait=False, cancel_futures=True)


def _check_pixels(width: int, height: int) -> None:
    """Refuse, from the header alone, an image with more pixels than a phone's camera makes."""
    if width * height > MAX_PIXELS:
        raise PhotoRejected(
            "photo_too_many_pixels",
            f"photo of {width}x{height} pixels ({width * height / 1e6:.1f} MP) exceeds {MAX_PIXELS / 1e6:.0f} MP: "
            "send the camera's normal size")
