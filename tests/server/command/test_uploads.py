"""Phone photos arrive whole up to the photo limit; pixel cap, daily quota, removal of unused uploads, ownership."""

from __future__ import annotations

import io
import json
import os
import struct
import zlib
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from PIL import Image

from server.command.photo_owners import Upload
from server.command.photo_sweep import KEEP_UNREFERENCED, SWEEP_EVERY
from server.command.photos import PhotoStore
from signaling.command import DirectiveAcknowledge, DirectiveFeedback, DirectiveIssue, ReportFile

from .conftest import CommandPlatform, Refused


def _jpeg(width: int, height: int) -> bytes:
    """A JPEG of noise: it compresses as badly as a photo of leaves does, so the size is predictable."""
    out = io.BytesIO()
    Image.frombytes("RGB", (width, height), os.urandom(width * height * 3)).save(out, "JPEG", quality=90)
    return out.getvalue()


@pytest.fixture(scope="module")
def phone_photos() -> dict[str, bytes]:
    """A 950 KB and a 5 MB JPEG, as a phone sends them."""
    photos = {"950KB": _jpeg(1150, 900), "5MB": _jpeg(2600, 2000)}
    assert 900_000 < len(photos["950KB"]) < 1_000_000 and 4_500_000 < len(photos["5MB"]) < 6_000_000
    return photos


def _headers(platform: CommandPlatform, identity: str, site: str) -> dict[str, str]:
    return {"Authorization": "Bearer " + platform.token(identity, site)}


def _form(data: bytes) -> aiohttp.FormData:
    form = aiohttp.FormData()
    form.add_field("note", "from the river bank")
    form.add_field("photo", data, filename="IMG_0001.jpg", content_type="image/jpeg")
    return form


async def _chunked(data: bytes) -> AsyncIterator[bytes]:
    """The body as a phone on 4G sends it: in pieces, with no Content-Length."""
    for start in range(0, len(data), 100_000):
        yield data[start:start + 100_000]


async def _upload(platform: CommandPlatform, body: object, headers: dict[str, str]) -> tuple[int, str, dict[str, str]]:
    async with platform.session.post(platform.url + "/command/photos", data=body, headers=headers) as resp:
        text = await resp.text()
        return resp.status, text, dict(resp.headers)


@pytest.mark.parametrize("size", ["950KB", "5MB"])
async def test_a_phone_photo_arrives_whole_raw_chunked_and_multipart(
    command_platform: CommandPlatform, phone_photos: dict[str, bytes], size: str,
) -> None:
    photo = phone_photos[size]
    headers = _headers(command_platform, "duty-jiangbei", "jiangbei")
    names = set()
    for body in (photo, _chunked(photo), _form(photo)):
        status, text, _ = await _upload(command_platform, body, headers)
        assert status == 201, text
        names.add(text)
    assert len(names) == 1, "the same bytes each way"
    name = json.loads(names.pop())["photo"]
    async with command_platform.session.get(f"{command_platform.url}/command/photos/{name}", headers=headers) as resp:
        assert resp.status == 200 and await resp.read() == photo, "the uploader sees its own photo, whole"


async def test_an_upload_past_the_photo_limit_is_a_413_naming_the_limit(command_platform: CommandPlatform) -> None:
    limit = command_platform.command.photos.max_bytes
    assert limit == 8 * 1024 * 1024, "the documented default"
    too_big = b"\xff\xd8\xff\xe0" + bytes(limit)
    headers = _headers(command_platform, "duty-jiangbei", "jiangbei")
    for body in (too_big, _chunked(too_big), _form(too_big)):
        status, text, _ = await _upload(command_platform, body, headers)
        assert status == 413 and text.startswith("photo_too_large:") and str(limit) in text, text


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares its size and holds almost nothing: decoding it would allocate width*height pixels."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")


async def test_a_png_declaring_7000x7000_pixels_is_refused_from_its_header(command_platform: CommandPlatform) -> None:
    headers = _headers(command_platform, "duty-jiangbei", "jiangbei")
    status, text, _ = await _upload(command_platform, _png_header_only(7000, 7000), headers)
    # refused before decoding: decoding this file would fail with "not_an_image" after allocating 147 MB
    assert status == 400 and text.startswith("photo_too_many_pixels:") and "7000x7000" in text, text
    status, text, _ = await _upload(command_platform, _png_header_only(4032, 3024), headers)
    assert status == 400 and text.startswith("not_an_image:"), "a phone's 12 MP passes the cap (and fails decoding here)"


async def test_a_site_past_its_daily_quota_waits_until_a_day_after_its_first_upload(command_platform: CommandPlatform) -> None:
    photos = command_platform.command.photos
    photos.quota.limit = 2_500_000
    headers = _headers(command_platform, "duty-jiangbei", "jiangbei")
    first, second, third = _jpeg(1150, 900), _jpeg(1150, 900), _jpeg(1150, 900)
    assert (await _upload(command_platform, first, headers))[0] == 201
    command_platform.clock.advance(3600)
    assert (await _upload(command_platform, second, headers))[0] == 201
    status, text, response_headers = await _upload(command_platform, third, headers)
    assert status == 429 and text.startswith("photo_quota_exceeded:") and "try again in 82800 s" in text, text
    assert response_headers["Retry-After"] == "82800"
    assert (await _upload(command_platform, first, headers))[0] == 201, "sending an own photo again costs nothing"
    other = _headers(command_platform, "duty-jiangnan", "jiangnan")
    assert (await _upload(command_platform, third, other))[0] == 201, "the quota is per site"
    command_platform.clock.advance(82800)
    assert (await _upload(command_platform, third, headers))[0] == 201


