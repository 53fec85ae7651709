"""Feedback and report photos: JPEG or PNG, size-checked, decoded with Pillow, stored by their SHA-256."""

from __future__ import annotations

import hashlib
import io
import os
import re
import tempfile
import warnings
from pathlib import Path
from typing import Final

from PIL import Image, UnidentifiedImageError

from server.errors import RequestError

DEFAULT_MAX_PHOTO_BYTES: Final[int] = 8 * 1024 * 1024
MAX_PIXELS: Final[int] = 50_000_000
_FORMATS: Final[dict[str, str]] = {"JPEG": "jpg", "PNG": "png"}
_NAME = re.compile(r"^[0-9a-f]{64}\.(jpg|png)$")


class PhotoRejected(RequestError):
    """An upload that is not a JPEG/PNG image or is too large."""

    status = 400


class PhotoStore:
    """Photos on disk under `<data dir>/photos`, named `<sha256>.<jpg|png>`; never in the event log."""

    def __init__(self, root: Path, max_bytes: int = DEFAULT_MAX_PHOTO_BYTES) -> None:
        self.root = root
        self.max_bytes = max_bytes

    def check(self, data: bytes) -> str:
        """The file extension of a valid image, or PhotoRejected naming what is wrong."""
        if len(data) > self.max_bytes:
            raise PhotoRejected("photo_too_large", f"photo of {len(data)} bytes exceeds {self.max_bytes} bytes")
        if not data:
            raise PhotoRejected("not_an_image", "the upload is empty")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                with Image.open(io.BytesIO(data)) as image:
                    fmt = image.format or ""
                    if fmt not in _FORMATS:
                        raise PhotoRejected("not_an_image", f"only JPEG or PNG photos are accepted, not {fmt or 'this'}")
                    width, height = image.size
                    if width * height > MAX_PIXELS:
                        raise PhotoRejected("photo_too_large", f"photo of {width}x{height} pixels is too large")
                    image.load()  # decode all of it: a truncated or corrupt file fails here
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombWarning,
                Image.DecompressionBombError) as exc:
            raise PhotoRejected("not_an_image", f"not a readable JPEG or PNG image: {exc}") from None
        return _FORMATS[fmt]

    def save(self, data: bytes) -> str:
        """Check and store the photo (idempotent by content); returns its name."""
        ext = self.check(data)
        name = f"{hashlib.sha256(data).hexdigest()}.{ext}"
        target = self.root / name
        if not target.exists():
            self.root.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.root, suffix=".part")
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(tmp, target)
            finally:
                if os.path.exists(tmp):
                    os.unlink(tmp)
        return name

    def path(self, name: str) -> Path | None:
        """The file of a stored photo, or None for a bad or unknown name."""
        if not _NAME.match(name):
            return None
        target = self.root / name
        return target if target.is_file() else None
