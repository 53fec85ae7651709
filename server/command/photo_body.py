"""Reading an uploaded photo off the request: streamed to the photo limit, raw body or multipart field `photo`.

The app-wide `client_max_size` (1 MiB, for SDP and JSON) does not apply here: this route reads the
stream itself and stops one byte past its own limit (`COMMAND_MAX_PHOTO_BYTES`, default 8 MiB).
"""

from __future__ import annotations

from typing import Final

from aiohttp import BodyPartReader, web

from server.command.photos import PhotoRejected, PhotoTooLarge

CHUNK: Final[int] = 64 * 1024
# Room for the multipart boundaries, part headers and small form fields around the photo.
MULTIPART_SLACK: Final[int] = 64 * 1024


def too_large(limit: int) -> PhotoTooLarge:
    """The refusal of a body past the limit, naming the limit."""
    return PhotoTooLarge("photo_too_large", f"a photo may be at most {limit} bytes ({limit / 2**20:.1f} MiB)")


async def read_photo(request: web.Request, limit: int) -> bytes:
    """The photo's bytes (at most `limit`), or PhotoTooLarge as soon as more arrive, or PhotoRejected."""
    if request.content_length is not None and request.content_length > limit + MULTIPART_SLACK:
        raise too_large(limit)
    if request.content_type.startswith("multipart/"):
        try:
            return await _multipart(request, limit)
        except ValueError as exc:  # aiohttp's word for a body that is not the multipart it claims
            raise PhotoRejected("bad_multipart", f"not a readable multipart body: {exc}") from None
    return await _raw(request, limit)


async def _raw(request: web.Request, limit: int) -> bytes:
    data = bytearray()
    while chunk := await request.content.read(CHUNK):  # one read returns what has arrived, not the whole body
        data += chunk
        if len(data) > limit:
            raise too_large(limit)
    return bytes(data)


async def _multipart(request: web.Request, limit: int) -> bytes:
    reader = await request.multipart()
    budget = limit + MULTIPART_SLACK  # every part counts, so other fields cannot stream without end
    while True:
        part = await reader.next()
        if part is None:
            raise PhotoRejected("no_photo", "send the image as the multipart field 'photo'")
        if not isinstance(part, BodyPartReader):
            raise PhotoRejected("no_photo", "send the image as the multipart field 'photo', not a nested multipart")
        data = bytearray()
        while chunk := await part.read_chunk(CHUNK):
            data += chunk
            budget -= len(chunk)
            if budget < 0 or (part.name == "photo" and len(data) > limit):
                raise too_large(limit)
        if part.name == "photo":
            return bytes(data)