async def _photo_name(platform: CommandPlatform, data: bytes, headers: dict[str, str]) -> str:
    async with platform.session.post(platform.url + "/command/photos", data=data, headers=headers) as resp:
        assert resp.status == 201
        return str((await resp.json())["photo"])


async def test_an_upload_no_event_references_is_removed_a_day_later_by_the_scheduler(command_platform: CommandPlatform) -> None:
    clock, photos = command_platform.clock, command_platform.command.photos
    headers = _headers(command_platform, "duty-jiangbei", "jiangbei")
    used = await _photo_name(command_platform, _jpeg(64, 48), headers)
    unused = await _photo_name(command_platform, _jpeg(64, 48), headers)
    site = await command_platform.client("duty-jiangbei", "jiangbei")
    await site.request(ReportFile(occurred_at=clock.now() - 600, place="江堤", incident_type="flood", summary="管涌", photo=used))
    clock.advance(KEEP_UNREFERENCED - SWEEP_EVERY)
    recent = await _photo_name(command_platform, _jpeg(64, 48), headers)
    clock.advance(2 * SWEEP_EVERY)
    await command_platform.services.scheduler.run_due()  # the hourly sweep, run by moving the clock
    assert photos.path(unused) is None and not (photos.root / (unused + ".owners.json")).exists()
    assert photos.path(used) is not None, "referenced by a report"
    assert photos.path(recent) is not None, "uploaded less than a day ago"
    assert command_platform.command.sweeper.removed == 1


async def test_another_sites_photo_cannot_be_attached_and_the_owners_incident_keeps_showing_it(
    command_platform: CommandPlatform,
) -> None:
    owner_headers = _headers(command_platform, "duty-jiangbei", "jiangbei")
    photo = _jpeg(320, 240)
    name = await _photo_name(command_platform, photo, owner_headers)
    owner = await command_platform.client("duty-jiangbei", "jiangbei")
    await owner.request(ReportFile(occurred_at=command_platform.clock.now() - 600, place="江堤", incident_type="flood",
                                   summary="管涌", photo=name))
    issuer = await command_platform.console("mayor", "office")
    ok = await issuer.request(DirectiveIssue(cls="mandatory", title="核查", sites=["jiangnan"]))
    other = await command_platform.client("duty-jiangnan", "jiangnan")
    await other.request(DirectiveAcknowledge(directive_id=ok.directive_id))
    with pytest.raises(Refused) as refused:
        await other.request(DirectiveFeedback(directive_id=ok.directive_id, text="see photo", photo=name))
    assert refused.value.code == "not_your_photo"
    with pytest.raises(Refused) as refused:
        await other.request(ReportFile(occurred_at=command_platform.clock.now(), place="x", summary="y", photo=name))
    assert refused.value.code == "not_your_photo"
    url = f"{command_platform.url}/command/photos/{name}"
    for identity, site, status in (("duty-jiangbei", "jiangbei", 200), ("mayor", "office", 200), ("duty-jiangnan", "jiangnan", 404)):
        async with command_platform.session.get(url, headers=_headers(command_platform, identity, site)) as resp:
            assert resp.status == status, (site, await resp.text())
    # the same bytes uploaded by the other site are its own too: then it may attach them
    assert await _photo_name(command_platform, photo, _headers(command_platform, "duty-jiangnan", "jiangnan")) == name
    await other.request(DirectiveFeedback(directive_id=ok.directive_id, text="see photo", photo=name))
    async with command_platform.session.get(url, headers=owner_headers) as resp:
        assert resp.status == 200 and await resp.read() == photo
    assert command_platform.command.photos.owners(name) == {"jiangbei", "jiangnan"}


def test_the_days_uploads_still_count_after_a_restart(tmp_path: Path) -> None:
    photos = PhotoStore(tmp_path, quota_bytes=10_000_000)
    try:
        data = _jpeg(64, 48)
        photos.save(data, Upload("jiangbei", "duty-jiangbei", 1000.0, len(data)))
        photos.save(data, Upload("jiangnan", "duty-jiangnan", 2000.0, len(data)))
    finally:
        photos.close()
    again = PhotoStore(tmp_path, quota_bytes=10_000_000)
    try:
        again.load()
        assert again.quota.used("jiangbei", 1500.0) == len(data) and again.quota.used("jiangnan", 2500.0) == len(data)
        assert again.quota.used("jiangbei", 1000.0 + 86400) == 0
    finally:
        again.close()


async def test_a_body_that_is_not_the_multipart_it_claims_is_a_clear_400(command_platform: CommandPlatform) -> None:
    headers = {**_headers(command_platform, "duty-jiangbei", "jiangbei"), "Content-Type": "multipart/form-data"}
    status, text, _ = await _upload(command_platform, b"--x\r\n\r\nno boundary given\r\n--x--\r\n", headers)
    assert status == 400 and text.startswith("bad_multipart:"), text
    form = aiohttp.FormData()
    form.add_field("note", "the photo field is missing")
    form.add_field("picture", b"\xff\xd8", filename="a.jpg", content_type="image/jpeg")
    status, text, _ = await _upload(command_platform, form, _headers(command_platform, "duty-jiangbei", "jiangbei"))
    assert status == 400 and text.startswith("no_photo:"), text
